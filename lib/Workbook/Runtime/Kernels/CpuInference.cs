using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Workbook.Runtime.Kernels;

/// <summary>
/// The CPU accelerator for inference, beside the plain model: <c>using (model.ForCpuInference()) { … }</c> swaps each
/// float32 CPU <c>nn.Linear</c> for a <see cref="CpuLinear"/> that shares its parameters and computes the same product on
/// whichever path measured fastest on this machine for its shape (<see cref="InferenceLinear"/>), and swaps the
/// originals back when disposed. <see cref="Gpt.TextGenerator"/> does this itself while it generates (see
/// <see cref="Gpt.GenerationOptions.CpuKernels"/>). Set the environment variable <c>WORKBOOK_KERNELS=off</c> to keep
/// every model plain.
/// </summary>
public static class CpuInference
{
    /// <summary>False when the environment variable <c>WORKBOOK_KERNELS</c> is <c>off</c>, <c>0</c> or <c>false</c>: then
    /// <see cref="ForCpuInference"/> swaps nothing.</summary>
    public static bool Allowed { get; set; } =
        Environment.GetEnvironmentVariable("WORKBOOK_KERNELS")?.Trim().ToLowerInvariant() is not ("off" or "0" or "false");

    /// <summary>
    /// Swaps <paramref name="model"/>'s float32 CPU linear layers for <see cref="CpuLinear"/> until the session is
    /// disposed. Layers that are already swapped (an outer session) are used as they are. Run the model under
    /// <c>no_grad</c> inside the session; with gradients every product is plain <c>F.linear</c> anyway.
    /// </summary>
    public static CpuInferenceSession ForCpuInference(this nn.Module model) => new(model);
}

/// <summary>
/// An active <see cref="CpuInference.ForCpuInference"/>: the swapped layers, and <see cref="DecodeStep"/> for one-token
/// forward passes. Dispose it to put the original layers back.
/// </summary>
public sealed class CpuInferenceSession : IDisposable
{
    readonly LayerSwap.Swapped? _swapped;
    readonly List<CpuLinear> _layers;
    bool _disposed;

    internal CpuInferenceSession(nn.Module model)
    {
        if (CpuInference.Allowed)
            _swapped = LayerSwap.ReplaceLinears(model, (_, linear) =>
                linear.weight.device_type == DeviceType.CPU && linear.weight.dtype == ScalarType.Float32 ? new CpuLinear(linear) : null);
        _layers = model.modules().OfType<CpuLinear>().ToList();
        _kernelLayers = _layers.Count + model.modules().OfType<Quantization.QuantizedLinear>().Count();
    }

    readonly int _kernelLayers;

    /// <summary>Number of layers that run through the accelerator (swapped by this session or an outer one).</summary>
    public int Layers => _layers.Count;

    /// <summary>Linear layers that stayed plain because their parent holds them in a field of type <c>Linear</c>.</summary>
    public IReadOnlyList<string> Skipped => _swapped?.Skipped ?? [];

    /// <summary>
    /// Measures the one-row path of every layer's shape now (about 0.1 s for GPT-2 124M, once per process) instead of
    /// at the first token, and returns the decisions.
    /// </summary>
    public IReadOnlyList<LinearChoice> Calibrate()
    {
        using var _ = no_grad();
        var result = new List<LinearChoice>();
        foreach (var shape in _layers.GroupBy(l => (l.Weight.shape[0], l.Weight.shape[1])))
        {
            var layer = shape.First();
            using var x = zeros(1, layer.Weight.shape[1]);
            result.Add(InferenceLinear.Choose(x, layer.Weight));
        }
        return result;
    }

    /// <summary>
    /// Scope for a forward pass of one token: libtorch runs on one thread inside it, so that the threads it had are
    /// free for <see cref="MatVec"/> (the shapes' measurements are taken under the same condition). Every libtorch op
    /// of such a step is tiny, and the few that still open an OpenMP parallel region (attention over the heads) leave
    /// its workers spinning on the cores the kernel needs: measured on 2 cores, GPT-2 124M decoded a token in 11.9 ms
    /// this way and in 17–22 ms with both on two threads. Weight-only quantized layers (<see cref="Quantization.QuantizedLinear"/>)
    /// run their kernel the same way. The thread count is process-wide: do not run other libtorch work from another
    /// thread meanwhile. Null when the model has no kernel layers or libtorch already runs on one thread.
    /// </summary>
    public IDisposable? DecodeStep()
    {
        int threads = torch.get_num_threads();
        if (_disposed || _kernelLayers == 0 || threads <= 1 || !MatVec.IsSupported || InferenceLinear.t_decodeThreads > 0) return null;
        return new OneThread(threads);
    }

    sealed class OneThread : IDisposable
    {
        readonly int _threads;
        bool _done;

        public OneThread(int threads)
        {
            _threads = threads;
            InferenceLinear.t_decodeThreads = threads;
            torch.set_num_threads(1);
        }

        public void Dispose()
        {
            if (_done) return;
            _done = true;
            torch.set_num_threads(_threads);
            InferenceLinear.t_decodeThreads = 0;
        }
    }

    /// <summary>Puts the original layers back.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _swapped?.Restore();
        foreach (var r in _swapped?.Layers ?? []) r.Module.Dispose();
    }
}
