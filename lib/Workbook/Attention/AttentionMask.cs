using TorchSharp;
using static TorchSharp.torch;

namespace Workbook.Attention;

/// <summary>
/// Builders and checks for attention masks. <b>Convention used throughout Workbook</b> (the PyTorch
/// <c>nn.MultiheadAttention</c> one): a <i>boolean</i> mask is <c>true</c> where attention is <i>not</i> allowed
/// (masked out, padding, the future); a <i>floating</i> mask is <i>added</i> to the scores (0 = keep, -inf = masked,
/// anything else = a bias). Note that PyTorch's and TorchSharp's fused
/// <c>scaled_dot_product_attention</c> use the opposite meaning for boolean masks (true = allowed);
/// <see cref="ScaledDotProductAttention.Fused"/> converts for you.
/// </summary>
public static class AttentionMask
{
    /// <summary>
    /// The causal (look-ahead) mask, bool <c>[queryLength, keyLength]</c>, <c>true</c> where key j lies in the future of
    /// query i (j &gt; i). Aligned top-left like PyTorch's <c>is_causal</c> (query i sees keys 0..i).
    /// </summary>
    /// <param name="queryLength">Number of queries (rows).</param>
    /// <param name="keyLength">Number of keys (columns); defaults to <paramref name="queryLength"/>.</param>
    /// <param name="device">Where to create it (CPU by default).</param>
    public static Tensor Causal(long queryLength, long? keyLength = null, Device? device = null)
    {
        if (queryLength < 0 || (keyLength ?? 0) < 0)
            throw new ArgumentOutOfRangeException(nameof(queryLength), $"Causal mask sizes must be >= 0, got {queryLength}×{keyLength}.");
        return ones(queryLength, keyLength ?? queryLength, dtype: ScalarType.Bool, device: device).triu(1);
    }

    /// <summary>The causal mask as an additive float mask: 0 on and below the diagonal, -inf above.</summary>
    /// <param name="size">Sequence length T (the mask is T×T).</param>
    /// <param name="dtype">Floating dtype of the result.</param>
    /// <param name="device">Where to create it.</param>
    public static Tensor CausalAdditive(long size, ScalarType dtype = ScalarType.Float32, Device? device = null)
    {
        using var causal = Causal(size, device: device);
        return ToAdditive(causal, dtype);
    }

    /// <summary>
    /// A key-padding mask from sequence lengths: bool <c>[B, maxLength]</c>, <c>true</c> at positions j &gt;= length[b]
    /// (padding at the end).
    /// </summary>
    /// <param name="lengths">Valid length of each sequence, each in 0..maxLength.</param>
    /// <param name="maxLength">The padded length.</param>
    /// <param name="device">Where to create it.</param>
    public static Tensor KeyPaddingFromLengths(IReadOnlyList<long> lengths, long maxLength, Device? device = null)
    {
        for (int b = 0; b < lengths.Count; b++)
            if (lengths[b] < 0 || lengths[b] > maxLength)
                throw new ArgumentOutOfRangeException(nameof(lengths), $"lengths[{b}] = {lengths[b]} is outside 0..maxLength={maxLength}.");
        using var len = tensor(lengths.ToArray(), device: device).unsqueeze(1);
        using var pos = arange(maxLength, device: device).unsqueeze(0);
        return pos.ge(len);
    }

    /// <summary>
    /// Converts a mask to the additive form in <paramref name="dtype"/>: a bool mask becomes 0 (keep) / -inf (true =
    /// masked); a floating mask is cast. Integer masks are rejected (see <see cref="CheckDType"/>).
    /// </summary>
    /// <param name="mask">Bool or floating mask.</param>
    /// <param name="dtype">Floating dtype of the result (the scores' dtype).</param>
    public static Tensor ToAdditive(Tensor mask, ScalarType dtype = ScalarType.Float32)
    {
        CheckDType(mask, nameof(mask));
        if (mask.dtype == ScalarType.Bool)
        {
            using var zero = zeros(mask.shape, dtype: dtype, device: mask.device);
            return zero.masked_fill(mask, double.NegativeInfinity);
        }
        return mask.to_type(dtype);
    }

    /// <summary>
    /// Rejects a mask whose dtype is neither bool nor floating, with the expected forms in the message
    /// (a 0/1 integer mask is ambiguous: added, it would shift scores by 1 instead of masking).
    /// </summary>
    /// <param name="mask">The mask to check.</param>
    /// <param name="name">The argument's name, for the message.</param>
    /// <exception cref="ArgumentException">The mask is an integer or complex tensor.</exception>
    public static void CheckDType(Tensor mask, string name)
    {
        if (mask.dtype == ScalarType.Bool || torch.is_floating_point(mask)) return;
        throw new ArgumentException(
            $"{name} has dtype {mask.dtype}; expected Bool (true = masked out) or a floating additive mask " +
            "(0 = keep, -inf = masked). Convert a 0/1 integer mask with mask.to(ScalarType.Bool).", name);
    }
}
