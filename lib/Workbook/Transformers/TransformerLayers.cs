using TorchSharp;
using TorchSharp.Modules;
using Workbook.Attention;
using MultiheadAttention = Workbook.Attention.MultiheadAttention;
using static TorchSharp.torch;

namespace Workbook.Transformers;

/// <summary>
/// One Transformer encoder layer: multi-head self-attention and a position-wise feed-forward network, each wrapped in
/// a residual connection and a LayerNorm. Two arrangements:
/// <list type="bullet">
/// <item><b>Post-LN</b> (the paper, <c>normFirst: false</c>): <c>x = LayerNorm(x + Sublayer(x))</c>, i.e.
/// <c>x = norm1(x + SelfAttn(x))</c>; <c>x = norm2(x + FFN(x))</c>.</item>
/// <item><b>Pre-LN</b> (GPT-2 and most modern models, <c>normFirst: true</c>): <c>x = x + Sublayer(LayerNorm(x))</c>,
/// i.e. <c>x = x + SelfAttn(norm1(x))</c>; <c>x = x + FFN(norm2(x))</c>. Trains more stably without warm-up; a stack
/// of pre-LN layers needs a final LayerNorm.</item>
/// </list>
/// Parameter names and semantics match PyTorch's <c>nn.TransformerEncoderLayer(batch_first=True)</c>
/// (<c>self_attn.*</c>, <c>linear1.*</c>, <c>linear2.*</c>, <c>norm1.*</c>, <c>norm2.*</c>), so its
/// <c>state_dict</c> loads directly. Input and output <c>[B, T, d_model]</c> (any <c>[..., T, d_model]</c>).
/// </summary>
public sealed class TransformerEncoderLayer : nn.Module<Tensor, Tensor>
{
    /// <summary>Multi-head self-attention.</summary>
    public readonly MultiheadAttention self_attn;
    /// <summary>The FFN's layers: <c>linear1</c> d_model → d_ff, <c>linear2</c> d_ff → d_model.</summary>
    public readonly Linear linear1, linear2;
    /// <summary>Dropout inside the FFN (after the activation).</summary>
    public readonly Dropout dropout;
    /// <summary>LayerNorms of the attention (<c>norm1</c>) and FFN (<c>norm2</c>) sub-layers.</summary>
    public readonly LayerNorm norm1, norm2;
    /// <summary>Dropout on the attention (<c>dropout1</c>) and FFN (<c>dropout2</c>) sub-layers' outputs, before the residual add.</summary>
    public readonly Dropout dropout1, dropout2;
    /// <summary>Pre-LN (true) or post-LN (false).</summary>
    public readonly bool norm_first;
    /// <summary>The FFN activation.</summary>
    public readonly FeedForwardActivation activation;

    /// <summary>Creates the layer (PyTorch's defaults: d_ff = 2048, dropout 0.1, ReLU, eps 1e-5, post-LN).</summary>
    /// <param name="dModel">Model width.</param>
    /// <param name="numHeads">Number of attention heads.</param>
    /// <param name="dimFeedforward">FFN hidden width.</param>
    /// <param name="dropout">Dropout everywhere (attention weights, FFN, sub-layer outputs).</param>
    /// <param name="activation">FFN activation.</param>
    /// <param name="layerNormEps">LayerNorm epsilon.</param>
    /// <param name="normFirst">Pre-LN instead of the paper's post-LN.</param>
    public TransformerEncoderLayer(long dModel, long numHeads, long dimFeedforward = 2048, double dropout = 0.1,
        FeedForwardActivation activation = FeedForwardActivation.ReLU, double layerNormEps = 1e-5, bool normFirst = false)
        : base(nameof(TransformerEncoderLayer))
    {
        self_attn = new MultiheadAttention(dModel, numHeads, dropout);
        (linear1, this.dropout, linear2) = PositionwiseFeedForward.Parts(dModel, dimFeedforward, dropout);
        (norm1, norm2) = (nn.LayerNorm(dModel, layerNormEps), nn.LayerNorm(dModel, layerNormEps));
        (dropout1, dropout2) = (nn.Dropout(dropout), nn.Dropout(dropout));
        norm_first = normFirst;
        this.activation = activation;
        RegisterComponents();
    }

