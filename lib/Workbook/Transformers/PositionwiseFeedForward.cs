using TorchSharp;
using TorchSharp.Modules;
using Workbook.Attention;
using static TorchSharp.torch;

namespace Workbook.Transformers;

/// <summary>The non-linearity inside the feed-forward network.</summary>
public enum FeedForwardActivation
{
    /// <summary>max(0, x), as in the original Transformer.</summary>
    ReLU,
    /// <summary>The exact (erf) GELU, as in BERT.</summary>
    GELU,
}

/// <summary>
/// The position-wise feed-forward network (Vaswani et al., eq. 2): <c>FFN(x) = W_2 · act(W_1 x + b_1) + b_2</c>,
/// applied to every position independently (the same two Linear layers at every position; only attention mixes
/// positions). Usually <c>d_ff = 4·d_model</c>. Names match PyTorch's encoder/decoder layers: <c>linear1</c>,
/// <c>linear2</c>, and dropout after the activation.
/// </summary>
public sealed class PositionwiseFeedForward : nn.Module<Tensor, Tensor>
{
    /// <summary>W_1: d_model → d_ff.</summary>
    public readonly Linear linear1;
    /// <summary>Dropout after the activation.</summary>
    public readonly Dropout dropout;
    /// <summary>W_2: d_ff → d_model.</summary>
    public readonly Linear linear2;
    /// <summary>The activation.</summary>
    public readonly FeedForwardActivation activation;

    /// <summary>Creates the two layers.</summary>
    /// <param name="dModel">Model width.</param>
    /// <param name="dimFeedforward">Hidden width d_ff.</param>
    /// <param name="dropout">Dropout after the activation.</param>
    /// <param name="activation">ReLU (paper) or GELU.</param>
    public PositionwiseFeedForward(long dModel, long dimFeedforward, double dropout = 0.0,
        FeedForwardActivation activation = FeedForwardActivation.ReLU) : base(nameof(PositionwiseFeedForward))
    {
        linear1 = nn.Linear(dModel, dimFeedforward);
        linear2 = nn.Linear(dimFeedforward, dModel);
        this.dropout = nn.Dropout(dropout);
        this.activation = activation;
        RegisterComponents();
    }

    /// <summary><c>linear2(dropout(act(linear1(x))))</c> for <c>x [..., d_model]</c>.</summary>
    /// <param name="x"><c>[..., d_model]</c>.</param>
    public override Tensor forward(Tensor x) => Apply(x, linear1, linear2, dropout, activation);

    /// <summary>The FFN's three parts as PyTorch's Transformer layers hold them, as fields of the layer itself
    /// (<c>linear1</c>, <c>dropout</c>, <c>linear2</c>), so that their state_dict names match PyTorch's.</summary>
    internal static (Linear Linear1, Dropout Dropout, Linear Linear2) Parts(long dModel, long dFf, double dropout) =>
        (nn.Linear(dModel, dFf), nn.Dropout(dropout), nn.Linear(dFf, dModel));

    internal static Tensor Apply(Tensor x, Linear linear1, Linear linear2, Dropout dropout, FeedForwardActivation activation)
    {
        if (x.shape[^1] != linear1.in_features)
            throw new ArgumentException($"Feed-forward: x {Shapes.Of(x)} must end in d_model={linear1.in_features}.", nameof(x));
        using var scope = NewDisposeScope();
        var h = linear1.forward(x);
        h = activation == FeedForwardActivation.ReLU ? nn.functional.relu(h) : nn.functional.gelu(h);
        return linear2.forward(dropout.forward(h)).MoveToOuterDisposeScope();
    }
}
