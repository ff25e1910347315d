using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using TorchSharp;
using static TorchSharp.torch;

namespace Workbook.Kernels;

/// <summary>
/// <c>y = W x + b</c> for a single input row, written in C# SIMD (AVX-512 or AVX2+FMA).
/// <para>
/// Why it exists: generating one token with a KV cache multiplies every weight matrix by one vector, so decoding is
/// bound by how fast the weights stream from memory (GPT-2 124M reads 498 MB per token). The BLAS inside libtorch
/// (oneMKL) runs this matrix-vector product on one thread at about half of one core's read bandwidth on the AMD
/// machines we measured (18 GB/s against a 78 GB/s copy bandwidth); this kernel streams four weight rows at a time
/// per thread and splits the rows over a team of spinning threads (<see cref="SpinTeam"/>), reaching 60–70 GB/s there (see the bench's <c>gpt2</c> rows).
/// </para>
/// <para>Results equal <c>F.linear</c> up to float rounding: the dot products are summed in a different order.</para>
/// </summary>
public static class MatVec
{
    /// <summary>True when the CPU has AVX-512F, or AVX2 with FMA: the instruction sets the kernel is written for.</summary>
    public static bool IsSupported => Avx512F.IsSupported || (Avx2.IsSupported && Fma.IsSupported);

    /// <summary>Threads a product is split over when the caller does not say: 0 (default) means the count that
    /// <see cref="InferenceLinear.DecodeScope"/> saved, else <c>torch.get_num_threads()</c>.</summary>
    public static int DefaultThreads { get; set; }

    [ThreadStatic] internal static int t_decodeThreads;

    /// <summary>Whether the 512-bit loop runs (where the CPU has it). Tests turn it off to check the AVX2 loop too.</summary>
    internal static bool UseAvx512 { get; set; } = Avx512F.IsSupported;

    /// <summary>Matrices smaller than this many elements run on the calling thread: splitting costs more than it saves.</summary>
    public const long ParallelThreshold = 1 << 18;

    /// <summary>
    /// <c>W x + b</c> for <paramref name="x"/> holding one row of <c>K</c> features (shape <c>[K]</c>, <c>[1, K]</c> or
    /// <c>[1, 1, K]</c>) and <paramref name="weight"/> <c>[N, K]</c>, as <c>F.linear</c> would compute it: the result has
    /// <paramref name="x"/>'s shape with the last dimension replaced by <c>N</c>. CPU float32 only, and no autograd
    /// (use it under <c>no_grad</c>); <see cref="InferenceLinear"/> decides when it applies.
    /// </summary>
    /// <param name="x">The input row.</param>
    /// <param name="weight">The weight <c>[N, K]</c> in PyTorch's <c>nn.Linear</c> layout (out × in).</param>
    /// <param name="bias">Optional bias <c>[N]</c>.</param>
    /// <param name="threads">Threads to split the rows over; 0 means <c>torch.get_num_threads()</c>.</param>
    /// <exception cref="ArgumentException">Shapes, dtypes or devices do not fit, or <paramref name="x"/> has more than one row.</exception>
    /// <exception cref="PlatformNotSupportedException">The CPU lacks both AVX-512F and AVX2+FMA (<see cref="IsSupported"/>).</exception>
    public static unsafe Tensor Linear(Tensor x, Tensor weight, Tensor? bias = null, int threads = 0)
    {
        Validate(x, weight, bias);
        if (!IsSupported) throw new PlatformNotSupportedException("MatVec needs AVX-512F or AVX2 with FMA; use F.linear on this CPU.");
        int n = checked((int)weight.shape[0]), k = checked((int)weight.shape[1]);
        var shape = x.shape.ToArray();
        shape[^1] = n;
        using var xc = x.contiguous();
        using var wc = weight.contiguous();
        using var bc = bias?.contiguous();
        var y = empty(shape, dtype: ScalarType.Float32);
        if (threads <= 0) threads = DefaultThreads > 0 ? DefaultThreads : t_decodeThreads > 0 ? t_decodeThreads : torch.get_num_threads();
        threads = Math.Clamp(threads, 1, Environment.ProcessorCount);
        if ((long)n * k < ParallelThreshold) threads = 1;
        fixed (byte* w = wc.bytes, xs = xc.bytes, ys = y.bytes)
        fixed (byte* b = bc is null ? default : bc.bytes)
        {
            var job = new Job((float*)w, (float*)xs, (float*)b, (float*)ys, k);
            if (threads == 1) job.Rows(0, n);
            else SpinTeam.ForThreads(threads).Run(threads, (part, parts) =>
            {
                // Split at multiples of 4 rows, so that only the last part has a ragged tail.
                int start = (int)((long)n * part / parts) & ~3;
                int end = part == parts - 1 ? n : (int)((long)n * (part + 1) / parts) & ~3;
                job.Rows(start, end);
            });
        }
        return y;
    }

