using System.Collections.Concurrent;
using System.Diagnostics;
using System.Numerics;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Workbook.Runtime.Kernels;

/// <summary>Which implementation a product of the CPU accelerator uses.</summary>
public enum LinearPath
{
    /// <summary><c>F.linear</c>: libtorch's BLAS (oneMKL on the CPU), the plain model's path.</summary>
    Blas,
    /// <summary>The C# matrix-vector kernel <see cref="MatVec"/>: one input row (token-by-token decoding).</summary>
    MatVec,
    /// <summary>A 1×1 convolution, which libtorch runs with oneDNN: many rows, where oneDNN's GEMM can beat the BLAS.</summary>
    OneDnn,
}

/// <summary>
/// What the accelerator measured for one product shape and what it decided. Decisions are per shape, per row class
/// (one row, or a power-of-two bucket of rows) and per thread count, measured once per process on the weight of the
/// first layer of that shape.
/// </summary>
/// <param name="OutFeatures">N, the weight's rows.</param>
/// <param name="InFeatures">K, the weight's columns.</param>
/// <param name="Rows">1 for one-row products (decoding); else the bucket (next power of two) of the row count.</param>
/// <param name="Path">The path taken.</param>
/// <param name="Threads">Threads of the <see cref="MatVec"/> kernel (1 for the other paths).</param>
/// <param name="Candidates">Median milliseconds of every candidate measured, e.g. <c>"blas" → 0.41, "matvec×1" → 0.30</c>.</param>
public sealed record LinearChoice(long OutFeatures, long InFeatures, long Rows, LinearPath Path, int Threads, IReadOnlyDictionary<string, double> Candidates)
{
    /// <summary>"768→2304, 1 row: matvec×2 0.21 ms (blas 0.55, matvec×1 0.33)".</summary>
    public override string ToString()
    {
        string chosen = Path switch { LinearPath.MatVec => $"matvec×{Threads}", LinearPath.OneDnn => "onednn", _ => "blas" };
        var others = string.Join(", ", Candidates.Where(c => c.Key != chosen).Select(c => $"{c.Key} {c.Value:F3}"));
        string ms = Candidates.TryGetValue(chosen, out var v) ? $" {v:F3} ms" : "";
        return $"{InFeatures}→{OutFeatures}, {(Rows == 1 ? "1 row" : $"≤{Rows} rows")}: {chosen}{ms}{(others.Length > 0 ? $" ({others})" : "")}";
    }
}

/// <summary>
/// <c>y = x Wᵀ + b</c> on the fastest CPU path for the shape, as measured on this machine: the products of
/// <see cref="CpuLinear"/>, the layer that <see cref="CpuInference.ForCpuInference"/> swaps in. With gradients, on a GPU
/// or for other dtypes it is exactly <c>F.linear</c>. Under <c>no_grad</c> on the CPU in float32:
/// <list type="bullet">
/// <item>one input row (decoding with a KV cache): <see cref="MatVec"/> on 1 or all threads, or <c>F.linear</c>,
/// whichever had the lowest median time when the shape was first seen. On a quiet machine the kernel wins at GPT-2's
/// sizes (oneMKL runs a matrix-vector product on one thread); on a machine whose cores are busy with other work, a
/// product split over threads waits for the slowest one, and for small matrices F.linear can win: the measurement decides.</item>
/// <item>many rows (a prompt): a 1×1 convolution (oneDNN) or <c>F.linear</c>, measured the same way per bucket of rows,
/// for weights up to <see cref="OneDnnMaxWeightElements"/>.</item>
/// </list>
/// All paths agree with <c>F.linear</c> up to float rounding (about 1e-6 relative).
/// </summary>
public static class InferenceLinear
{
    /// <summary>Fewest rows for which the oneDNN path is considered; below it the BLAS is as fast.</summary>
    public const int OneDnnMinRows = 32;

    /// <summary>Largest weight (elements) sent to oneDNN: it copies the weight into its blocked layout on every call,
    /// which for GPT-2's 154 MB LM head gains nothing over the BLAS and now and then takes three times as long.</summary>
    public const long OneDnnMaxWeightElements = 16L << 20;

    /// <summary>A kernel must be at least this much faster than <c>F.linear</c> (median against median) to be used.</summary>
    public const double MinSpeedup = 1.10;

    /// <summary>Inside <see cref="CpuInferenceSession.DecodeStep"/>: the thread count libtorch had, which the kernel may use.</summary>
    [ThreadStatic] internal static int t_decodeThreads;

    static readonly ConcurrentDictionary<(ScalarType Format, long N, long K, long Rows, int Threads), LinearChoice> s_choices = new();

    /// <summary>Every decision taken in this process so far.</summary>
    public static IReadOnlyCollection<LinearChoice> Choices => s_choices.Values.ToList();

    /// <summary>Forgets the measurements (the next product of each shape measures again), e.g. after the machine's load changed.</summary>
    public static void Recalibrate() => s_choices.Clear();

