using System.Diagnostics;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Workbook.Kernels;

/// <summary>Which implementation <see cref="InferenceLinear"/> uses for a call.</summary>
public enum LinearPath
{
    /// <summary><c>F.linear</c>: libtorch's BLAS (oneMKL on the CPU) with autograd. Always used when gradients are needed.</summary>
    Blas,
    /// <summary>The C# matrix-vector kernel <see cref="MatVec"/>: one input row (token-by-token decoding).</summary>
    MatVec,
    /// <summary>A 1×1 convolution, which libtorch runs with oneDNN: many rows, where oneDNN's GEMM beats the BLAS.</summary>
    OneDnn,
}

/// <summary>
/// <c>y = x Wᵀ + b</c> for inference, on the fastest CPU path for the shape. With gradients, on a GPU, or for other
/// dtypes it is exactly <c>F.linear</c>; under <c>no_grad</c> on the CPU in float32 it picks:
/// <list type="bullet">
/// <item>one input row (decoding with a KV cache): <see cref="MatVec"/>, a C# kernel that streams the weights at
/// memory speed, where oneMKL's matrix-vector product runs on one thread;</item>
/// <item><see cref="OneDnnMinRows"/> rows or more, and a weight of at most <see cref="OneDnnMaxWeightElements"/>: a 1×1 convolution (the same product; libtorch runs it with oneDNN,
/// PyTorch's own CPU inference path for <c>Linear</c>), if a one-time measurement on this machine finds it at least
/// 20 % faster than the BLAS (it is about 1.5× on AVX-512 AMD CPUs, where oneMKL does not use AVX-512);</item>
/// <item>otherwise <c>F.linear</c>.</item>
/// </list>
/// All paths agree with <c>F.linear</c> up to float rounding (about 1e-6 relative). Set <c>WORKBOOK_KERNELS=off</c> (or
/// <see cref="Enabled"/> = false) to use <c>F.linear</c> everywhere.
/// </summary>
public static class InferenceLinear
{
    /// <summary>Fewest rows for which the oneDNN path is considered; below it the BLAS is as fast.</summary>
    public const int OneDnnMinRows = 32;

    /// <summary>Largest weight (elements) sent to oneDNN: it copies the weight into its blocked layout on every call,
    /// which for GPT-2's 154 MB LM head gains nothing over the BLAS and now and then takes three times as long.</summary>
    public const long OneDnnMaxWeightElements = 16L << 20;

    static readonly Lazy<OneDnnCalibration> _calibration = new(Calibrate);

    /// <summary>Whether the fast paths are used at all; false makes every call <c>F.linear</c>. Default: true unless the
    /// environment variable <c>WORKBOOK_KERNELS</c> is <c>off</c>, <c>0</c> or <c>false</c>.</summary>
    public static bool Enabled { get; set; } =
        Environment.GetEnvironmentVariable("WORKBOOK_KERNELS")?.Trim().ToLowerInvariant() is not ("off" or "0" or "false");

    /// <summary>The one-time measurement that decides whether many-row products go to oneDNN on this machine.</summary>
    public static OneDnnCalibration Calibration => _calibration.Value;

    /// <summary>The layer applied to <paramref name="x"/> on the fastest path (see the class remarks).</summary>
    public static Tensor Forward(Linear layer, Tensor x) => Forward(x, layer.weight!, layer.bias);

    /// <summary><c>x Wᵀ + b</c> for <paramref name="x"/> <c>[..., K]</c> and <paramref name="weight"/> <c>[N, K]</c>: <c>[..., N]</c>.</summary>
    /// <exception cref="ArgumentException"><paramref name="x"/>'s last dimension is not <paramref name="weight"/>'s in_features.</exception>
    public static Tensor Forward(Tensor x, Tensor weight, Tensor? bias = null)
    {
        if (weight.dim() != 2 || x.dim() == 0 || x.shape[^1] != weight.shape[1])
            throw new ArgumentException(
                $"x [{string.Join(", ", x.shape)}] does not fit weight [{string.Join(", ", weight.shape)}]: x's last dimension must equal weight's in_features (dimension 1).",
                nameof(x));
        switch (Choose(x, weight, bias))
        {
            case LinearPath.MatVec:
                return MatVec.Linear(x, weight, bias);
            case LinearPath.OneDnn:
                return Conv1x1(x, weight, bias);
            default:
                return F.linear(x, weight, bias);
        }
    }

