using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;
using F = TorchSharp.torch.nn.functional;

namespace Workbook.Generative;

/// <summary>
/// A multilayer-perceptron generator: latent <c>z [B, latent]</c> → <c>Linear → LeakyReLU(0.2)</c> per hidden layer →
/// <c>Linear</c> → optional <c>tanh</c> (images scaled to [−1, 1]) → reshaped to <see cref="OutputShape"/>.
/// Layers are <c>layers.0</c>, <c>layers.1</c>, … .
/// </summary>
public sealed class MlpGenerator : Module<Tensor, Tensor>
{
    readonly ModuleList<Linear> layers;
    readonly bool _tanh;

    /// <summary>Creates the generator.</summary>
    /// <param name="latentDim">Size of z.</param>
    /// <param name="outputShape">Shape of one sample, e.g. [1, 28, 28] or [2].</param>
    /// <param name="hidden">Hidden layer widths.</param>
    /// <param name="tanhOutput">Squash the output into [−1, 1].</param>
    /// <exception cref="ArgumentException">A non-positive size.</exception>
    public MlpGenerator(int latentDim, long[] outputShape, int[] hidden, bool tanhOutput = true) : base(nameof(MlpGenerator))
    {
        ArgumentNullException.ThrowIfNull(outputShape);
        ArgumentNullException.ThrowIfNull(hidden);
        if (latentDim < 1 || outputShape.Length == 0 || outputShape.Any(d => d < 1) || hidden.Any(h => h < 1))
            throw new ArgumentException($"Sizes must be positive: latentDim {latentDim}, outputShape [{string.Join(", ", outputShape)}], hidden [{string.Join(", ", hidden)}].");
        LatentDim = latentDim;
        OutputShape = outputShape;
        var widths = new[] { latentDim }.Concat(hidden).Append((int)outputShape.Aggregate(1L, (a, b) => a * b)).ToArray();
        layers = new ModuleList<Linear>(widths.Zip(widths.Skip(1), (i, o) => Linear(i, o)).ToArray());
        _tanh = tanhOutput;
        RegisterComponents();
    }

    /// <summary>Size of z.</summary>
    public int LatentDim { get; }

    /// <summary>Shape of one generated sample.</summary>
    public long[] OutputShape { get; }

    /// <summary>Samples <c>[B, ..OutputShape]</c> for latents <c>[B, latent]</c>.</summary>
    public override Tensor forward(Tensor z)
    {
        using var scope = NewDisposeScope();
        var x = z;
        for (int i = 0; i < layers.Count; i++)
        {
            x = layers[i].forward(x);
            if (i < layers.Count - 1) x = F.leaky_relu(x, 0.2);
        }
        if (_tanh) x = x.tanh();
        return x.view([z.shape[0], .. OutputShape]).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// A multilayer-perceptron discriminator: a sample (flattened) → <c>Linear → LeakyReLU(0.2)</c> per hidden layer →
/// <c>Linear(1)</c>: one logit per sample <c>[B]</c>, D(x) = σ(logit). With <see cref="Pack"/> = m > 1 (PacGAN,
/// Lin et al. 2018) it judges m samples at once, concatenated, and returns one logit per group of m; a generator
/// that always draws the same few samples is then easy to catch, because a group of near-copies looks nothing like
/// a group of real samples. Layers are <c>layers.0</c>, <c>layers.1</c>, … .
/// </summary>
public sealed class MlpDiscriminator : Module<Tensor, Tensor>
{
    readonly ModuleList<Linear> layers;

    /// <summary>Creates the discriminator.</summary>
    /// <param name="inputDim">Scalars per sample (784 for 28×28 images).</param>
    /// <param name="hidden">Hidden layer widths.</param>
    /// <param name="pack">Samples judged together (1 = the standard discriminator).</param>
    /// <exception cref="ArgumentException">A non-positive size.</exception>
    public MlpDiscriminator(int inputDim, int[] hidden, int pack = 1) : base(nameof(MlpDiscriminator))
    {
        ArgumentNullException.ThrowIfNull(hidden);
        if (inputDim < 1 || pack < 1 || hidden.Any(h => h < 1))
            throw new ArgumentException($"Sizes must be positive: inputDim {inputDim}, pack {pack}, hidden [{string.Join(", ", hidden)}].");
        InputDim = inputDim;
        Pack = pack;
        var widths = new[] { inputDim * pack }.Concat(hidden).Append(1).ToArray();
        layers = new ModuleList<Linear>(widths.Zip(widths.Skip(1), (i, o) => Linear(i, o)).ToArray());
        RegisterComponents();
    }

    /// <summary>Scalars per sample.</summary>
    public int InputDim { get; }

    /// <summary>Samples per judgement.</summary>
    public int Pack { get; }

    /// <summary>Logits <c>[B / pack]</c> for samples <c>[B, ...]</c>.</summary>
    /// <exception cref="ArgumentException">The batch is not a multiple of <see cref="Pack"/>, or a sample has the wrong size.</exception>
    public override Tensor forward(Tensor x)
    {
        long B = x.shape[0];
        if (B % Pack != 0) throw new ArgumentException($"The batch of {B} is not a multiple of pack {Pack}.", nameof(x));
        if (x.numel() != B * InputDim) throw new ArgumentException($"Each sample must have {InputDim} values, got [{string.Join(", ", x.shape)}].", nameof(x));
        using var scope = NewDisposeScope();
        var h = x.reshape(B / Pack, (long)InputDim * Pack);
        for (int i = 0; i < layers.Count; i++)
        {
            h = layers[i].forward(h);
            if (i < layers.Count - 1) h = F.leaky_relu(h, 0.2);
        }
        return h.squeeze(1).MoveToOuterDisposeScope();
    }
}
