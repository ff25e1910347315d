using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using TorchSharp;
using static TorchSharp.torch;

namespace Workbook.Runtime.Kernels;

/// <summary>
/// <c>y = W x + b</c> for a single input row, written in C# SIMD (AVX-512 or AVX2+FMA), for weights stored in float32,
/// bfloat16, or int8 with one float32 scale per output row (symmetric per-channel quantization).
/// <para>
/// Why it exists: generating one token with a KV cache multiplies every weight matrix by one vector, so decoding is
/// bound by how fast the weights stream from memory (GPT-2 124M reads 498 MB per token in float32). The BLAS inside
/// libtorch (oneMKL) runs this matrix-vector product on one thread at about half of one core's read bandwidth on the
/// AMD machines we measured (18 GB/s against a 78 GB/s copy bandwidth); this kernel streams four weight rows at a time
/// per thread and can split the rows over a team of spinning threads (<see cref="SpinTeam"/>). For bfloat16 and int8
/// weights it converts each weight to float32 in registers, right before the multiply-add: the memory traffic is the
/// stored bytes (2 or 1 per weight), and the arithmetic stays float32.
/// </para>
/// <para>Results equal <c>F.linear</c> on the dequantized weight up to float rounding: the dot products are summed in a different order.</para>
/// </summary>
public static class MatVec
{
    /// <summary>True when the CPU has AVX-512F, or AVX2 with FMA: the instruction sets the kernel is written for.</summary>
    public static bool IsSupported => Avx512F.IsSupported || (Avx2.IsSupported && Fma.IsSupported);

    /// <summary>Whether the 512-bit loops run (where the CPU has them). Tests turn it off to check the AVX2 loops too.</summary>
    internal static bool UseAvx512 { get; set; } = Avx512F.IsSupported;

    /// <summary>Matrices smaller than this many elements always run on the calling thread: splitting costs more than it saves.</summary>
    public const long ParallelThreshold = 1 << 18;

    /// <summary>
    /// <c>W x + b</c> for <paramref name="x"/> holding one row of <c>K</c> features (shape <c>[K]</c>, <c>[1, K]</c> or
    /// <c>[1, 1, K]</c>) and a float32 <paramref name="weight"/> <c>[N, K]</c>, as <c>F.linear</c> would compute it: the
    /// result has <paramref name="x"/>'s shape with the last dimension replaced by <c>N</c>. CPU only, no autograd.
    /// </summary>
    /// <param name="x">The input row (float32).</param>
    /// <param name="weight">The weight <c>[N, K]</c> in PyTorch's <c>nn.Linear</c> layout (out × in), float32.</param>
    /// <param name="bias">Optional bias <c>[N]</c> (float32).</param>
    /// <param name="threads">Threads to split the rows over (1 = the calling thread only).</param>
    /// <exception cref="ArgumentException">Shapes, dtypes or devices do not fit, or <paramref name="x"/> has more than one row.</exception>
    /// <exception cref="PlatformNotSupportedException">The CPU lacks both AVX-512F and AVX2+FMA (<see cref="IsSupported"/>).</exception>
    public static Tensor Linear(Tensor x, Tensor weight, Tensor? bias = null, int threads = 1) =>
        Run(x, weight, null, bias, threads, ScalarType.Float32);

    /// <summary>
    /// <c>(W x) · scale + b</c> for int8 weights <paramref name="weight"/> <c>[N, K]</c> and float32 per-row scales
    /// <paramref name="scale"/> <c>[N]</c>: the product with the dequantized weight <c>W[n, k] · scale[n]</c>, which is
    /// never materialised (each int8 is widened to float32 in a register).
    /// </summary>
    /// <inheritdoc cref="Linear" path="/exception"/>
    public static Tensor LinearInt8(Tensor x, Tensor weight, Tensor scale, Tensor? bias = null, int threads = 1) =>
        Run(x, weight, scale, bias, threads, ScalarType.Int8);

