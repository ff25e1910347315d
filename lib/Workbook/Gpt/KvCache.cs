using TorchSharp;
using static TorchSharp.torch;

namespace Workbook.Gpt;

/// <summary>
/// The key/value cache of incremental decoding. Generating token t+1 needs the keys and values of all earlier
/// positions in every layer; they do not change once computed (causal attention: position s never looks at later
/// tokens), so the cache keeps them and each step only runs the new token through the model: O(T) work per token
/// instead of O(T²) for a full recompute. Buffers are preallocated to <see cref="Capacity"/> positions,
/// <c>[batch, n_head, capacity, head_dim]</c> per layer (Hugging Face's <c>past_key_values</c> layout).
/// For inference only; dispose it when done.
/// </summary>
public sealed class KvCache : IDisposable
{
    readonly Tensor[] _keys, _values;
    bool _disposed;

    /// <summary>Creates an empty cache for <paramref name="batch"/> sequences of up to <paramref name="capacity"/> tokens.</summary>
    /// <exception cref="ArgumentOutOfRangeException">Batch or capacity is not positive, or capacity exceeds the context length.</exception>
    public KvCache(GptConfig config, long batch, int capacity, Device? device = null, ScalarType dtype = ScalarType.Float32)
    {
        ArgumentNullException.ThrowIfNull(config);
        config.Validate();
        if (batch <= 0) throw new ArgumentOutOfRangeException(nameof(batch), batch, "The batch size must be positive.");
        if (capacity <= 0 || capacity > config.MaxLength)
            throw new ArgumentOutOfRangeException(nameof(capacity), capacity, $"The cache capacity must be in [1, n_positions = {config.MaxLength}].");
        Config = config;
        Batch = batch;
        Capacity = capacity;
        _keys = new Tensor[config.NumLayers];
        _values = new Tensor[config.NumLayers];
        for (int i = 0; i < config.NumLayers; i++)
        {
            // Detached from any dispose scope: the cache lives across generation steps, each of which has its own scope.
            _keys[i] = zeros([batch, config.NumHeads, capacity, config.HeadDim], dtype: dtype, device: device).DetachFromDisposeScope();
            _values[i] = zeros([batch, config.NumHeads, capacity, config.HeadDim], dtype: dtype, device: device).DetachFromDisposeScope();
        }
    }

    /// <summary>The model config the cache was made for.</summary>
    public GptConfig Config { get; }

    /// <summary>Number of sequences.</summary>
    public long Batch { get; }

    /// <summary>Maximum number of positions it can hold.</summary>
    public int Capacity { get; }

    /// <summary>Number of positions cached so far (the "past length" of the next forward pass).</summary>
    public int Length { get; private set; }

    /// <summary>Layer <paramref name="layer"/>'s cached keys, <c>[B, H, Length, head_dim]</c> (a view).</summary>
    public Tensor Key(int layer) => _keys[CheckLayer(layer)].narrow(2, 0, Length);

    /// <summary>Layer <paramref name="layer"/>'s cached values, <c>[B, H, Length, head_dim]</c> (a view).</summary>
    public Tensor Value(int layer) => _values[CheckLayer(layer)].narrow(2, 0, Length);

    int CheckLayer(int layer)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        return layer >= 0 && layer < _keys.Length ? layer
            : throw new ArgumentOutOfRangeException(nameof(layer), layer, $"The cache holds layers 0 to {_keys.Length - 1}.");
    }

    /// <summary>Forgets everything cached (the buffers are reused).</summary>
    public void Reset() => Length = 0;

    /// <summary>
    /// Writes a layer's new keys and values <c>[B, H, T, hd]</c> after the cached ones and returns views of all
    /// <c>Length + T</c> positions. <see cref="Advance"/> commits the new length once every layer has written.
    /// </summary>
    internal (Tensor Keys, Tensor Values) Append(int layer, Tensor k, Tensor v)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        long t = k.shape[2];
        if (Length + t > Capacity)
            throw new InvalidOperationException($"KV cache overflow: {Length} cached + {t} new positions exceed its capacity of {Capacity}.");
        if (k.shape[0] != Batch)
            throw new ArgumentException($"KV cache was made for batch {Batch}, but the input has batch {k.shape[0]}.", nameof(k));
        using (no_grad())
        {
            _keys[layer].narrow(2, Length, t).copy_(k);
            _values[layer].narrow(2, Length, t).copy_(v);
        }
        return (_keys[layer].narrow(2, 0, Length + t), _values[layer].narrow(2, 0, Length + t));
    }

    /// <summary>Commits <paramref name="t"/> new positions (called by the model after all layers appended).</summary>
    internal void Advance(int t) => Length += t;

    /// <inheritdoc/>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        foreach (var t in _keys.Concat(_values)) t.Dispose();
    }
}
