using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Workbook.Vision;

/// <summary>
/// The shape of the source articles' small CNN, adapted to any input size: two stages of <c>Conv2d(3×3, padding 1) → ReLU →
/// MaxPool2d(2)</c>, then flatten and one linear layer (or two with a hidden ReLU layer, as in the source articles).
/// The flatten size is computed from the input size with <see cref="ConvArithmetic.OutputSize"/>, where the source articles
/// hard-code <c>128·56·56</c> (only right for 224×224 inputs).
/// Parameter names follow PyTorch: <c>conv1.*</c>, <c>conv2.*</c>, then <c>fc.*</c> (one linear layer) or
/// <c>fc1.*</c>, <c>fc2.*</c> (with a hidden layer), so a PyTorch <c>state_dict</c> loads directly.
/// </summary>
public sealed class SimpleCNN : Module<Tensor, Tensor>
{
    readonly Conv2d conv1, conv2;
    readonly MaxPool2d pool;
    readonly Linear? fc, fc1, fc2;

    /// <summary>Features entering the classifier: <c>channels2 · H/4 · W/4</c> (each pool halves, rounding down).</summary>
    public int FlattenSize { get; }

    /// <summary>Spatial size after the two stages.</summary>
    public (int H, int W) FeatureSize { get; }

    /// <summary>Builds the network for <c>[N, inChannels, height, width]</c> inputs.</summary>
    /// <param name="inChannels">Image channels (1 gray, 3 RGB).</param>
    /// <param name="height">Input height.</param>
    /// <param name="width">Input width.</param>
    /// <param name="numClasses">Output logits.</param>
    /// <param name="channels1">Filters of the first convolution.</param>
    /// <param name="channels2">Filters of the second convolution.</param>
    /// <param name="hidden">Width of a hidden linear layer (the source articles use 512); 0 = a single linear classifier <c>fc</c>.</param>
    public SimpleCNN(int inChannels = 1, int height = 28, int width = 28, int numClasses = 10,
        int channels1 = 8, int channels2 = 16, int hidden = 0) : base(nameof(SimpleCNN))
    {
        if (inChannels <= 0 || numClasses <= 0 || channels1 <= 0 || channels2 <= 0 || hidden < 0)
            throw new ArgumentException($"SimpleCNN sizes must be positive (hidden >= 0): inChannels={inChannels}, numClasses={numClasses}, " +
                $"channels1={channels1}, channels2={channels2}, hidden={hidden}.");
        // 3×3 convolutions with padding 1 keep the size; each 2×2 max-pool (stride 2) halves it.
        int h = height, w = width;
        foreach (var _ in new[] { 1, 2 })
        {
            h = ConvArithmetic.OutputSize(ConvArithmetic.OutputSize(h, 3, 1, 1), 2, 2);
            w = ConvArithmetic.OutputSize(ConvArithmetic.OutputSize(w, 3, 1, 1), 2, 2);
        }
        FeatureSize = (h, w);
        FlattenSize = channels2 * h * w;

        conv1 = Conv2d(inChannels, channels1, 3, padding: 1);
        conv2 = Conv2d(channels1, channels2, 3, padding: 1);
        pool = MaxPool2d(2);
        register_module("conv1", conv1);
        register_module("conv2", conv2);
        register_module("pool", pool);
        if (hidden == 0)
        {
            fc = Linear(FlattenSize, numClasses);
            register_module("fc", fc);
        }
        else
        {
            fc1 = Linear(FlattenSize, hidden);
            fc2 = Linear(hidden, numClasses);
            register_module("fc1", fc1);
            register_module("fc2", fc2);
        }
    }

    /// <summary>Output of the first stage (conv1 → ReLU → pool), <c>[N, channels1, H/2, W/2]</c>.</summary>
    public Tensor Stage1(Tensor x) => pool.forward(functional.relu(conv1.forward(x)));

    /// <summary>Output of both stages, <c>[N, channels2, H/4, W/4]</c>.</summary>
    public Tensor Features(Tensor x)
    {
        using var scope = NewDisposeScope();
        return pool.forward(functional.relu(conv2.forward(Stage1(x)))).MoveToOuterDisposeScope();
    }

