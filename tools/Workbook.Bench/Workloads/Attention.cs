using Workbook.Attention;

namespace Workbook.Bench.Workloads;

/// <summary>
/// Workload 4: attention forward on <c>[B, H, T, D] = [8, 8, 256, 64]</c>, no mask, no grad: the explicit
/// <c>softmax(q kᵀ/√D) v</c> (three kernels and a T×T matrix) versus libtorch's fused scaled_dot_product_attention.
/// </summary>
public sealed class AttentionWorkload() : Workload("attention",
    "attention forward [8,8,256,64]: explicit softmax(qk^T/sqrt d)v vs fused sdpa, ms",
    [new("attn_explicit", "ms", false), new("attn_fused", "ms", false)])
{

    /// <inheritdoc/>
    public override JsonObject Parameters(bool smoke) => new()
    {
        ["shape"] = smoke ? new JsonArray(2, 2, 32, 16) : new JsonArray(8, 8, 256, 64),
        ["iters"] = smoke ? 2 : 20, ["reps"] = smoke ? 3 : 5,
        ["sweep_T"] = smoke ? new JsonArray(64, 128) : new JsonArray(256, 1024, 2048, 4096), ["sweep_heads"] = 8, ["sweep_head_dim"] = 64,
    };

    /// <summary>Peak resident memory (MiB) added while <paramref name="f"/> runs: the kernel's VmHWM, reset through /proc/self/clear_refs first.</summary>
    static double PeakMiB(Action f)
    {
        try
        {
            double before = Stats.RssMiB();
            File.WriteAllText("/proc/self/clear_refs", "5"); // resets the peak RSS (VmHWM) to the current RSS
            f();
            foreach (var line in File.ReadLines("/proc/self/status"))
                if (line.StartsWith("VmHWM:", StringComparison.Ordinal))
                    return double.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], System.Globalization.CultureInfo.InvariantCulture) / 1024.0 - before;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
        return double.NaN;
    }

    /// <summary>
    /// Where the fused kernel wins: [1, H, T, D] for growing T, explicit against fused (ms, median of 3 after a warm-up),
    /// the peak memory each adds (the explicit form materialises two T×T matrices per head; libtorch's CPU
    /// scaled_dot_product_attention runs a flash-attention kernel that never does), and the matmul rate the
    /// explicit form reaches (its FLOPs are the two products).
    /// </summary>
    static JsonArray Sweep(JsonObject p)
    {
        var result = new JsonArray();
        long h = p.Int("sweep_heads"), d = p.Int("sweep_head_dim");
        foreach (var tNode in p["sweep_T"]!.AsArray())
        {
            long t = tNode!.GetValue<int>();
            using var q = randn(1, h, t, d);
            using var k = randn(1, h, t, d);
            using var v = randn(1, h, t, d);
            using var _ = no_grad();
            double Ms(Func<Tensor> f) => Stats.Median(Stats.TimeReps(3, 1, () => { using var scope = NewDisposeScope(); f(); }).Select(s => s * 1000).ToArray());
            double explicitMs = Ms(() => Explicit(q, k, v)), fusedMs = Ms(() => ScaledDotProductAttention.Fused(q, k, v));
            double explicitPeak = PeakMiB(() => { using var scope = NewDisposeScope(); Explicit(q, k, v); });
            double fusedPeak = PeakMiB(() => { using var scope = NewDisposeScope(); ScaledDotProductAttention.Fused(q, k, v); });
            double flops = 2.0 * 2 * h * t * t * d;
            result.Add(new JsonObject
            {
                ["shape"] = $"[1,{h},{t},{d}]", ["explicit_ms"] = Math.Round(explicitMs, 2), ["fused_ms"] = Math.Round(fusedMs, 2),
                ["fused_over_explicit"] = Math.Round(fusedMs / explicitMs, 3),
                ["explicit_peak_mib"] = Math.Round(explicitPeak, 1), ["fused_peak_mib"] = Math.Round(fusedPeak, 1),
                ["score_matrix_mib"] = Math.Round(h * t * t * 4 / 1048576.0, 1), ["explicit_gflops"] = Math.Round(flops / explicitMs / 1e6, 1),
            });
        }
        return result;
    }

    /// <summary>The textbook form, the library's <see cref="ScaledDotProductAttention.Compute"/>: scores, softmax over keys, weighted sum of values.</summary>
    public static Tensor Explicit(Tensor q, Tensor k, Tensor v)
    {
        var (output, weights) = ScaledDotProductAttention.Compute(q, k, v);
        weights.Dispose();
        return output;
    }

    /// <inheritdoc/>
    public override IReadOnlyList<Figure> Run(JsonObject p)
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
        // The matmul rate on the explicit form's first product, for the FLOP bound: both forms do the same 4·B·H·T²·D FLOPs.
        double flops = 4.0 * shape[0] * shape[1] * shape[2] * shape[2] * shape[3];
        var extra = new JsonObject
        {
            ["max_abs_diff_explicit_vs_fused"] = diff.item<float>(), ["impl"] = "Workbook.Attention.ScaledDotProductAttention.Compute / .Fused",
            ["explicit_gflops"] = flops / Stats.Median(explicitMs) / 1e6, ["fused_gflops"] = flops / Stats.Median(fusedMs) / 1e6,
            ["sweep"] = Sweep(p),
            ["note"] = "both forms do the same FLOPs (q·kᵀ and p·v); fused saves the T×T matrices' memory traffic, which at T = 256 fits in cache: see the sweep for where it wins",
        };
        return [new Figure("attn_explicit", explicitMs, extra), new Figure("attn_fused", fusedMs)];
    }
}

/// <summary>
/// Memory bandwidth as torch sees it: <c>dst.copy_(src)</c> of a large float tensor (bytes read + bytes written per
/// second, STREAM's "copy" convention) and <c>src.sum()</c> (bytes read per second).
/// </summary>
public sealed class BandwidthWorkload() : Workload("bandwidth",
    "memory bandwidth: tensor copy (read+write) and sum (read), GB/s",
    [new("copy_bandwidth", "GB/s", true), new("read_bandwidth", "GB/s", true)])
{

    /// <inheritdoc/>
    public override JsonObject Parameters(bool smoke) => new() { ["numel"] = smoke ? 1 << 20 : 64 << 20, ["iters"] = smoke ? 2 : 10, ["reps"] = smoke ? 3 : 5 };

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
    public override IReadOnlyList<Figure> Run(JsonObject p)
    {
        long numel = p.Int("numel");
        int iters = p.Int("iters"), reps = p.Int("reps");
        return [new Figure("copy_bandwidth", Copy(numel, iters, reps)), new Figure("read_bandwidth", Read(numel, iters, reps))];
    }
}
