using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Workbook.Attention;

/// <summary>One attention head with its own query, key and value projections <c>E → head_dim</c>.</summary>
public sealed class AttentionHead : nn.Module
{
    /// <summary>W_Q^i: <c>[head_dim, E]</c>.</summary>
    public readonly Linear q_proj;
    /// <summary>W_K^i: <c>[head_dim, E]</c>.</summary>
    public readonly Linear k_proj;
    /// <summary>W_V^i: <c>[head_dim, E]</c>.</summary>
    public readonly Linear v_proj;

    /// <summary>Creates a head.</summary>
    /// <param name="dModel">Model width E.</param>
    /// <param name="headDim">This head's width.</param>
    /// <param name="bias">Whether the projections have biases.</param>
    public AttentionHead(long dModel, long headDim, bool bias = true) : base(nameof(AttentionHead))
    {
        q_proj = nn.Linear(dModel, headDim, hasBias: bias);
        k_proj = nn.Linear(dModel, headDim, hasBias: bias);
        v_proj = nn.Linear(dModel, headDim, hasBias: bias);
        RegisterComponents();
    }

    /// <summary><c>head_i = Attention(Q W_Q^i, K W_K^i, V W_V^i)</c>; returns the head's output and weights.</summary>
    /// <param name="query"><c>[..., T_q, E]</c>.</param>
    /// <param name="key"><c>[..., T_k, E]</c>.</param>
    /// <param name="value"><c>[..., T_k, E]</c>.</param>
    /// <param name="attnMask">Bool (true = masked) or additive mask, broadcastable to <c>[..., T_q, T_k]</c>.</param>
    /// <param name="keyPaddingMask"><c>[B, T_k]</c>, true = padding.</param>
    /// <param name="isCausal">Mask future keys.</param>
    /// <param name="dropout">Dropout on the weights (0 when evaluating).</param>
    public (Tensor Output, Tensor Weights) forward(Tensor query, Tensor key, Tensor value, Tensor? attnMask = null,
        Tensor? keyPaddingMask = null, bool isCausal = false, double dropout = 0.0)
    {
        using var scope = NewDisposeScope();
        var (o, w) = ScaledDotProductAttention.Compute(q_proj.forward(query), k_proj.forward(key), v_proj.forward(value),
            attnMask, keyPaddingMask, isCausal, dropout);
        return (o.MoveToOuterDisposeScope(), w.MoveToOuterDisposeScope());
    }
}

/// <summary>
/// Multi-head attention written the way the paper defines it, for teaching:
/// <c>MultiHead(Q, K, V) = Concat(head_1, ..., head_h) W_O</c> with <c>h</c> separate <see cref="AttentionHead"/>s,
/// each with its own small projections. It computes exactly what <see cref="MultiheadAttention"/> computes
/// (whose packed <c>in_proj_weight</c> is these per-head matrices stacked); <see cref="CopyFrom"/> shows the mapping.
/// Slower (h small matmuls instead of one big one); use <see cref="MultiheadAttention"/> in models.
/// </summary>
public sealed class SeparateHeadsAttention : nn.Module
{
    /// <summary>Model width E.</summary>
    public readonly long embed_dim;
    /// <summary>Per-head width E / h.</summary>
    public readonly long head_dim;
    /// <summary>Dropout probability on the attention weights (training only).</summary>
    public readonly double dropout;
    /// <summary>The h heads.</summary>
    public readonly ModuleList<AttentionHead> heads;
    /// <summary>W_O: <c>[E, E]</c>, mixes the concatenated heads.</summary>
    public readonly Linear out_proj;

