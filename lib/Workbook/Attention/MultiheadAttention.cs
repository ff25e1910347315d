using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Workbook.Attention;

/// <summary>
/// Multi-head attention with the parameter layout of PyTorch's <c>nn.MultiheadAttention</c>, so a PyTorch
/// <c>state_dict</c> loads as is: <c>in_proj_weight [3E, E]</c> (rows 0..E-1 project queries, E..2E-1 keys, 2E..3E-1
/// values), <c>in_proj_bias [3E]</c>, <c>out_proj.weight [E, E]</c>, <c>out_proj.bias [E]</c>.
/// <para>
/// <c>MultiHead(Q, K, V) = Concat(head_1, ..., head_h) W_O</c>, <c>head_i = Attention(Q W_Q^i, K W_K^i, V W_V^i)</c>:
/// the projected features are split into <c>h</c> contiguous chunks of <c>head_dim = E / h</c>, each head attends on
/// its own chunk, and the heads are concatenated back. (<see cref="SeparateHeadsAttention"/> writes the same thing
/// with one small projection per head.)
/// </para>
/// <para>
/// Layout is batch-first and general: <c>query [..., T_q, E]</c>, <c>key</c>/<c>value [..., T_k, E]</c> (e.g.
/// <c>[B, T, E]</c>, or <c>[T, E]</c> unbatched) — unlike TorchSharp's <c>nn.MultiheadAttention</c>, which is
/// sequence-first <c>[T, B, E]</c>. Self-attention: pass the same tensor three times; cross-attention: queries from
/// one sequence, keys and values from another (e.g. the encoder's memory).
/// </para>
/// </summary>
public sealed class MultiheadAttention : nn.Module
{
    /// <summary>Model width E.</summary>
    public readonly long embed_dim;
    /// <summary>Number of heads h.</summary>
    public readonly long num_heads;
    /// <summary>Per-head width E / h.</summary>
    public readonly long head_dim;
    /// <summary>Dropout probability on the attention weights (applied in training mode only).</summary>
    public readonly double dropout;

    /// <summary>Stacked query, key and value projections <c>[3E, E]</c> (PyTorch name).</summary>
    public readonly Parameter in_proj_weight;
    /// <summary>Stacked biases <c>[3E]</c>, or null without bias (PyTorch name).</summary>
    public readonly Parameter? in_proj_bias;
    /// <summary>Output projection W_O (PyTorch name).</summary>
    public readonly Linear out_proj;

    /// <summary>
    /// When true, every forward pass also computes the attention weights (explicit path) and keeps a detached copy in
    /// <see cref="LastWeights"/> (<c>[..., h, T_q, T_k]</c>), e.g. to plot what a trained model attends to.
    /// </summary>
    public bool RecordWeights { get; set; }

    /// <summary>The per-head weights of the last forward pass while <see cref="RecordWeights"/> was on.</summary>
    public Tensor? LastWeights { get; private set; }

    /// <summary>Creates the module with PyTorch's initialisation (Xavier-uniform in-projection, zero biases).</summary>
    /// <param name="dModel">Model width E.</param>
    /// <param name="numHeads">Number of heads h; must divide E.</param>
    /// <param name="dropout">Dropout on the attention weights during training.</param>
    /// <param name="bias">Whether the projections have biases.</param>
    public MultiheadAttention(long dModel, long numHeads, double dropout = 0.0, bool bias = true) : base(nameof(MultiheadAttention))
    {
        if (dModel <= 0 || numHeads <= 0 || dModel % numHeads != 0)
            throw new ArgumentException($"embed_dim ({dModel}) must be a positive multiple of num_heads ({numHeads}).", nameof(numHeads));
        if (!(dropout >= 0 && dropout < 1)) throw new ArgumentOutOfRangeException(nameof(dropout), $"dropout must be in [0, 1), got {dropout}.");
        embed_dim = dModel;
        num_heads = numHeads;
        head_dim = dModel / numHeads;
        this.dropout = dropout;
        in_proj_weight = new Parameter(empty(3 * dModel, dModel));
        in_proj_bias = bias ? new Parameter(zeros(3 * dModel)) : null;
        out_proj = nn.Linear(dModel, dModel, hasBias: bias);
        using (no_grad())
        {
            nn.init.xavier_uniform_(in_proj_weight);
            if (out_proj.bias is not null) nn.init.zeros_(out_proj.bias);
        }
        RegisterComponents();
    }