    /// <summary>The path <see cref="Forward(Tensor, Tensor, Tensor?)"/> takes for these arguments.</summary>
    public static LinearPath Choose(Tensor x, Tensor weight, Tensor? bias = null)
    {
        if (!Enabled) return LinearPath.Blas;
        if (is_grad_enabled() && (x.requires_grad || weight.requires_grad || bias?.requires_grad == true)) return LinearPath.Blas;
        if (x.device_type != DeviceType.CPU || weight.device_type != DeviceType.CPU) return LinearPath.Blas;
        if (x.dtype != ScalarType.Float32 || weight.dtype != ScalarType.Float32 || (bias is not null && bias.dtype != ScalarType.Float32)) return LinearPath.Blas;
        long k = weight.shape[1];
        long rows = x.numel() / Math.Max(k, 1);
        if (rows == 1) return MatVec.IsSupported && weight.numel() * sizeof(float) < int.MaxValue ? LinearPath.MatVec : LinearPath.Blas;
        if (rows >= OneDnnMinRows && weight.numel() <= OneDnnMaxWeightElements && Calibration.UseOneDnn) return LinearPath.OneDnn;
        return LinearPath.Blas;
    }

    /// <summary>
    /// Scope for a forward pass of one token (cached decoding): libtorch runs single-threaded inside it and the
    /// <see cref="MatVec"/> products use the threads libtorch had. Every libtorch op of such a step is tiny, and the
    /// few that still open an OpenMP parallel region (attention over the heads) leave its workers spinning on the
    /// cores the matrix-vector kernel needs: measured on 2 cores, GPT-2 124M decodes a token in 11.9 ms this way and
    /// in 17–22 ms with both libtorch and the kernel on two threads. Returns null (nothing to undo) when the fast paths
    /// are off or libtorch already runs on one thread. Dispose it to restore the thread count. The thread count is
    /// process-wide: do not decode from several threads at once inside such scopes.
    /// </summary>
    public static IDisposable? DecodeScope()
    {
        int threads = torch.get_num_threads();
        if (!Enabled || threads <= 1 || !MatVec.IsSupported || MatVec.t_decodeThreads > 0) return null;
        return new DecodeThreads(threads);
    }

    sealed class DecodeThreads : IDisposable
    {
        readonly int _threads;
        bool _disposed;

        public DecodeThreads(int threads)
        {
            _threads = threads;
            MatVec.t_decodeThreads = threads;
            torch.set_num_threads(1);
        }

        public void Dispose()
        {
            if (_disposed) return;
            _disposed = true;
            torch.set_num_threads(_threads);
            MatVec.t_decodeThreads = 0;
        }
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

    static OneDnnCalibration Calibrate()
    {
        // A GPT-2 MLP-sized product (48 rows, 768 → 3072): warm both paths, then take each one's best of five. Constant
        // inputs, not random ones: the calibration must not advance the global generator that a seeded run relies on.
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var x = full(48, 768, 0.01f);
        var w = full(3072, 768, 0.02f);
        var b = full(3072, 0.5f);
        double Best(Func<Tensor> f)
        {
            for (int i = 0; i < 2; i++) f().Dispose();
            double best = double.MaxValue;
            for (int i = 0; i < 5; i++)
            {
                var sw = Stopwatch.StartNew();
                f().Dispose();
                best = Math.Min(best, sw.Elapsed.TotalMilliseconds);
            }
            return best;
        }
        double blas = Best(() => F.linear(x, w, b));
        double onednn = Best(() => Conv1x1(x, w, b));
        return new OneDnnCalibration(blas, onednn, onednn <= 0.8 * blas);
    }
}

/// <summary>The measurement behind <see cref="InferenceLinear"/>'s choice for many-row products.</summary>
/// <param name="BlasMs">Best time of <c>F.linear</c> on a [48, 768] × [768, 3072] product, ms.</param>
/// <param name="OneDnnMs">Best time of the 1×1-convolution path on the same product, ms.</param>
/// <param name="UseOneDnn">True when oneDNN took at most 80 % of the BLAS time.</param>
public sealed record OneDnnCalibration(double BlasMs, double OneDnnMs, bool UseOneDnn);