    static void Validate(Tensor x, Tensor weight, Tensor? bias)
    {
        if (weight.dim() != 2)
            throw new ArgumentException($"weight must be [out_features, in_features], got shape [{string.Join(", ", weight.shape)}].", nameof(weight));
        long k = weight.shape[1];
        if (x.dim() == 0 || x.shape[^1] != k)
            throw new ArgumentException($"x's last dimension must equal weight's in_features {k}, got shape [{string.Join(", ", x.shape)}].", nameof(x));
        if (x.numel() != k)
            throw new ArgumentException($"MatVec takes a single row of {k} features, got shape [{string.Join(", ", x.shape)}] ({x.numel() / Math.Max(k, 1)} rows).", nameof(x));
        if (bias is not null && (bias.dim() != 1 || bias.shape[0] != weight.shape[0]))
            throw new ArgumentException($"bias must be [{weight.shape[0]}], got shape [{string.Join(", ", bias.shape)}].", nameof(bias));
        foreach (var (t, name) in new[] { (x, nameof(x)), (weight, nameof(weight)), (bias, nameof(bias)) })
        {
            if (t is null) continue;
            if (t.dtype != ScalarType.Float32) throw new ArgumentException($"{name} must be float32, got {t.dtype}.", name);
            if (t.device_type != DeviceType.CPU) throw new ArgumentException($"{name} must be on the CPU, got {t.device}.", name);
        }
    }

    /// <summary>The pointers of one product; a struct so that threads share it by value.</summary>
    readonly unsafe struct Job(float* w, float* x, float* b, float* y, int k)
    {
        // Fully optimised from the first call: tier-0 code of these loops is several times slower, and a decode
        // would otherwise spend its first tokens waiting for tiered compilation to promote them.
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void Rows(int start, int end)
        {
            int r = start;
            // Four rows at a time: each load of x serves four weight rows, and four independent accumulators keep the
            // FMA pipes and the memory system busy. The weights are read exactly once, front to back. The two loops
            // differ only in vector width; net8.0 has no generic vector type to write them once, and the 512-bit one
            // streams 63 GB/s on 2 cores where the 256-bit one reaches 48 (Zen 5, measured).
            if (UseAvx512)
                for (; r + 4 <= end; r += 4) Four512(r);
            else
                for (; r + 4 <= end; r += 4) Four256(r);
            for (; r < end; r++)
            {
                float* row = w + (long)r * k;
                float s = 0;
                for (int i = 0; i < k; i++) s += row[i] * x[i];
                y[r] = s + (b == null ? 0f : b[r]);
            }
        }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        void Four512(int r)
        {
            float* r0 = w + (long)r * k, r1 = r0 + k, r2 = r1 + k, r3 = r2 + k;
            Vector512<float> a0 = Vector512<float>.Zero, a1 = a0, a2 = a0, a3 = a0;
            int i = 0;
            for (; i + 16 <= k; i += 16)
            {
                var xv = Avx512F.LoadVector512(x + i);
                a0 = Avx512F.FusedMultiplyAdd(Avx512F.LoadVector512(r0 + i), xv, a0);
                a1 = Avx512F.FusedMultiplyAdd(Avx512F.LoadVector512(r1 + i), xv, a1);
                a2 = Avx512F.FusedMultiplyAdd(Avx512F.LoadVector512(r2 + i), xv, a2);
                a3 = Avx512F.FusedMultiplyAdd(Avx512F.LoadVector512(r3 + i), xv, a3);
            }
            Store(r, i, Vector512.Sum(a0), Vector512.Sum(a1), Vector512.Sum(a2), Vector512.Sum(a3));
        }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        void Four256(int r)
        {
            float* r0 = w + (long)r * k, r1 = r0 + k, r2 = r1 + k, r3 = r2 + k;
            Vector256<float> a0 = Vector256<float>.Zero, a1 = a0, a2 = a0, a3 = a0;
            int i = 0;
            for (; i + 8 <= k; i += 8)
            {
                var xv = Avx.LoadVector256(x + i);
                a0 = Fma.MultiplyAdd(Avx.LoadVector256(r0 + i), xv, a0);
                a1 = Fma.MultiplyAdd(Avx.LoadVector256(r1 + i), xv, a1);
                a2 = Fma.MultiplyAdd(Avx.LoadVector256(r2 + i), xv, a2);
                a3 = Fma.MultiplyAdd(Avx.LoadVector256(r3 + i), xv, a3);
            }
            Store(r, i, Vector256.Sum(a0), Vector256.Sum(a1), Vector256.Sum(a2), Vector256.Sum(a3));
        }

        /// <summary>Adds the scalar tail (features from <paramref name="from"/> on) and the bias, and writes four outputs.</summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        void Store(int r, int from, float s0, float s1, float s2, float s3)
        {
            float* r0 = w + (long)r * k;
            for (int i = from; i < k; i++)
            {
                float xi = x[i];
                s0 += r0[i] * xi; s1 += r0[k + i] * xi; s2 += r0[2 * k + i] * xi; s3 += r0[3 * k + i] * xi;
            }
            if (b != null) { s0 += b[r]; s1 += b[r + 1]; s2 += b[r + 2]; s3 += b[r + 3]; }
            y[r] = s0; y[r + 1] = s1; y[r + 2] = s2; y[r + 3] = s3;
        }
    }
}