    /// <summary><c>W x + b</c> for bfloat16 weights <paramref name="weight"/> <c>[N, K]</c> (each widened to float32 in a register: its 16 bits are the top half of a float32).</summary>
    /// <inheritdoc cref="Linear" path="/exception"/>
    public static Tensor LinearBFloat16(Tensor x, Tensor weight, Tensor? bias = null, int threads = 1) =>
        Run(x, weight, null, bias, threads, ScalarType.BFloat16);

    static unsafe Tensor Run(Tensor x, Tensor weight, Tensor? scale, Tensor? bias, int threads, ScalarType format)
    {
        Validate(x, weight, scale, bias, format);
        if (!IsSupported) throw new PlatformNotSupportedException("MatVec needs AVX-512F or AVX2 with FMA; use F.linear on this CPU.");
        int n = checked((int)weight.shape[0]), k = checked((int)weight.shape[1]);
        var shape = x.shape.ToArray();
        shape[^1] = n;
        using var xc = x.contiguous();
        using var wc = weight.contiguous();
        using var sc = scale?.contiguous();
        using var bc = bias?.contiguous();
        var y = empty(shape, dtype: ScalarType.Float32);
        threads = Math.Clamp(threads, 1, Environment.ProcessorCount);
        if ((long)n * k < ParallelThreshold) threads = 1;
        fixed (byte* w = wc.bytes, xs = xc.bytes, ys = y.bytes)
        fixed (byte* b = bc is null ? default : bc.bytes)
        fixed (byte* s = sc is null ? default : sc.bytes)
        {
            var job = new Job(w, (float*)xs, (float*)s, (float*)b, (float*)ys, k, format);
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

    static void Validate(Tensor x, Tensor weight, Tensor? scale, Tensor? bias, ScalarType format)
    {
        if (weight.dim() != 2)
            throw new ArgumentException($"weight must be [out_features, in_features], got shape [{string.Join(", ", weight.shape)}].", nameof(weight));
        long n = weight.shape[0], k = weight.shape[1];
        if (x.dim() == 0 || x.shape[^1] != k)
            throw new ArgumentException($"x's last dimension must equal weight's in_features {k}, got shape [{string.Join(", ", x.shape)}].", nameof(x));
        if (x.numel() != k)
            throw new ArgumentException($"MatVec takes a single row of {k} features, got shape [{string.Join(", ", x.shape)}] ({x.numel() / Math.Max(k, 1)} rows).", nameof(x));
        if (bias is not null && (bias.dim() != 1 || bias.shape[0] != n))
            throw new ArgumentException($"bias must be [{n}], got shape [{string.Join(", ", bias.shape)}].", nameof(bias));
        if (format == ScalarType.Int8 && (scale is null || scale.dim() != 1 || scale.shape[0] != n))
            throw new ArgumentException($"scale must be [{n}] (one per output row), got {(scale is null ? "none" : $"shape [{string.Join(", ", scale.shape)}]")}.", nameof(scale));
        if (weight.dtype != format) throw new ArgumentException($"weight must be {format}, got {weight.dtype}.", nameof(weight));
        foreach (var (t, name) in new[] { (x, nameof(x)), (weight, nameof(weight)), (scale, nameof(scale)), (bias, nameof(bias)) })
        {
            if (t is null) continue;
            if (!ReferenceEquals(t, weight) && t.dtype != ScalarType.Float32) throw new ArgumentException($"{name} must be float32, got {t.dtype}.", name);
            if (t.device_type != DeviceType.CPU) throw new ArgumentException($"{name} must be on the CPU, got {t.device}.", name);
        }
    }

    /// <summary>The pointers of one product; a struct so that threads share it by value.</summary>
    readonly unsafe struct Job(byte* w, float* x, float* scale, float* b, float* y, int k, ScalarType format)
    {
        // Fully optimised from the first call: tier-0 code of these loops is several times slower, and a decode
        // would otherwise spend its first tokens waiting for tiered compilation to promote them.
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void Rows(int start, int end)
        {
            int r = start;
            // Four rows at a time (see Four); the weights are read exactly once, front to back.
            bool wide = UseAvx512;
            for (; r + 4 <= end; r += 4)
            {
                switch (format)
                {
                    case ScalarType.Int8: if (wide) Four<Vector512<float>, Lanes512, Int8Weights>(r); else Four<Vector256<float>, Lanes256, Int8Weights>(r); break;
                    case ScalarType.BFloat16: if (wide) Four<Vector512<float>, Lanes512, BFloat16Weights>(r); else Four<Vector256<float>, Lanes256, BFloat16Weights>(r); break;
                    default: if (wide) Four<Vector512<float>, Lanes512, Float32Weights>(r); else Four<Vector256<float>, Lanes256, Float32Weights>(r); break;
                }
            }
            for (; r < end; r++)
            {
                float s = 0;
                for (int i = 0; i < k; i++) s += Weight(r, i) * x[i];
                y[r] = s * (scale == null ? 1f : scale[r]) + (b == null ? 0f : b[r]);
            }
        }

        float Weight(int r, int i)
        {
            long at = (long)r * k + i;
            return format switch
            {
                ScalarType.Int8 => ((sbyte*)w)[at],
                ScalarType.BFloat16 => BitConverter.Int32BitsToSingle(((ushort*)w)[at] << 16),
                _ => ((float*)w)[at],
            };
        }

        /// <summary>
        /// Rows r..r+3: each load of x serves four weight rows, and four independent accumulators keep the FMA pipes and
        /// the memory system busy. Written once for every vector width (<typeparamref name="TLanes"/>) and weight format
        /// (<typeparamref name="TWeights"/>): both are structs, so the JIT compiles one specialised loop per pair, with the
        /// interfaces' static members inlined (the same machine code as six hand-written loops).
        /// </summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        void Four<TVector, TLanes, TWeights>(int r)
            where TVector : struct where TLanes : struct, ILanes<TVector> where TWeights : struct, IWeights<TVector>
        {
            long stride = (long)k * TWeights.Bytes;
            byte* r0 = w + r * stride, r1 = r0 + stride, r2 = r1 + stride, r3 = r2 + stride;
            int width = Unsafe.SizeOf<TVector>() / sizeof(float);   // a JIT-time constant: 8 or 16 floats
            TVector a0 = default, a1 = a0, a2 = a0, a3 = a0;         // default is the zero vector
            int i = 0;
            for (; i + width <= k; i += width)
            {
                var xv = TLanes.Load(x + i);
                a0 = TLanes.MultiplyAdd(TWeights.Load(r0, i), xv, a0);
                a1 = TLanes.MultiplyAdd(TWeights.Load(r1, i), xv, a1);
                a2 = TLanes.MultiplyAdd(TWeights.Load(r2, i), xv, a2);
                a3 = TLanes.MultiplyAdd(TWeights.Load(r3, i), xv, a3);
            }
            Store(r, i, TLanes.Sum4(a0, a1, a2, a3));
        }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        void Store(int r, int from, Vector128<float> sums) => Store(r, from, sums.GetElement(0), sums.GetElement(1), sums.GetElement(2), sums.GetElement(3));

        /// <summary>Adds the scalar tail (features from <paramref name="from"/> on), applies the scales and the bias, and writes four outputs.</summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        void Store(int r, int from, float s0, float s1, float s2, float s3)
        {
            for (int i = from; i < k; i++)
            {
                float xi = x[i];
                s0 += Weight(r, i) * xi; s1 += Weight(r + 1, i) * xi; s2 += Weight(r + 2, i) * xi; s3 += Weight(r + 3, i) * xi;
            }
            if (scale != null) { s0 *= scale[r]; s1 *= scale[r + 1]; s2 *= scale[r + 2]; s3 *= scale[r + 3]; }
            if (b != null) { s0 += b[r]; s1 += b[r + 1]; s2 += b[r + 2]; s3 += b[r + 3]; }
            y[r] = s0; y[r + 1] = s1; y[r + 2] = s2; y[r + 3] = s3;
        }
    }

    // The vector width: net8.0 has no generic vector type with fused multiply-add, so each width says which intrinsics it is.
    unsafe interface ILanes<TVector> where TVector : struct
    {
        static abstract TVector Load(float* p);
        static abstract TVector MultiplyAdd(TVector a, TVector b, TVector c);
        /// <summary>The four accumulators' totals as one vector (s0, s1, s2, s3).</summary>
        static abstract Vector128<float> Sum4(TVector a0, TVector a1, TVector a2, TVector a3);
    }

    readonly unsafe struct Lanes256 : ILanes<Vector256<float>>
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Load(float* p) => Avx.LoadVector256(p);
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<float> MultiplyAdd(Vector256<float> a, Vector256<float> b, Vector256<float> c) => Fma.MultiplyAdd(a, b, c);

        // Three horizontal adds instead of four separate reductions: it matters for short rows (the shipped model's
        // K = 128: 8 loads per row).
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector128<float> Sum4(Vector256<float> a0, Vector256<float> a1, Vector256<float> a2, Vector256<float> a3)
        {
            var t = Avx.HorizontalAdd(Avx.HorizontalAdd(a0, a1), Avx.HorizontalAdd(a2, a3)); // [a0 a1 a2 a3 | a0 a1 a2 a3], halves of each sum
            return t.GetLower() + t.GetUpper();
        }
    }

    // The 512-bit loop streams 63 GB/s of float32 on 2 cores where the 256-bit one reaches 48 (Zen 5, measured).
    readonly unsafe struct Lanes512 : ILanes<Vector512<float>>
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Load(float* p) => Avx512F.LoadVector512(p);
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> MultiplyAdd(Vector512<float> a, Vector512<float> b, Vector512<float> c) => Avx512F.FusedMultiplyAdd(a, b, c);
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector128<float> Sum4(Vector512<float> a0, Vector512<float> a1, Vector512<float> a2, Vector512<float> a3) =>
            Lanes256.Sum4(a0.GetLower() + a0.GetUpper(), a1.GetLower() + a1.GetUpper(), a2.GetLower() + a2.GetUpper(), a3.GetLower() + a3.GetUpper());
    }