    /// <summary>The layer without masks.</summary>
    /// <param name="src"><c>[..., T, d_model]</c>.</param>
    public override Tensor forward(Tensor src) => forward(src, null, null, false);

    /// <summary>The layer with optional masks.</summary>
    /// <param name="src"><c>[B, T, d_model]</c>.</param>
    /// <param name="srcMask"><c>[T, T]</c> bool (true = masked) or additive float.</param>
    /// <param name="srcKeyPaddingMask"><c>[B, T]</c> bool, true = padding.</param>
    /// <param name="isCausal">Causal self-attention (for a decoder-only model).</param>
    public Tensor forward(Tensor src, Tensor? srcMask, Tensor? srcKeyPaddingMask, bool isCausal = false)
    {
        using var scope = NewDisposeScope();
        var x = src;
        if (norm_first)
        {
            x = x + dropout1.forward(self_attn.SelfAttention(norm1.forward(x), srcMask, srcKeyPaddingMask, isCausal));
            x = x + dropout2.forward(FeedForward(norm2.forward(x)));
        }
        else
        {
            x = norm1.forward(x + dropout1.forward(self_attn.SelfAttention(x, srcMask, srcKeyPaddingMask, isCausal)));
            x = norm2.forward(x + dropout2.forward(FeedForward(x)));
        }
        return x.MoveToOuterDisposeScope();
    }

    /// <summary>The position-wise FFN of this layer: <c>linear2(dropout(act(linear1(x))))</c>.</summary>
    /// <param name="x"><c>[..., d_model]</c>.</param>
    public Tensor FeedForward(Tensor x) => PositionwiseFeedForward.Apply(x, linear1, linear2, dropout, activation);
}

/// <summary>
/// One Transformer decoder layer: masked (causal) self-attention over the target, cross-attention from the target to
/// the encoder's output ("memory"), and a feed-forward network, each with a residual connection and LayerNorm.
/// <list type="bullet">
/// <item>Post-LN (paper): <c>x = norm1(x + SelfAttn(x))</c>; <c>x = norm2(x + CrossAttn(x, memory))</c>;
/// <c>x = norm3(x + FFN(x))</c>.</item>
/// <item>Pre-LN: <c>x = x + SelfAttn(norm1(x))</c>; <c>x = x + CrossAttn(norm2(x), memory)</c>;
/// <c>x = x + FFN(norm3(x))</c>.</item>
/// </list>
/// Names match PyTorch's <c>nn.TransformerDecoderLayer(batch_first=True)</c>: <c>self_attn.*</c>,
/// <c>multihead_attn.*</c> (cross-attention), <c>linear1.*</c>, <c>linear2.*</c>, <c>norm1..3.*</c>.
/// </summary>
public sealed class TransformerDecoderLayer : nn.Module<Tensor, Tensor, Tensor>
{
    /// <summary>Masked self-attention over the target.</summary>
    public readonly MultiheadAttention self_attn;
    /// <summary>Cross-attention: queries from the target, keys and values from the memory.</summary>
    public readonly MultiheadAttention multihead_attn;
    /// <summary>The FFN's layers: <c>linear1</c> d_model → d_ff, <c>linear2</c> d_ff → d_model.</summary>
    public readonly Linear linear1, linear2;
    /// <summary>Dropout inside the FFN.</summary>
    public readonly Dropout dropout;
    /// <summary>LayerNorms of the self-attention (<c>norm1</c>), cross-attention (<c>norm2</c>) and FFN (<c>norm3</c>) sub-layers.</summary>
    public readonly LayerNorm norm1, norm2, norm3;
    /// <summary>Dropout on the three sub-layers' outputs, in the same order.</summary>
    public readonly Dropout dropout1, dropout2, dropout3;
    /// <summary>Pre-LN (true) or post-LN (false).</summary>
    public readonly bool norm_first;
    /// <summary>The FFN activation.</summary>
    public readonly FeedForwardActivation activation;

