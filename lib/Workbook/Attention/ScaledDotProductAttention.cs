using TorchSharp;
using static TorchSharp.torch;

namespace Workbook.Attention;

/// <summary>
/// Scaled dot-product attention (Vaswani et al. 2017, eq. 1):
/// <c>Attention(Q, K, V) = softmax(Q Kᵀ / √d_k + mask) V</c>.
/// <para>
/// Layout: any <c>[..., seq, d]</c>. <c>query [..., T_q, d_k]</c>, <c>key [..., T_k, d_k]</c>,
/// <c>value [..., T_k, d_v]</c>; the leading (batch, head, ...) dimensions broadcast. The scores and weights are
/// <c>[..., T_q, T_k]</c>, the softmax runs over the last (key) axis, the output is <c>[..., T_q, d_v]</c>.
/// </para>
/// <para>
/// Masks (all optional, combined): <c>isCausal</c> (query i sees keys 0..i), <c>attnMask</c> (bool, true = masked, or
/// floating and added; broadcastable to <c>[..., T_q, T_k]</c>, e.g. <c>[T_q, T_k]</c>) and <c>keyPaddingMask</c>
/// (<c>[B, T_k]</c> where B is the first dimension, or <c>[T_k]</c>; bool true = padding key, or floating and added).
/// See <see cref="AttentionMask"/> for the convention. A query row whose keys are all masked gets all-zero weights
/// (and a zero output), as in libtorch's fused kernel, instead of the NaN a plain softmax would give.
/// </para>
/// </summary>
public static class ScaledDotProductAttention
{
    /// <summary>
    /// The explicit computation, step by step. Returns the output and the attention weights (after dropout, i.e.
    /// the weights the output was computed with, as PyTorch's <c>nn.MultiheadAttention</c> returns them).
    /// </summary>
    /// <param name="query">Q, <c>[..., T_q, d_k]</c>.</param>
    /// <param name="key">K, <c>[..., T_k, d_k]</c>.</param>
    /// <param name="value">V, <c>[..., T_k, d_v]</c>.</param>
    /// <param name="attnMask">Bool (true = masked) or additive floating mask broadcastable to <c>[..., T_q, T_k]</c>.</param>
    /// <param name="keyPaddingMask"><c>[B, T_k]</c> or <c>[T_k]</c>, bool (true = padding) or additive floating.</param>
    /// <param name="isCausal">Mask keys j &gt; i (top-left aligned).</param>
    /// <param name="dropout">Dropout probability on the weights; pass 0 at evaluation time (modules pass
    /// <c>training ? p : 0</c>).</param>
    /// <param name="scale">Score scale; <c>1/√d_k</c> when null.</param>
    /// <returns><c>Output [..., T_q, d_v]</c> and <c>Weights [..., T_q, T_k]</c>.</returns>
    /// <exception cref="ArgumentException">Shapes, dtypes or devices do not fit; the message names the tensors.</exception>
    public static (Tensor Output, Tensor Weights) Compute(Tensor query, Tensor key, Tensor value, Tensor? attnMask = null,
        Tensor? keyPaddingMask = null, bool isCausal = false, double dropout = 0.0, double? scale = null)
    {
        var scoresShape = Validate(query, key, value, attnMask, keyPaddingMask, dropout, scale);
        using var scope = NewDisposeScope();
        double s = scale ?? 1.0 / Math.Sqrt(query.shape[^1]);

        // scores[..., i, j] = q_i · k_j / √d_k: similarity of query i with key j.
        var scores = matmul(query, key.transpose(-2, -1)).mul(s);
        bool masked = isCausal || attnMask is not null || keyPaddingMask is not null;
        if (isCausal) scores = scores.masked_fill(AttentionMask.Causal(scoresShape[^2], scoresShape[^1], query.device), double.NegativeInfinity);
        if (attnMask is not null) scores = ApplyMask(scores, attnMask);
        if (keyPaddingMask is not null) scores = ApplyMask(scores, KeyPaddingToScores(keyPaddingMask, scoresShape.Length));

        // softmax over keys: each query's weights are a probability distribution over the keys it may see.
        var weights = scores.softmax(-1);
        if (masked)
        {
            // A fully masked row is softmax(-inf, ..., -inf) = NaN; define it as "attend to nothing" (zeros).
            var dead = scores.amax(new long[] { -1 }, keepdim: true).eq(double.NegativeInfinity);
            weights = weights.masked_fill(dead, 0.0);
        }
        if (dropout > 0) weights = nn.functional.dropout(weights, dropout, training: true);

        var output = matmul(weights, value);
        return (output.MoveToOuterDisposeScope(), weights.MoveToOuterDisposeScope());
    }