    /// <summary>
    /// Attends from <paramref name="query"/> to <paramref name="key"/>/<paramref name="value"/>. Uses the fused kernel
    /// when the weights are not needed (<paramref name="needWeights"/> false and <see cref="RecordWeights"/> off).
    /// </summary>
    /// <param name="query"><c>[..., T_q, E]</c>.</param>
    /// <param name="key"><c>[..., T_k, E]</c>.</param>
    /// <param name="value"><c>[..., T_k, E]</c>.</param>
    /// <param name="attnMask"><c>[T_q, T_k]</c>, <c>[..., h, T_q, T_k]</c> or PyTorch's <c>[B·h, T_q, T_k]</c>; bool
    /// (true = masked) or additive floating.</param>
    /// <param name="keyPaddingMask"><c>[B, T_k]</c> (or <c>[T_k]</c>), bool true = padding key, or additive floating.</param>
    /// <param name="isCausal">Mask future keys (j &gt; i).</param>
    /// <param name="needWeights">Return the attention weights.</param>
    /// <param name="averageWeights">Average the returned weights over heads (<c>[..., T_q, T_k]</c>, PyTorch's
    /// default) instead of per head (<c>[..., h, T_q, T_k]</c>).</param>
    /// <returns>Output <c>[..., T_q, E]</c> and the weights (null unless <paramref name="needWeights"/>).</returns>
    public (Tensor Output, Tensor? Weights) forward(Tensor query, Tensor key, Tensor value, Tensor? attnMask = null,
        Tensor? keyPaddingMask = null, bool isCausal = false, bool needWeights = true, bool averageWeights = true)
    {
        CheckInputs(query, key, value);
        if (keyPaddingMask is not null && !keyPaddingMask.shape.SequenceEqual(key.shape[..^1]))
            throw new ArgumentException($"MultiheadAttention: key_padding_mask {Shapes.Of(keyPaddingMask)} does not fit key {Shapes.Of(key)}; " +
                $"expected [batch, key_len] = {Shapes.Of(key.shape[..^1])} (true = padding key).", nameof(keyPaddingMask));
        using var scope = NewDisposeScope();
        long E = embed_dim;
        Tensor q, k, v;
        if (ReferenceEquals(query, key) && ReferenceEquals(key, value))
        {
            // Self-attention: one matmul for all three projections, then split.
            var qkv = nn.functional.linear(query, in_proj_weight, in_proj_bias).chunk(3, -1);
            (q, k, v) = (qkv[0], qkv[1], qkv[2]);
        }
        else
        {
            q = Project(query, 0);
            k = Project(key, 1);
            v = Project(value, 2);
        }
        q = SplitHeads(q);
        k = SplitHeads(k);
        v = SplitHeads(v);
        var mask = attnMask is null ? null : HeadMask(attnMask, q.shape[..^3], query.shape[^2], key.shape[^2]);
        double p = training ? dropout : 0.0;

        Tensor y;
        Tensor? weights = null;
        if (needWeights || RecordWeights)
        {
            (y, weights) = ScaledDotProductAttention.Compute(q, k, v, mask, keyPaddingMask, isCausal, p);
            if (RecordWeights)
            {
                LastWeights?.Dispose();
                LastWeights = weights.detach().clone().DetachFromDisposeScope();
            }
        }
        else
            y = ScaledDotProductAttention.Fused(q, k, v, mask, keyPaddingMask, isCausal, p);

        // [..., h, T_q, head_dim] -> [..., T_q, h, head_dim] -> [..., T_q, E]: concatenate the heads.
        var concat = y.transpose(-3, -2).reshape(query.shape[..^1].Append(E).ToArray());
        var output = out_proj.forward(concat).MoveToOuterDisposeScope();
        if (!needWeights) return (output, null);
        var w = averageWeights ? weights!.mean(new long[] { -3 }) : weights!;
        return (output, w.MoveToOuterDisposeScope());
    }

