using static TorchSharp.torch;

namespace Workbook.Gpt;

/// <summary>What <see cref="GptModel.Forward"/> checks and builds around the model proper: the input contract and the attention mask.</summary>
internal static class GptInputs
{
    /// <summary>Throws an <see cref="ArgumentException"/> naming the problem when <paramref name="idx"/> cannot be fed to the model.</summary>
    public static void Validate(Tensor idx, int past, GptConfig config)
    {
        if (idx.dim() != 2) throw new ArgumentException($"Token ids must be [batch, time], got shape [{string.Join(", ", idx.shape)}].", nameof(idx));
        if (idx.dtype != ScalarType.Int64) throw new ArgumentException($"Token ids must be int64, got {idx.dtype}.", nameof(idx));
        long T = idx.shape[1];
        if (T == 0) throw new ArgumentException("Token ids have no positions (T = 0).", nameof(idx));
        if (past + T > config.MaxLength)
            throw new ArgumentException($"Sequence of {past + T} tokens ({past} cached + {T} new) is longer than the context of {config.MaxLength} positions.", nameof(idx));
    }

    /// <summary>
    /// The additive attention mask <c>[B|1, 1, T, past+T]</c>, or null when the attention layers can use plain causal
    /// attention. Query i (absolute position past+i) may see key s iff s ≤ past+i and key s is not padding; a padding
    /// query may always see itself, so that no row is fully masked (its output is never used).
    /// </summary>
    public static Tensor? AttentionMask(long B, long T, int past, Tensor? padding, Device device, ScalarType dtype)
    {
        if (padding is null && (past == 0 || T == 1)) return null;
        long S = past + T;
        var query = arange(past, S, device: device).view(T, 1);
        var key = arange(0, S, device: device).view(1, S);
        var allowed = key.le(query).view(1, 1, T, S);
        if (padding is not null)
        {
            if (padding.dim() != 2 || padding.shape[0] != B || padding.shape[1] != S)
                throw new ArgumentException($"Padding mask must be [batch {B}, past+T {S}], got [{string.Join(", ", padding.shape)}].", nameof(padding));
            allowed = allowed.logical_and(padding.logical_not().view(B, 1, 1, S)).logical_or(key.eq(query).view(1, 1, T, S));
        }
        return zeros(allowed.shape, dtype: dtype, device: device).masked_fill(allowed.logical_not(), double.NegativeInfinity);
    }
}