    /// <summary><c>x Wᵀ + b</c> for <paramref name="x"/> <c>[..., K]</c> and <paramref name="weight"/> <c>[N, K]</c>: <c>[..., N]</c>, on the measured fastest path.</summary>
    /// <exception cref="ArgumentException"><paramref name="x"/>'s last dimension is not <paramref name="weight"/>'s in_features.</exception>
    public static Tensor Forward(Tensor x, Tensor weight, Tensor? bias = null)
    {
        if (weight.dim() != 2 || x.dim() == 0 || x.shape[^1] != weight.shape[1])
            throw new ArgumentException(
                $"x [{string.Join(", ", x.shape)}] does not fit weight [{string.Join(", ", weight.shape)}]: x's last dimension must equal weight's in_features (dimension 1).",
                nameof(x));
        if (!Applies(x, weight, bias)) return F.linear(x, weight, bias);
        var choice = Choose(x, weight, bias);
        return choice.Path switch
        {
            LinearPath.MatVec => MatVec.Linear(x, weight, bias, choice.Threads),
            LinearPath.OneDnn => Conv1x1(x, weight, bias),
            _ => F.linear(x, weight, bias),
        };
    }

    /// <summary>True when the arguments can take a fast path at all: no gradient needed, CPU, float32.</summary>
    public static bool Applies(Tensor x, Tensor weight, Tensor? bias) =>
        !(is_grad_enabled() && (x.requires_grad || weight.requires_grad || bias?.requires_grad == true))
        && x.device_type == DeviceType.CPU && weight.device_type == DeviceType.CPU
        && x.dtype == ScalarType.Float32 && weight.dtype == ScalarType.Float32 && (bias is null || bias.dtype == ScalarType.Float32);

    /// <summary>The path for these arguments (measured on the first call of each shape; <see cref="Applies"/> must hold).</summary>
    public static LinearChoice Choose(Tensor x, Tensor weight, Tensor? bias = null)
    {
        long n = weight.shape[0], k = weight.shape[1], rows = x.numel() / Math.Max(k, 1);
        int threads = t_decodeThreads > 0 ? t_decodeThreads : torch.get_num_threads();
        if (rows == 1)
        {
            if (!MatVec.IsSupported || weight.numel() * sizeof(float) >= int.MaxValue) return Fixed(n, k, 1, LinearPath.Blas);
            return s_choices.GetOrAdd((ScalarType.Float32, n, k, 1, threads), _ => MeasureOneRow(weight, bias, threads));
        }
        if (rows < OneDnnMinRows || weight.numel() > OneDnnMaxWeightElements) return Fixed(n, k, rows, LinearPath.Blas);
        long bucket = (long)BitOperations.RoundUpToPowerOf2((ulong)rows);
        return s_choices.GetOrAdd((ScalarType.Float32, n, k, bucket, threads), _ => MeasureManyRows(x, weight, bias, bucket));
    }

    /// <summary>
    /// Threads for the one-row kernel of a weight stored as int8 (with <paramref name="scale"/>) or bfloat16, where the
    /// kernel is the only path that reads the stored bytes: 1 or all threads, whichever had the lower median.
    /// </summary>
    public static LinearChoice ChooseThreads(Tensor weight, Tensor? scale)
    {
        long n = weight.shape[0], k = weight.shape[1];
        int threads = t_decodeThreads > 0 ? t_decodeThreads : torch.get_num_threads();
        if (threads <= 1 || weight.numel() < MatVec.ParallelThreshold) return new(n, k, 1, LinearPath.MatVec, 1, new Dictionary<string, double>());
        return s_choices.GetOrAdd((weight.dtype, n, k, 1, threads), key =>
        {
            using var _ = no_grad();
            using var x = full(k, 0.01f);
            Func<int, Func<Tensor>> run = t => weight.dtype == ScalarType.Int8 ? () => MatVec.LinearInt8(x, weight, scale!, null, t) : () => MatVec.LinearBFloat16(x, weight, null, t);
            int before = torch.get_num_threads();
            torch.set_num_threads(1);
            // No F.linear here: the baseline is the kernel on one thread, which the split must beat by MinSpeedup.
            try { return Decide(n, k, 1, [("matvec×1", LinearPath.MatVec, 1, run(1)), ($"matvec×{threads}", LinearPath.MatVec, threads, run(threads))]); }
            finally { torch.set_num_threads(before); }
        });
    }

    static LinearChoice Fixed(long n, long k, long rows, LinearPath path) => new(n, k, rows, path, 1, new Dictionary<string, double>());