    /// <summary>Self-attention shortcut: <c>forward(x, x, x, ...)</c>, output only.</summary>
    /// <param name="x"><c>[..., T, E]</c>.</param>
    /// <param name="attnMask">See <see cref="forward(Tensor, Tensor, Tensor, Tensor?, Tensor?, bool, bool, bool)"/>.</param>
    /// <param name="keyPaddingMask"><c>[B, T]</c>, true = padding.</param>
    /// <param name="isCausal">Mask future positions.</param>
    public Tensor SelfAttention(Tensor x, Tensor? attnMask = null, Tensor? keyPaddingMask = null, bool isCausal = false) =>
        forward(x, x, x, attnMask, keyPaddingMask, isCausal, needWeights: false).Output;

    /// <summary>The query (0), key (1) or value (2) projection: rows [i·E, (i+1)·E) of the packed weight.</summary>
    Tensor Project(Tensor x, int which)
    {
        long E = embed_dim;
        var w = in_proj_weight.narrow(0, which * E, E);
        var b = in_proj_bias?.narrow(0, which * E, E);
        return nn.functional.linear(x, w, b);
    }

    /// <summary>[..., T, E] → [..., h, T, head_dim]: head i owns features [i·head_dim, (i+1)·head_dim).</summary>
    Tensor SplitHeads(Tensor x)
    {
        var shape = x.shape[..^1].Append(num_heads).Append(head_dim).ToArray();
        return x.view(shape).transpose(-3, -2);
    }

    /// <summary>Accepts PyTorch's <c>[B·h, T_q, T_k]</c> form by reshaping it to <c>[B, h, T_q, T_k]</c>.</summary>
    Tensor HeadMask(Tensor mask, long[] lead, long tq, long tk)
    {
        if (mask.dim() == 3 && lead.Length == 1 && mask.shape[0] == lead[0] * num_heads && mask.shape[0] != 1
            && mask.shape[1] == tq && mask.shape[2] == tk)
            return mask.view(lead[0], num_heads, tq, tk);
        var scores = lead.Append(num_heads).Append(tq).Append(tk).ToArray();
        AttentionMask.CheckDType(mask, "attn_mask");
        if (!Shapes.BroadcastsTo(mask.shape, scores))
            throw new ArgumentException($"MultiheadAttention: attn_mask {Shapes.Of(mask)} does not fit the per-head scores {Shapes.Of(scores)}; " +
                $"expected [T_q, T_k] = [{tq}, {tk}], [..., num_heads, T_q, T_k] = {Shapes.Of(scores)} or PyTorch's [B*num_heads, T_q, T_k].", "attnMask");
        return mask;
    }

    void CheckInputs(Tensor query, Tensor key, Tensor value)
    {
        if (query.dim() < 2 || query.shape[^1] != embed_dim)
            throw new ArgumentException($"MultiheadAttention: query {Shapes.Of(query)} must be [..., T_q, embed_dim={embed_dim}].", nameof(query));
        if (key.dim() < 2 || key.shape[^1] != embed_dim)
            throw new ArgumentException($"MultiheadAttention: key {Shapes.Of(key)} must be [..., T_k, embed_dim={embed_dim}].", nameof(key));
        if (value.dim() < 2 || value.shape[^1] != embed_dim)
            throw new ArgumentException($"MultiheadAttention: value {Shapes.Of(value)} must be [..., T_k, embed_dim={embed_dim}].", nameof(value));
        if (!key.shape[..^1].SequenceEqual(value.shape[..^1]))
            throw new ArgumentException($"MultiheadAttention: key {Shapes.Of(key)} and value {Shapes.Of(value)} must have the same batch and " +
                "sequence dimensions (one value per key).", nameof(value));
        if (!query.shape[..^2].SequenceEqual(key.shape[..^2]))
            throw new ArgumentException($"MultiheadAttention: query {Shapes.Of(query)} and key {Shapes.Of(key)} must have the same batch " +
                "dimensions (everything before [T, E]).", nameof(key));
    }

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        if (disposing) { LastWeights?.Dispose(); LastWeights = null; }
        base.Dispose(disposing);
    }
}