    /// <summary>Logits <c>[N, numClasses]</c> for images <c>[N, C, H, W]</c>.</summary>
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var features = Features(x).flatten(1);          // (C, H, W) order, as PyTorch's flatten
        var logits = fc is not null ? fc.forward(features) : fc2!.forward(functional.relu(fc1!.forward(features)));
        return logits.MoveToOuterDisposeScope();
    }

    /// <summary>The first convolution (its weights are the filters a notebook visualises).</summary>
    public Conv2d Conv1 => conv1;
}

/// <summary>
/// A slightly stronger CNN for the accuracy goal: two stages of <c>Conv2d(3×3) → BatchNorm2d → ReLU → MaxPool2d(2)</c>,
/// then <c>Dropout → Linear(hidden) → ReLU → Dropout → Linear(numClasses)</c>. Batch norm keeps each channel's
/// activations standardised, which allows a larger learning rate; dropout regularises the classifier, where most
/// parameters live. Names: <c>conv1, bn1, conv2, bn2, fc1, fc2</c>.
/// </summary>
public sealed class BatchNormCNN : Module<Tensor, Tensor>
{
    readonly Conv2d conv1, conv2;
    readonly BatchNorm2d bn1, bn2;
    readonly MaxPool2d pool;
    readonly Dropout drop;
    readonly Linear fc1, fc2;

    /// <summary>Features entering the classifier.</summary>
    public int FlattenSize { get; }

    /// <summary>Builds the network for <c>[N, inChannels, height, width]</c> inputs.</summary>
    /// <param name="inChannels">Image channels.</param>
    /// <param name="height">Input height.</param>
    /// <param name="width">Input width.</param>
    /// <param name="numClasses">Output logits.</param>
    /// <param name="channels1">Filters of the first convolution.</param>
    /// <param name="channels2">Filters of the second convolution.</param>
    /// <param name="hidden">Width of the hidden linear layer.</param>
    /// <param name="dropout">Dropout probability before each linear layer.</param>
    public BatchNormCNN(int inChannels = 1, int height = 28, int width = 28, int numClasses = 10,
        int channels1 = 16, int channels2 = 32, int hidden = 128, double dropout = 0.3) : base(nameof(BatchNormCNN))
    {
        if (dropout < 0 || dropout >= 1) throw new ArgumentException($"dropout must be in [0, 1), got {dropout}.", nameof(dropout));
        int h = height, w = width;
        foreach (var _ in new[] { 1, 2 })
        {
            h = ConvArithmetic.OutputSize(ConvArithmetic.OutputSize(h, 3, 1, 1), 2, 2);
            w = ConvArithmetic.OutputSize(ConvArithmetic.OutputSize(w, 3, 1, 1), 2, 2);
        }
        FlattenSize = channels2 * h * w;
        // No conv bias: batch norm's shift (beta) replaces it.
        conv1 = Conv2d(inChannels, channels1, 3, padding: 1, bias: false);
        bn1 = BatchNorm2d(channels1);
        conv2 = Conv2d(channels1, channels2, 3, padding: 1, bias: false);
        bn2 = BatchNorm2d(channels2);
        pool = MaxPool2d(2);
        drop = Dropout(dropout);
        fc1 = Linear(FlattenSize, hidden);
        fc2 = Linear(hidden, numClasses);
        RegisterComponents();
    }

    /// <summary>Output of the first stage, <c>[N, channels1, H/2, W/2]</c>.</summary>
    public Tensor Stage1(Tensor x) => pool.forward(functional.relu(bn1.forward(conv1.forward(x))));

    /// <summary>Logits <c>[N, numClasses]</c>.</summary>
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var h = pool.forward(functional.relu(bn2.forward(conv2.forward(Stage1(x))))).flatten(1);
        h = functional.relu(fc1.forward(drop.forward(h)));
        return fc2.forward(drop.forward(h)).MoveToOuterDisposeScope();
    }

    /// <summary>The first convolution.</summary>
    public Conv2d Conv1 => conv1;
}