    // A weight format: its bytes per weight, and how one vector of weights from element i of a row becomes float32.
    unsafe interface IWeights<TVector> where TVector : struct
    {
        static abstract int Bytes { get; }
        static abstract TVector Load(byte* row, int i);
    }

    readonly unsafe struct Float32Weights : IWeights<Vector256<float>>, IWeights<Vector512<float>>
    {
        public static int Bytes => 4;
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        static Vector256<float> IWeights<Vector256<float>>.Load(byte* row, int i) => Avx.LoadVector256((float*)row + i);
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        static Vector512<float> IWeights<Vector512<float>>.Load(byte* row, int i) => Avx512F.LoadVector512((float*)row + i);
    }

    // int8: the weights sign-extended to int32 (vpmovsxbd) and converted to float32; the row's scale is applied in Store.
    readonly unsafe struct Int8Weights : IWeights<Vector256<float>>, IWeights<Vector512<float>>
    {
        public static int Bytes => 1;
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        static Vector256<float> IWeights<Vector256<float>>.Load(byte* row, int i) =>
            Avx.ConvertToVector256Single(Avx2.ConvertToVector256Int32((sbyte*)row + i));
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        static Vector512<float> IWeights<Vector512<float>>.Load(byte* row, int i) =>
            Avx512F.ConvertToVector512Single(Avx512F.ConvertToVector512Int32(Sse2.LoadVector128((sbyte*)row + i)));
    }

    // bfloat16: the weights zero-extended to 32 bits (vpmovzxwd) and shifted into the top half: exactly the float32.
    readonly unsafe struct BFloat16Weights : IWeights<Vector256<float>>, IWeights<Vector512<float>>
    {
        public static int Bytes => 2;
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        static Vector256<float> IWeights<Vector256<float>>.Load(byte* row, int i) =>
            Avx2.ShiftLeftLogical(Avx2.ConvertToVector256Int32((ushort*)row + i), 16).AsSingle();
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        static Vector512<float> IWeights<Vector512<float>>.Load(byte* row, int i) =>
            Avx512F.ShiftLeftLogical(Avx512F.ConvertToVector512Int32(Avx.LoadVector256((ushort*)row + i)), 16).AsSingle();
    }
}
