using TorchSharp;
using TorchSharp.Modules;
using Workbook.Runtime.Kernels;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Workbook.Quantization;

/// <summary>How a weight-only quantized layer stores its weight.</summary>
public enum WeightFormat
{
    /// <summary>bfloat16: float32's sign, 8-bit exponent and top 7 mantissa bits (round to nearest even): 2 bytes per weight, relative error ≤ 2⁻⁸.</summary>
    BFloat16,
    /// <summary>int8 with one float32 scale per output row (symmetric, per output channel): 1 byte per weight, absolute error ≤ scale / 2.</summary>
    Int8,
}

/// <summary>
/// Weight-only quantization, the math. For a weight <c>W [N, K]</c> (row n = output channel n):
/// <list type="bullet">
/// <item><b>int8, symmetric per output channel</b>: <c>s_n = max_k |W[n,k]| / 127</c>, <c>q[n,k] = round(W[n,k] / s_n)</c>
/// ∈ [-127, 127], <c>Ŵ[n,k] = s_n · q[n,k]</c>. Rounding moves each weight by at most half a step:
/// <c>|W − Ŵ| ≤ s_n / 2</c>. So an output <c>y_n = Σ_k W[n,k] x_k</c> moves by at most <c>(s_n / 2) · ‖x‖₁</c>
/// (<see cref="Int8OutputBound"/>); with errors that behave like independent uniform noise the typical shift is
/// <c>s_n / √12 · ‖x‖₂</c>. "Symmetric" keeps 0 exactly representable and needs no zero point; one scale per row
/// keeps a row of small weights from being rounded with the step of the largest row.</item>
/// <item><b>bfloat16</b>: round to the nearest value with 8 significant bits: <c>|W − Ŵ| ≤ 2⁻⁸ |W|</c>, no scale needed
/// (it keeps float32's exponent range).</item>
/// </list>
/// </summary>
public static class WeightQuantization
{
    /// <summary>Symmetric per-output-channel int8: the int8 values <c>[N, K]</c> and the float32 scales <c>[N]</c>.</summary>
    /// <exception cref="ArgumentException">The weight is not 2-D floating point.</exception>
    public static (Tensor Values, Tensor Scale) QuantizeInt8(Tensor weight)
    {
        if (weight.dim() != 2 || !weight.is_floating_point())
            throw new ArgumentException($"weight must be a 2-D floating-point matrix [out, in], got {weight.dtype} [{string.Join(", ", weight.shape)}].", nameof(weight));
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var w = weight.detach().to(ScalarType.Float32);
        var maxAbs = w.abs().amax([1]);                                          // [N]
        var scale = torch.where(maxAbs.gt(0), maxAbs / 127.0, torch.ones_like(maxAbs)); // an all-zero row keeps step 1 (and stays 0)
        var q = (w / scale.unsqueeze(1)).round().clamp(-127, 127).to(ScalarType.Int8);
        return (q.MoveToOuterDisposeScope(), scale.MoveToOuterDisposeScope());
    }

    /// <summary><c>Ŵ = s_n · q[n, k]</c> in float32.</summary>
    public static Tensor DequantizeInt8(Tensor values, Tensor scale)
    {
        using var scope = NewDisposeScope();
        return (values.to(ScalarType.Float32) * scale.unsqueeze(1)).MoveToOuterDisposeScope();
    }

    /// <summary>The weight rounded to bfloat16 (nearest, ties to even), stored as bfloat16.</summary>
    public static Tensor ToBFloat16(Tensor weight)
    {
        using var _ = no_grad();
        return weight.detach().to(ScalarType.BFloat16);
    }

