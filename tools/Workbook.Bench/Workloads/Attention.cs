using System.Text.Json.Nodes;
using TorchSharp;
using Workbook.Attention;
using static TorchSharp.torch;

namespace Workbook.Bench.Workloads;

/// <summary>
/// Workload 4: attention forward on <c>[B, H, T, D] = [8, 8, 256, 64]</c>, no mask, no grad: the explicit
/// <c>softmax(q kᵀ/√D) v</c> (three kernels and a T×T matrix) versus libtorch's fused scaled_dot_product_attention.
/// </summary>
public sealed class AttentionWorkload : IWorkload
{
    /// <inheritdoc/>
    public string Name => "attention";
    /// <inheritdoc/>
    public string Description => "attention forward [8,8,256,64]: explicit softmax(qk^T/sqrt d)v vs fused sdpa, ms";
    /// <inheritdoc/>
    public IReadOnlyList<RowSpec> Rows { get; } = [new("attn_explicit", "ms", false), new("attn_fused", "ms", false)];
    /// <inheritdoc/>
    public bool HasPyTorch => true;

    /// <inheritdoc/>
    public JsonObject Parameters(bool smoke) => new()
    {
        ["shape"] = smoke ? new JsonArray(2, 2, 32, 16) : new JsonArray(8, 8, 256, 64),
        ["iters"] = smoke ? 2 : 20, ["reps"] = smoke ? 3 : 5,
    };

    /// <summary>The textbook form, the library's <see cref="ScaledDotProductAttention.Compute"/>: scores, softmax over keys, weighted sum of values.</summary>
    public static Tensor Explicit(Tensor q, Tensor k, Tensor v)
    {
        var (output, weights) = ScaledDotProductAttention.Compute(q, k, v);
        weights.Dispose();
        return output;
    }

    /// <inheritdoc/>
    public IReadOnlyList<Figure> Run(JsonObject p)
    {
        var shape = p.Longs("shape");
        int iters = p.Int("iters"), reps = p.Int("reps");
        torch.manual_seed(0);
        using var q = randn(shape);
        using var k = randn(shape);
        using var v = randn(shape);
        using var _ = no_grad();
        double[] Ms(Func<Tensor> f) => Stats.TimeReps(reps, warmup: 1, () =>
        {
            for (int i = 0; i < iters; i++) { using var scope = NewDisposeScope(); f(); }
        }).Select(s => s * 1000 / iters).ToArray();
        var explicitMs = Ms(() => Explicit(q, k, v));
        var fusedMs = Ms(() => ScaledDotProductAttention.Fused(q, k, v));
        using var diff = (Explicit(q, k, v) - ScaledDotProductAttention.Fused(q, k, v)).abs().max();
        var extra = new JsonObject { ["max_abs_diff_explicit_vs_fused"] = diff.item<float>(), ["impl"] = "Workbook.Attention.ScaledDotProductAttention.Compute / .Fused" };
        return [new Figure("attn_explicit", explicitMs, extra), new Figure("attn_fused", fusedMs)];
    }
}

/// <summary>
/// Memory bandwidth as torch sees it: <c>dst.copy_(src)</c> of a large float tensor (bytes read + bytes written per
/// second, STREAM's "copy" convention) and <c>src.sum()</c> (bytes read per second).
/// </summary>
public sealed class BandwidthWorkload : IWorkload
{
    /// <inheritdoc/>
    public string Name => "bandwidth";
    /// <inheritdoc/>
    public string Description => "memory bandwidth: tensor copy (read+write) and sum (read), GB/s";
    /// <inheritdoc/>
    public IReadOnlyList<RowSpec> Rows { get; } = [new("copy_bandwidth", "GB/s", true), new("read_bandwidth", "GB/s", true)];
    /// <inheritdoc/>
    public bool HasPyTorch => true;

    /// <inheritdoc/>
    public JsonObject Parameters(bool smoke) => new() { ["numel"] = smoke ? 1 << 20 : 64 << 20, ["iters"] = smoke ? 2 : 10, ["reps"] = smoke ? 3 : 5 };

    /// <summary>Copy bandwidth (GB/s, read + write) per repetition for a tensor of <paramref name="numel"/> floats.</summary>
    public static double[] Copy(long numel, int iters, int reps)
    {
        using var src = randn(numel);
        using var dst = empty(numel);
        return Stats.TimeReps(reps, 1, () => { for (int i = 0; i < iters; i++) dst.copy_(src); })
            .Select(s => 2.0 * numel * 4 * iters / s / 1e9).ToArray();
    }

    /// <summary>Read bandwidth (GB/s) per repetition: <c>sum()</c> of a tensor of <paramref name="numel"/> floats.</summary>
    public static double[] Read(long numel, int iters, int reps)
    {
        using var src = randn(numel);
        return Stats.TimeReps(reps, 1, () => { for (int i = 0; i < iters; i++) src.sum().Dispose(); })
            .Select(s => (double)numel * 4 * iters / s / 1e9).ToArray();
    }

    /// <inheritdoc/>
    public IReadOnlyList<Figure> Run(JsonObject p)
    {
        long numel = p.Int("numel");
        int iters = p.Int("iters"), reps = p.Int("reps");
        return [new Figure("copy_bandwidth", Copy(numel, iters, reps)), new Figure("read_bandwidth", Read(numel, iters, reps))];
    }
}