    /// <summary>Creates h heads of width E / h and the output projection.</summary>
    /// <param name="dModel">Model width E.</param>
    /// <param name="numHeads">Number of heads; must divide E.</param>
    /// <param name="dropout">Dropout on the attention weights during training.</param>
    /// <param name="bias">Whether the projections have biases.</param>
    public SeparateHeadsAttention(long dModel, long numHeads, double dropout = 0.0, bool bias = true) : base(nameof(SeparateHeadsAttention))
    {
        if (dModel <= 0 || numHeads <= 0 || dModel % numHeads != 0)
            throw new ArgumentException($"embed_dim ({dModel}) must be a positive multiple of num_heads ({numHeads}).", nameof(numHeads));
        embed_dim = dModel;
        head_dim = dModel / numHeads;
        this.dropout = dropout;
        heads = new ModuleList<AttentionHead>(Enumerable.Range(0, (int)numHeads).Select(_ => new AttentionHead(dModel, head_dim, bias)).ToArray());
        out_proj = nn.Linear(dModel, dModel, hasBias: bias);
        RegisterComponents();
    }

    /// <summary>Runs every head, concatenates their outputs and projects with W_O.</summary>
    /// <param name="query"><c>[..., T_q, E]</c>.</param>
    /// <param name="key"><c>[..., T_k, E]</c>.</param>
    /// <param name="value"><c>[..., T_k, E]</c>.</param>
    /// <param name="attnMask">Bool (true = masked) or additive mask, broadcastable to <c>[..., T_q, T_k]</c>.</param>
    /// <param name="keyPaddingMask"><c>[B, T_k]</c>, true = padding.</param>
    /// <param name="isCausal">Mask future keys.</param>
    /// <returns>Output <c>[..., T_q, E]</c> and per-head weights <c>[..., h, T_q, T_k]</c>.</returns>
    public (Tensor Output, Tensor Weights) forward(Tensor query, Tensor key, Tensor value, Tensor? attnMask = null,
        Tensor? keyPaddingMask = null, bool isCausal = false)
    {
        if (query.shape[^1] != embed_dim || key.shape[^1] != embed_dim || value.shape[^1] != embed_dim)
            throw new ArgumentException($"SeparateHeadsAttention: query {Shapes.Of(query)}, key {Shapes.Of(key)} and value {Shapes.Of(value)} " +
                $"must all end in embed_dim={embed_dim}.", nameof(query));
        using var scope = NewDisposeScope();
        double p = training ? dropout : 0.0;
        var outs = new List<Tensor>();
        var weights = new List<Tensor>();
        foreach (var head in heads)
        {
            var (o, w) = head.forward(query, key, value, attnMask, keyPaddingMask, isCausal, p);
            outs.Add(o);
            weights.Add(w);
        }
        var output = out_proj.forward(cat(outs, -1));
        return (output.MoveToOuterDisposeScope(), stack(weights, -3).MoveToOuterDisposeScope());
    }

    /// <summary>
    /// Copies the weights of a packed <see cref="MultiheadAttention"/>: head i's W_Q is rows
    /// <c>[i·head_dim, (i+1)·head_dim)</c> of the query block of <c>in_proj_weight</c> (likewise K at offset E, V at 2E).
    /// </summary>
    /// <param name="source">A module with the same E and h.</param>
    public void CopyFrom(MultiheadAttention source)
    {
        if (source.embed_dim != embed_dim || source.num_heads != heads.Count)
            throw new ArgumentException($"CopyFrom: source has embed_dim={source.embed_dim}, num_heads={source.num_heads}; this module has " +
                $"embed_dim={embed_dim}, num_heads={heads.Count}.", nameof(source));
        using var noGrad = no_grad();
        long E = embed_dim, hd = head_dim;
        for (int i = 0; i < heads.Count; i++)
        {
            var projections = new[] { heads[i].q_proj, heads[i].k_proj, heads[i].v_proj };
            for (int which = 0; which < 3; which++)
            {
                long row = which * E + i * hd;
                projections[which].weight!.copy_(source.in_proj_weight.narrow(0, row, hd));
                if (projections[which].bias is { } b && source.in_proj_bias is { } sb) b.copy_(sb.narrow(0, row, hd));
            }
        }
        out_proj.weight!.copy_(source.out_proj.weight!);
        if (out_proj.bias is { } ob && source.out_proj.bias is { } sob) ob.copy_(sob);
    }
}
