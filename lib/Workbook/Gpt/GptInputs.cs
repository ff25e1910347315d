using static TorchSharp.torch;

namespace Workbook.Gpt;

/// <summary>What <see cref="GptModel.Forward"/> checks and builds around the model proper: the input contract and the attention mask.</summary>
internal static class GptInputs
{
    /// <summary>
    /// Throws an <see cref="ArgumentException"/> naming the problem when <paramref name="idx"/> (with its cache and
    /// positions) cannot be fed to the model: libtorch's own errors ("index out of range in self") name neither the
    /// id nor the vocabulary.
    /// </summary>
    public static void Validate(Tensor idx, int past, GptConfig config, KvCache? cache = null, Tensor? positions = null)
    {
        if (idx.dim() != 2) throw new ArgumentException($"Token ids must be [batch, time], got shape [{string.Join(", ", idx.shape)}].", nameof(idx));
        if (idx.dtype != ScalarType.Int64) throw new ArgumentException($"Token ids must be int64, got {idx.dtype}.", nameof(idx));
        long B = idx.shape[0], T = idx.shape[1];
        if (T == 0) throw new ArgumentException("Token ids have no positions (T = 0).", nameof(idx));
        if (cache is not null) CheckCache(cache, B, config);
        if (past + T > config.MaxLength)
            throw new ArgumentException($"Sequence of {past + T} tokens ({past} cached + {T} new) is longer than the context of {config.MaxLength} positions.", nameof(idx));
        CheckRange(idx, config.VocabSize, "Token id", "the vocabulary", nameof(idx));
        if (positions is not null)
        {
            if (positions.dim() != 2 || positions.shape[0] != B || positions.shape[1] != T || positions.dtype != ScalarType.Int64)
                throw new ArgumentException($"Positions must be int64 [batch {B}, time {T}] like the token ids, got {positions.dtype} [{string.Join(", ", positions.shape)}].", nameof(positions));
            CheckRange(positions, config.MaxLength, "Position", "the context", nameof(positions));
        }
    }

    /// <summary>Throws if a value of <paramref name="ids"/> is outside [0, <paramref name="limit"/>), naming the first one and where it is.</summary>
    static void CheckRange(Tensor ids, long limit, string what, string range, string argument)
    {
        long min, max;
        if (ids.numel() == 1) min = max = ids.item<long>(); // the single-token decode path: no reductions
        else
        {
            using var mn = ids.min();
            using var mx = ids.max();
            min = mn.item<long>();
            max = mx.item<long>();
        }
        if (min >= 0 && max < limit) return;
        using var scope = NewDisposeScope();
        var at = ids.lt(0).logical_or(ids.ge(limit)).nonzero()[0].cpu().data<long>().ToArray();
        long value = ids[at[0], at[1]].item<long>();
        throw new ArgumentException($"{what} {value} at [{at[0]}, {at[1]}] is outside {range} [0, {limit}).", argument);
    }

    /// <summary>Throws unless <paramref name="cache"/> was made for <paramref name="config"/>'s layers and heads and for batch <paramref name="batch"/>.</summary>
    static void CheckCache(KvCache cache, long batch, GptConfig config)
    {
        var c = cache.Config;
        if (c.NumLayers != config.NumLayers || c.NumHeads != config.NumHeads || c.HeadDim != config.HeadDim || cache.Capacity > config.MaxLength)
            throw new ArgumentException($"The KV cache was made for {c.NumLayers} layers × {c.NumHeads} heads × head size {c.HeadDim} with capacity {cache.Capacity}, " +
                $"but this model has {config.NumLayers} layers × {config.NumHeads} heads × head size {config.HeadDim} and a context of {config.MaxLength}; " +
                "create it with new KvCache(model.Config, ...).", nameof(cache));
        if (cache.Batch != batch)
            throw new ArgumentException($"The KV cache was made for batch {cache.Batch}, but the input has batch {batch}.", nameof(cache));
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