    static LinearChoice MeasureOneRow(Tensor weight, Tensor? bias, int threads)
    {
        using var _ = no_grad();
        using var x = full(weight.shape[1], 0.01f);
        var candidates = new List<(string Name, LinearPath Path, int Threads, Func<Tensor> Run)>
        {
            ("blas", LinearPath.Blas, 1, () => F.linear(x, weight, bias)),
            ("matvec×1", LinearPath.MatVec, 1, () => MatVec.Linear(x, weight, bias, 1)),
        };
        if (threads > 1 && weight.numel() >= MatVec.ParallelThreshold)
            candidates.Add(($"matvec×{threads}", LinearPath.MatVec, threads, () => MatVec.Linear(x, weight, bias, threads)));
        // One-token steps run libtorch on one thread (CpuInferenceSession.DecodeStep): measure every candidate so.
        int before = torch.get_num_threads();
        torch.set_num_threads(1);
        try { return Decide(weight.shape[0], weight.shape[1], 1, candidates); }
        finally { torch.set_num_threads(before); }
    }

    static LinearChoice MeasureManyRows(Tensor x, Tensor weight, Tensor? bias, long bucket)
    {
        using var _ = no_grad();
        using var input = full(x.shape, 0.01f); // constant: measuring must not advance the global random generator
        return Decide(weight.shape[0], weight.shape[1], bucket,
        [
            ("blas", LinearPath.Blas, 1, () => F.linear(input, weight, bias)),
            ("onednn", LinearPath.OneDnn, 1, () => Conv1x1(input, weight, bias)),
        ]);
    }

    /// <summary>
    /// Times the candidates in interleaved rounds (so that a burst of load from another process hits all of them) after
    /// a warm-up, and picks the lowest median; a kernel must beat <c>F.linear</c> by <see cref="MinSpeedup"/>.
    /// </summary>
    static LinearChoice Decide(long n, long k, long rows, List<(string Name, LinearPath Path, int Threads, Func<Tensor> Run)> candidates)
    {
        const int warmup = 2, rounds = 7;
        var times = candidates.Select(_ => new List<double>()).ToArray();
        // Repeat very short products so that each sample is at least ~50 µs of work.
        var sw = Stopwatch.StartNew();
        candidates[0].Run().Dispose();
        int inner = (int)Math.Clamp(0.05 / Math.Max(sw.Elapsed.TotalMilliseconds, 1e-4), 1, 64);
        for (int r = 0; r < warmup + rounds; r++)
            for (int c = 0; c < candidates.Count; c++)
            {
                sw.Restart();
                for (int i = 0; i < inner; i++) candidates[c].Run().Dispose();
                if (r >= warmup) times[c].Add(sw.Elapsed.TotalMilliseconds / inner);
            }
        var medians = times.Select(t => t.Order().ElementAt(t.Count / 2)).ToArray();
        int best = 0;
        for (int c = 1; c < candidates.Count; c++)
            if (medians[c] * MinSpeedup <= medians[0] && medians[c] < medians[best]) best = c;
        var table = candidates.Select((c, i) => (c.Name, medians[i])).ToDictionary(t => t.Name, t => t.Item2);
        return new LinearChoice(n, k, rows, candidates[best].Path, candidates[best].Threads, table);
    }

    /// <summary>
    /// The product as a 1×1 convolution: the rows become the pixels of a 1×rows image with K channels, laid out
    /// channels-last so that no copy is needed on the way in or out, and each output channel is one row of W.
    /// </summary>
    internal static Tensor Conv1x1(Tensor x, Tensor weight, Tensor? bias)
    {
        long k = weight.shape[1], n = weight.shape[0], rows = x.numel() / k;
        var shape = x.shape.ToArray();
        shape[^1] = n;
        using var scope = NewDisposeScope();
        var image = x.reshape(1, 1, rows, k).permute(0, 3, 1, 2);            // [1, K, 1, rows], channels-last
        var y = F.conv2d(image, weight.view(n, k, 1, 1), bias);               // [1, N, 1, rows]
        return y.permute(0, 2, 3, 1).reshape(shape).MoveToOuterDisposeScope(); // [..., N]
    }
}

/// <summary>
/// A stand-in for an <c>nn.Linear</c> during CPU inference: the same weight and bias (the very same parameters, so
/// names, <c>state_dict</c> and results stay as they were), products through <see cref="InferenceLinear"/>.
/// <see cref="CpuInference.ForCpuInference"/> swaps it in and out.
/// </summary>
public sealed class CpuLinear : nn.Module<Tensor, Tensor>
{
    readonly Parameter weight;
    readonly Parameter? bias;

    /// <summary>Wraps <paramref name="layer"/>'s parameters (shared, not copied).</summary>
    public CpuLinear(Linear layer) : base(nameof(CpuLinear))
    {
        weight = layer.weight;
        bias = layer.bias;
        RegisterComponents();
    }

    /// <summary>The shared weight <c>[out, in]</c>.</summary>
    public Tensor Weight => weight;

    /// <inheritdoc/>
    public override Tensor forward(Tensor x) => InferenceLinear.Forward(x, weight, bias);

    /// <summary>Releases the module but not the parameters: they belong to the layer it stood in for.</summary>
    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            ConditionallyRegisterParameter(nameof(weight), (Parameter?)null);
            ConditionallyRegisterParameter(nameof(bias), (Parameter?)null);
        }
        base.Dispose(disposing);
    }
}