    /// <summary>Creates the layer (PyTorch's defaults, as <see cref="TransformerEncoderLayer"/>; the heads serve both attentions).</summary>
    /// <inheritdoc cref="TransformerEncoderLayer(long, long, long, double, FeedForwardActivation, double, bool)" path="/param"/>
    public TransformerDecoderLayer(long dModel, long numHeads, long dimFeedforward = 2048, double dropout = 0.1,
        FeedForwardActivation activation = FeedForwardActivation.ReLU, double layerNormEps = 1e-5, bool normFirst = false)
        : base(nameof(TransformerDecoderLayer))
    {
        (self_attn, multihead_attn) = (new MultiheadAttention(dModel, numHeads, dropout), new MultiheadAttention(dModel, numHeads, dropout));
        (linear1, this.dropout, linear2) = PositionwiseFeedForward.Parts(dModel, dimFeedforward, dropout);
        (norm1, norm2, norm3) = (nn.LayerNorm(dModel, layerNormEps), nn.LayerNorm(dModel, layerNormEps), nn.LayerNorm(dModel, layerNormEps));
        (dropout1, dropout2, dropout3) = (nn.Dropout(dropout), nn.Dropout(dropout), nn.Dropout(dropout));
        norm_first = normFirst;
        this.activation = activation;
        RegisterComponents();
    }

    /// <summary>The layer without masks (note: no causal mask either).</summary>
    /// <param name="tgt"><c>[B, T, d_model]</c>.</param>
    /// <param name="memory"><c>[B, S, d_model]</c>, the encoder output.</param>
    public override Tensor forward(Tensor tgt, Tensor memory) => forward(tgt, memory, null, null, null, null, false);

    /// <summary>The layer with optional masks.</summary>
    /// <param name="tgt"><c>[B, T, d_model]</c>.</param>
    /// <param name="memory"><c>[B, S, d_model]</c>.</param>
    /// <param name="tgtMask"><c>[T, T]</c> self-attention mask (bool true = masked, or additive).</param>
    /// <param name="memoryMask"><c>[T, S]</c> cross-attention mask.</param>
    /// <param name="tgtKeyPaddingMask"><c>[B, T]</c>, true = padded target position.</param>
    /// <param name="memoryKeyPaddingMask"><c>[B, S]</c>, true = padded source position.</param>
    /// <param name="tgtIsCausal">Causal self-attention without building a mask.</param>
    public Tensor forward(Tensor tgt, Tensor memory, Tensor? tgtMask, Tensor? memoryMask = null, Tensor? tgtKeyPaddingMask = null,
        Tensor? memoryKeyPaddingMask = null, bool tgtIsCausal = false)
    {
        if (memory.dim() != tgt.dim() || memory.shape[^1] != tgt.shape[^1] || !memory.shape[..^2].SequenceEqual(tgt.shape[..^2]))
            throw new ArgumentException($"TransformerDecoderLayer: memory {Shapes.Of(memory)} must be [B, S, d_model] with the batch and " +
                $"width of tgt {Shapes.Of(tgt)}.", nameof(memory));
        using var scope = NewDisposeScope();
        var x = tgt;
        if (norm_first)
        {
            x = x + dropout1.forward(self_attn.SelfAttention(norm1.forward(x), tgtMask, tgtKeyPaddingMask, tgtIsCausal));
            x = x + dropout2.forward(CrossAttention(norm2.forward(x), memory, memoryMask, memoryKeyPaddingMask));
            x = x + dropout3.forward(FeedForward(norm3.forward(x)));
        }
        else
        {
            x = norm1.forward(x + dropout1.forward(self_attn.SelfAttention(x, tgtMask, tgtKeyPaddingMask, tgtIsCausal)));
            x = norm2.forward(x + dropout2.forward(CrossAttention(x, memory, memoryMask, memoryKeyPaddingMask)));
            x = norm3.forward(x + dropout3.forward(FeedForward(x)));
        }
        return x.MoveToOuterDisposeScope();
    }

    Tensor CrossAttention(Tensor x, Tensor memory, Tensor? memoryMask, Tensor? memoryKeyPaddingMask) =>
        multihead_attn.forward(x, memory, memory, memoryMask, memoryKeyPaddingMask, needWeights: false).Output;

    /// <summary>The position-wise FFN of this layer.</summary>
    /// <param name="x"><c>[..., d_model]</c>.</param>
    public Tensor FeedForward(Tensor x) => PositionwiseFeedForward.Apply(x, linear1, linear2, dropout, activation);
}