    /// <summary>
    /// The fast path: libtorch's fused <c>scaled_dot_product_attention</c> kernel (flash / memory-efficient / math,
    /// chosen by libtorch), which never materialises the weights. Same arguments and same output as
    /// <see cref="Compute"/> (tested equal), with Workbook's mask convention (bool true = masked) converted to the
    /// kernel's (true = allowed). Use it when the weights are not needed.
    /// </summary>
    /// <param name="query">Q, <c>[..., T_q, d_k]</c>.</param>
    /// <param name="key">K, <c>[..., T_k, d_k]</c>.</param>
    /// <param name="value">V, <c>[..., T_k, d_v]</c>.</param>
    /// <param name="attnMask">Bool (true = masked) or additive floating mask broadcastable to <c>[..., T_q, T_k]</c>.</param>
    /// <param name="keyPaddingMask"><c>[B, T_k]</c> or <c>[T_k]</c>, bool (true = padding) or additive floating.</param>
    /// <param name="isCausal">Mask keys j &gt; i (top-left aligned).</param>
    /// <param name="dropout">Dropout probability on the weights (0 at evaluation time).</param>
    /// <param name="scale">Score scale; <c>1/√d_k</c> when null.</param>
    /// <returns>The output <c>[..., T_q, d_v]</c>.</returns>
    public static Tensor Fused(Tensor query, Tensor key, Tensor value, Tensor? attnMask = null,
        Tensor? keyPaddingMask = null, bool isCausal = false, double dropout = 0.0, double? scale = null)
    {
        var scoresShape = Validate(query, key, value, attnMask, keyPaddingMask, dropout, scale);
        using var scope = NewDisposeScope();
        long dk = query.shape[^1];
        // The kernel scales by 1/√d_k and has no scale argument here: fold a custom scale into Q.
        var q = scale is null ? query : query.mul(scale.Value * Math.Sqrt(dk));
        // The kernel wants the same leading dimensions on Q, K and V: expand (views, no copies).
        var lead = scoresShape[..^2];
        q = q.expand(lead.Append(q.shape[^2]).Append(dk).ToArray());
        var k = key.expand(lead.Append(key.shape[^2]).Append(dk).ToArray());
        var v = value.expand(lead.Append(value.shape[^2]).Append(value.shape[^1]).ToArray());

        Tensor? mask = null;
        bool kernelCausal = false;
        if (attnMask is null && keyPaddingMask is null)
            kernelCausal = isCausal;
        else
        {
            var parts = new List<Tensor>();
            if (isCausal) parts.Add(AttentionMask.Causal(scoresShape[^2], scoresShape[^1], query.device));
            if (attnMask is not null) parts.Add(attnMask);
            if (keyPaddingMask is not null) parts.Add(KeyPaddingToScores(keyPaddingMask, scoresShape.Length));
            if (parts.All(p => p.dtype == ScalarType.Bool))
            {
                // OR the "masked" masks, then invert: the kernel's bool mask means "may attend".
                var anyMasked = parts[0];
                foreach (var p in parts.Skip(1)) anyMasked = anyMasked.logical_or(p);
                mask = anyMasked.logical_not();
            }
            else
            {
                mask = AttentionMask.ToAdditive(parts[0], query.dtype);
                foreach (var p in parts.Skip(1)) mask = mask.add(AttentionMask.ToAdditive(p, query.dtype));
            }
        }
        var output = nn.functional.scaled_dot_product_attention(q, k, v, mask, dropout, kernelCausal);
        return output.MoveToOuterDisposeScope();
    }

    static Tensor ApplyMask(Tensor scores, Tensor mask) =>
        mask.dtype == ScalarType.Bool ? scores.masked_fill(mask, double.NegativeInfinity) : scores.add(mask.to_type(scores.dtype));

    /// <summary>[B, T_k] → [B, 1, ..., 1, T_k] so that it broadcasts over heads and queries; [T_k] broadcasts as is.</summary>
    static Tensor KeyPaddingToScores(Tensor keyPaddingMask, int scoresRank)
    {
        if (keyPaddingMask.dim() == 1) return keyPaddingMask;
        var shape = new long[scoresRank];
        Array.Fill(shape, 1L);
        shape[0] = keyPaddingMask.shape[0];
        shape[^1] = keyPaddingMask.shape[1];
        return keyPaddingMask.view(shape);
    }