    /// <summary>
    /// The worst-case shift of each output of an int8 layer: <c>(s_n / 2) · ‖x‖₁</c> for inputs <paramref name="x"/>
    /// <c>[..., K]</c>, shape <c>[..., N]</c>. A bound, not an estimate: every output of the quantized product lies within
    /// it of the float32 product (up to float32 rounding of the sums themselves).
    /// </summary>
    public static Tensor Int8OutputBound(Tensor x, Tensor scale)
    {
        using var scope = NewDisposeScope();
        return (x.abs().sum(-1, keepdim: true) * (scale / 2)).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Converts the float linear layers of <paramref name="model"/> to weight-only <paramref name="format"/> in place,
    /// as PyTorch's <c>quantize_dynamic</c> swaps <c>nn.Linear</c> (here the activations stay float32). Layers are
    /// replaced where their parent holds them as <c>Module&lt;Tensor, Tensor&gt;</c> (every linear layer of
    /// <see cref="Gpt.GptModel"/>, the tied LM head included: it gets its own quantized copy, while the embedding lookup
    /// keeps the float matrix). The float weights of replaced layers are released unless the model still uses them.
    /// Returns the number of layers converted.
    /// </summary>
    public static int QuantizeWeights(this nn.Module model, WeightFormat format)
    {
        var swapped = LayerSwap.ReplaceLinears(model, (_, linear) => QuantizedLinear.FromLinear(linear, format));
        var kept = model.parameters().Select(p => p.Handle).Concat(model.buffers().Select(b => b.Handle)).ToHashSet();
        foreach (var r in swapped.Layers)
        {
            if (!kept.Contains(r.Original.weight.Handle)) r.Original.Dispose();
        }
        return swapped.Layers.Count;
    }

    /// <summary>Bytes the model's weights occupy as stored (parameters and buffers; a tensor shared by two layers counted once).</summary>
    public static long WeightBytes(this nn.Module model) =>
        model.parameters().Cast<Tensor>().Concat(model.buffers()).DistinctBy(t => t.Handle).Sum(t => t.numel() * t.ElementSize);
}

/// <summary>
/// A linear layer with a weight-only quantized weight: <c>y = x Ŵᵀ + b</c> with <c>Ŵ</c> stored as int8 plus one scale
/// per output row, or as bfloat16; activations, bias and arithmetic stay float32. Dequantization happens inside the
/// product, not up front: one input row on the CPU (decoding) runs <see cref="MatVec"/>, which widens each stored weight
/// in a register, so a token reads 1 (int8) or 2 (bf16) bytes per weight instead of 4; several rows (a prompt) or a
/// GPU dequantize the weight for the call and use <c>F.linear</c> (the product is compute-bound there). Inference only:
/// the weight is a buffer, not a parameter.
/// </summary>
public sealed class QuantizedLinear : nn.Module<Tensor, Tensor>
{
    readonly Tensor weight;
    readonly Tensor? scale;
    readonly Tensor? bias;

    QuantizedLinear(Tensor weight, Tensor? scale, Tensor? bias, WeightFormat format) : base(nameof(QuantizedLinear))
    {
        this.weight = weight.DetachFromDisposeScope();
        this.scale = scale?.DetachFromDisposeScope();
        this.bias = bias?.DetachFromDisposeScope();
        Format = format;
        RegisterComponents();
    }

    /// <summary>The stored format.</summary>
    public WeightFormat Format { get; }

    /// <summary>The stored weight <c>[out, in]</c>: int8 or bfloat16.</summary>
    public Tensor Weight => weight;

    /// <summary>The per-row scales <c>[out]</c> (int8 only).</summary>
    public Tensor? Scale => scale;

    /// <summary>Quantizes <paramref name="layer"/>'s weight (a copy; the layer is unchanged).</summary>
    public static QuantizedLinear FromLinear(Linear layer, WeightFormat format)
    {
        using var _ = no_grad();
        var bias = layer.bias?.detach().to(ScalarType.Float32).clone();
        if (format == WeightFormat.Int8)
        {
            var (q, s) = WeightQuantization.QuantizeInt8(layer.weight);
            return new QuantizedLinear(q, s, bias, format);
        }
        return new QuantizedLinear(WeightQuantization.ToBFloat16(layer.weight), null, bias, format);
    }

    /// <summary>The weight as float32, <c>[out, in]</c> (a new tensor).</summary>
    public Tensor Dequantize() => scale is not null ? WeightQuantization.DequantizeInt8(weight, scale) : weight.to(ScalarType.Float32);

    /// <inheritdoc/>
    public override Tensor forward(Tensor x)
    {
        long k = weight.shape[1];
        if (x.dim() == 0 || x.shape[^1] != k)
            throw new ArgumentException($"Input [{string.Join(", ", x.shape)}] does not fit the layer's in_features {k} (its last dimension must be {k}).", nameof(x));
        if (x.numel() == k && MatVec.IsSupported && x.device_type == DeviceType.CPU && x.dtype == ScalarType.Float32 && !(is_grad_enabled() && x.requires_grad))
        {
            int threads = InferenceLinear.ChooseThreads(weight, scale).Threads;
            return scale is not null ? MatVec.LinearInt8(x, weight, scale, bias, threads) : MatVec.LinearBFloat16(x, weight, bias, threads);
        }
        using var scope = NewDisposeScope();
        var w = Dequantize();
        return (x.dtype == ScalarType.Float32 ? F.linear(x, w, bias) : F.linear(x, w.to(x.dtype), bias?.to(x.dtype))).MoveToOuterDisposeScope();
    }
}