/// <summary>A stack of encoder layers (<c>layers.0</c>, <c>layers.1</c>, ... like PyTorch) and an optional final LayerNorm.</summary>
public sealed class TransformerEncoder : nn.Module<Tensor, Tensor>
{
    /// <summary>The layers, applied in order.</summary>
    public readonly ModuleList<TransformerEncoderLayer> layers;
    /// <summary>Final LayerNorm (needed after pre-LN layers; null for the paper's post-LN stack).</summary>
    public readonly LayerNorm? norm;

    /// <summary>Stacks the given layers.</summary>
    /// <param name="layers">The layers (distinct instances).</param>
    /// <param name="norm">Optional final LayerNorm.</param>
    public TransformerEncoder(IEnumerable<TransformerEncoderLayer> layers, LayerNorm? norm = null) : base(nameof(TransformerEncoder))
    {
        (this.layers, this.norm) = (new ModuleList<TransformerEncoderLayer>(layers.ToArray()), norm);
        RegisterComponents();
    }

    /// <summary>Runs the stack without masks.</summary>
    /// <param name="src"><c>[B, S, d_model]</c>.</param>
    public override Tensor forward(Tensor src) => forward(src, null, null);

    /// <summary>Runs the stack.</summary>
    /// <param name="src"><c>[B, S, d_model]</c>.</param>
    /// <param name="mask"><c>[S, S]</c> attention mask.</param>
    /// <param name="srcKeyPaddingMask"><c>[B, S]</c>, true = padding.</param>
    public Tensor forward(Tensor src, Tensor? mask, Tensor? srcKeyPaddingMask)
    {
        using var scope = NewDisposeScope();
        var x = src;
        foreach (var layer in layers) x = layer.forward(x, mask, srcKeyPaddingMask);
        if (norm is not null) x = norm.forward(x);
        return x.MoveToOuterDisposeScope();
    }
}

/// <summary>A stack of decoder layers and an optional final LayerNorm.</summary>
public sealed class TransformerDecoder : nn.Module<Tensor, Tensor, Tensor>
{
    /// <summary>The layers, applied in order.</summary>
    public readonly ModuleList<TransformerDecoderLayer> layers;
    /// <summary>Final LayerNorm (needed after pre-LN layers).</summary>
    public readonly LayerNorm? norm;

    /// <summary>Stacks the given layers.</summary>
    /// <param name="layers">The layers (distinct instances).</param>
    /// <param name="norm">Optional final LayerNorm.</param>
    public TransformerDecoder(IEnumerable<TransformerDecoderLayer> layers, LayerNorm? norm = null) : base(nameof(TransformerDecoder))
    {
        (this.layers, this.norm) = (new ModuleList<TransformerDecoderLayer>(layers.ToArray()), norm);
        RegisterComponents();
    }

    /// <summary>Runs the stack with a causal target mask.</summary>
    /// <param name="tgt"><c>[B, T, d_model]</c>.</param>
    /// <param name="memory"><c>[B, S, d_model]</c>.</param>
    public override Tensor forward(Tensor tgt, Tensor memory) => forward(tgt, memory, null, null, null, tgtIsCausal: true);

    /// <summary>Runs the stack.</summary>
    /// <param name="tgt"><c>[B, T, d_model]</c>.</param>
    /// <param name="memory"><c>[B, S, d_model]</c>.</param>
    /// <param name="tgtMask"><c>[T, T]</c> self-attention mask.</param>
    /// <param name="tgtKeyPaddingMask"><c>[B, T]</c>, true = padding.</param>
    /// <param name="memoryKeyPaddingMask"><c>[B, S]</c>, true = padding.</param>
    /// <param name="tgtIsCausal">Causal self-attention.</param>
    public Tensor forward(Tensor tgt, Tensor memory, Tensor? tgtMask, Tensor? tgtKeyPaddingMask, Tensor? memoryKeyPaddingMask,
        bool tgtIsCausal)
    {
        using var scope = NewDisposeScope();
        var x = tgt;
        foreach (var layer in layers)
            x = layer.forward(x, memory, tgtMask, null, tgtKeyPaddingMask, memoryKeyPaddingMask, tgtIsCausal);
        if (norm is not null) x = norm.forward(x);
        return x.MoveToOuterDisposeScope();
    }
}