    /// <summary>Checks every argument and returns the scores' shape <c>[..., T_q, T_k]</c>.</summary>
    internal static long[] Validate(Tensor query, Tensor key, Tensor value, Tensor? attnMask, Tensor? keyPaddingMask,
        double dropout, double? scale)
    {
        const string who = "Scaled dot-product attention";
        if (query.dim() < 2 || key.dim() < 2 || value.dim() < 2)
            throw new ArgumentException($"{who} needs query, key and value laid out as [..., seq, d]; got query {Shapes.Of(query)}, " +
                $"key {Shapes.Of(key)}, value {Shapes.Of(value)}.", query.dim() < 2 ? nameof(query) : key.dim() < 2 ? nameof(key) : nameof(value));
        if (!is_floating_point(query))
            throw new ArgumentException($"{who}: query must be floating point, got {query.dtype}.", nameof(query));
        if (key.dtype != query.dtype || value.dtype != query.dtype)
            throw new ArgumentException($"{who}: query, key and value must share a dtype; got {query.dtype}, {key.dtype}, {value.dtype}.", nameof(key));
        if (!Shapes.SameDevice(key, query) || !Shapes.SameDevice(value, query))
            throw new ArgumentException($"{who}: query, key and value must be on one device; got {query.device}, {key.device}, {value.device}.", nameof(key));
        if (query.shape[^1] != key.shape[^1])
            throw new ArgumentException($"{who}: query {Shapes.Of(query)} and key {Shapes.Of(key)} must have the same last dimension " +
                $"d_k (q·k needs equal sizes), got {query.shape[^1]} and {key.shape[^1]}.", nameof(key));
        if (key.shape[^2] != value.shape[^2])
            throw new ArgumentException($"{who}: key {Shapes.Of(key)} and value {Shapes.Of(value)} must have the same sequence length " +
                $"(dim -2: one value per key), got {key.shape[^2]} and {value.shape[^2]}.", nameof(value));
        long[] qLead = query.shape[..^2], kLead = key.shape[..^2], vLead = value.shape[..^2];
        if (!Shapes.Compatible(qLead, kLead) || !Shapes.Compatible(kLead, vLead) || !Shapes.Compatible(qLead, vLead))
            throw new ArgumentException($"{who}: the leading (batch/head) dimensions of query {Shapes.Of(query)}, key {Shapes.Of(key)} " +
                $"and value {Shapes.Of(value)} do not broadcast ({Shapes.Of(qLead)}, {Shapes.Of(kLead)}, {Shapes.Of(vLead)}).", nameof(key));
        var lead = Shapes.Broadcast(Shapes.Broadcast(qLead, kLead), vLead);
        long tq = query.shape[^2], tk = key.shape[^2];
        var scores = lead.Append(tq).Append(tk).ToArray();

        if (attnMask is not null)
        {
            AttentionMask.CheckDType(attnMask, "attn_mask");
            if (!Shapes.BroadcastsTo(attnMask.shape, scores))
                throw new ArgumentException($"{who}: attn_mask {Shapes.Of(attnMask)} does not broadcast to the scores {Shapes.Of(scores)} " +
                    $"= [..., query_len, key_len]; expected [{tq}, {tk}] or a shape broadcastable to {Shapes.Of(scores)}.", nameof(attnMask));
            if (!Shapes.SameDevice(attnMask, query))
                throw new ArgumentException($"{who}: attn_mask is on {attnMask.device} but query is on {query.device}.", nameof(attnMask));
        }
        if (keyPaddingMask is not null)
        {
            AttentionMask.CheckDType(keyPaddingMask, "key_padding_mask");
            var expected = lead.Length == 0 ? new[] { tk } : new[] { lead[0], tk };
            if (!keyPaddingMask.shape.SequenceEqual(expected) && !(keyPaddingMask.dim() == 1 && keyPaddingMask.shape[0] == tk))
                throw new ArgumentException($"{who}: key_padding_mask {Shapes.Of(keyPaddingMask)} does not fit keys {Shapes.Of(key)}; " +
                    $"expected [batch, key_len] = {Shapes.Of(expected)} (true = padding key).", nameof(keyPaddingMask));
            if (!Shapes.SameDevice(keyPaddingMask, query))
                throw new ArgumentException($"{who}: key_padding_mask is on {keyPaddingMask.device} but query is on {query.device}.", nameof(keyPaddingMask));
        }
        if (!(dropout >= 0 && dropout < 1))
            throw new ArgumentOutOfRangeException(nameof(dropout), $"{who}: dropout must be in [0, 1), got {dropout}.");
        if (scale is { } sc && !(sc > 0 && double.IsFinite(sc)))
            throw new ArgumentOutOfRangeException(nameof(scale), $"{who}: scale must be positive and finite, got {sc}.");
        return scores;
    }
}
