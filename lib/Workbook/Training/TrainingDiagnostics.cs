using System.Globalization;
using Microsoft.Data.Analysis;
using Plotly.NET;
using TorchSharp;
using TorchSharp.Modules;
using Workbook.Plots;
using static TorchSharp.torch;

namespace Workbook.Training;

/// <summary>When an activation counts as saturated (its derivative is about 0).</summary>
public enum Saturation
{
    /// <summary>No rule (a linear layer's output, a LayerNorm): the fraction is reported as NaN.</summary>
    None,
    /// <summary>|a| ≥ 0.97 (tanh′ ≤ 0.06).</summary>
    Tanh,
    /// <summary>a ≤ 0.03 or a ≥ 0.97 (σ′ ≤ 0.03).</summary>
    Sigmoid,
    /// <summary>a ≤ 0: the unit is off and passes no gradient (ReLU; for leaky ReLU and GELU, almost none).</summary>
    Relu,
}

/// <summary>Statistics of one layer's output on one training batch.</summary>
/// <param name="Step">The optimizer step whose forward pass produced it.</param>
/// <param name="Layer">The module's name in the model (e.g. "3" in a Sequential).</param>
/// <param name="Mean">Mean of all output values.</param>
/// <param name="Std">Standard deviation of all output values.</param>
/// <param name="Saturated">Fraction of values in the saturated (zero-derivative) range of <paramref name="Rule"/>; NaN for <see cref="Saturation.None"/>.</param>
/// <param name="DeadUnits">Fraction of units (features) saturated for every sample of the batch: "dead" for this batch; NaN for <see cref="Saturation.None"/>.</param>
/// <param name="Rule">The saturation rule used.</param>
/// <param name="HistogramEdges">Bin edges of <paramref name="Histogram"/> (bins + 1 values, from the batch's min to max).</param>
/// <param name="Histogram">Counts per bin.</param>
public sealed record ActivationRecord(long Step, string Layer, double Mean, double Std, double Saturated, double DeadUnits, Saturation Rule,
    IReadOnlyList<double> HistogramEdges, IReadOnlyList<long> Histogram);

/// <summary>One weight matrix at one recorded step.</summary>
/// <param name="Step">The optimizer step.</param>
/// <param name="Name">The parameter's name.</param>
/// <param name="WeightStd">std of the weights before the update.</param>
/// <param name="GradStd">std of the gradient before clipping.</param>
/// <param name="GradNorm">L2 norm of the gradient before clipping.</param>
/// <param name="UpdateRatio">std(w_after − w_before) / std(w_before): the update-to-weight ratio of the step actually
/// taken (after clipping, with the optimizer's own scaling). Around 1e-3 is healthy; ≪ 1e-4 learns slowly, ≫ 1e-2 is
/// too fast.</param>
public sealed record ParameterRecord(long Step, string Name, double WeightStd, double GradStd, double GradNorm, double UpdateRatio)
{
    /// <summary>std(grad) / std(w) before clipping.</summary>
    public double GradToWeight => GradStd / WeightStd;
}

/// <summary>The total gradient norm of a step before and after clipping (equal without clipping).</summary>
/// <param name="Step">The optimizer step.</param>
/// <param name="Before">‖g‖ over all parameters, before clipping.</param>
/// <param name="After">‖g‖ after clipping.</param>
/// <param name="Loss">The step's training loss.</param>
public sealed record GradNormRecord(long Step, double Before, double After, double Loss);

/// <summary>
/// A <see cref="TrainerCallback"/> that records what a network does layer by layer while it trains, the numbers one
/// checks when a run does not learn: per layer, the output's mean, std, saturated fraction, dead units and histogram
/// (forward hooks on the layers, in training mode only); per weight matrix, the gradient's size and the
/// update-to-weight ratio of the step; every step, the total gradient norm before and after clipping.
/// <code>
/// using var diagnostics = new TrainingDiagnostics(model, every: 20);
/// var trainer = new Trainer(model, optimizer, loss) { Callbacks = { diagnostics } };
/// trainer.Fit(train);
/// diagnostics.Plot();      // four panels
/// diagnostics.Summary();   // one row per layer at the last recorded step
/// </code>
/// Layers and weights are measured every <see cref="Every"/> steps (on the first micro-batch of the step); gradient
/// norms every step. Recording changes nothing: the hooks return the layers' outputs unchanged and the callbacks only
/// read. Dispose it to remove the hooks.
/// </summary>
public sealed class TrainingDiagnostics : TrainerCallback, IDisposable
{
    readonly List<Action> _removeHooks = new();
    readonly List<(string Name, Parameter P)> _weights;
    readonly List<ActivationRecord> _pending = new();
    readonly List<Tensor> _before = new();
    readonly Dictionary<string, (double WeightStd, double GradStd, double GradNorm)> _gradients = new();
    readonly int _bins;
    bool _capture = true;
    bool _recording;

    /// <summary>Attaches to <paramref name="model"/>'s layers.</summary>
    /// <param name="model">The model the trainer trains.</param>
    /// <param name="every">Record layers and weights every this many optimizer steps (step 0 included).</param>
    /// <param name="layers">The layers to watch, with their saturation rule; by default every activation module
    /// (ReLU, LeakyReLU, GELU, SiLU, Tanh, Sigmoid) in the model, or every Linear layer if it has none.</param>
    /// <param name="bins">Histogram bins.</param>
    /// <exception cref="ArgumentException"><paramref name="every"/> or <paramref name="bins"/> is below 1, or there is nothing to watch.</exception>
    public TrainingDiagnostics(nn.Module<Tensor, Tensor> model, int every = 10, IEnumerable<(string Name, nn.Module<Tensor, Tensor> Layer, Saturation Rule)>? layers = null, int bins = 40)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (every < 1) throw new ArgumentException($"every must be ≥ 1, got {every}.", nameof(every));
        if (bins < 1) throw new ArgumentException($"bins must be ≥ 1, got {bins}.", nameof(bins));
        Every = every;
        _bins = bins;
        var watched = (layers ?? DefaultLayers(model)).ToList();
        if (watched.Count == 0)
            throw new ArgumentException("The model has no activation or Linear modules to watch; pass the layers explicitly.", nameof(layers));
        Layers = watched.Select(l => l.Name).ToList();
        foreach (var (name, layer, rule) in watched)
        {
            var hook = layer.register_forward_hook((m, input, output) => { Observe(name, m, output, rule); return output; });
            _removeHooks.Add(hook.remove);
        }
        _weights = model.named_parameters().Where(p => p.parameter.dim() >= 2).Select(p => (p.name, p.parameter)).ToList();
    }

    /// <summary>Steps between recordings of layers and weights.</summary>
    public int Every { get; }

    /// <summary>The watched layers' names, in forward order.</summary>
    public IReadOnlyList<string> Layers { get; }

    /// <summary>Layer statistics, per recorded step and layer.</summary>
    public List<ActivationRecord> Activations { get; } = new();

    /// <summary>Weight-matrix statistics, per recorded step and matrix.</summary>
    public List<ParameterRecord> Parameters { get; } = new();

    /// <summary>Total gradient norms, every step.</summary>
    public List<GradNormRecord> GradNorms { get; } = new();

    /// <summary>The modules <see cref="TrainingDiagnostics"/> watches by default, with their rules.</summary>
    public static IEnumerable<(string Name, nn.Module<Tensor, Tensor> Layer, Saturation Rule)> DefaultLayers(nn.Module model)
    {
        var all = model.named_modules().Where(m => m.module is nn.Module<Tensor, Tensor>).Select(m => (m.name, Layer: (nn.Module<Tensor, Tensor>)m.module)).ToList();
        var activations = all.Select(m => (m.name, m.Layer, Rule: RuleOf(m.Layer))).Where(m => m.Rule is not null).Select(m => (m.name, m.Layer, m.Rule!.Value)).ToList();
        return activations.Count > 0 ? activations : all.Where(m => m.Layer is Linear).Select(m => (m.name, m.Layer, Saturation.None));
    }

    static Saturation? RuleOf(nn.Module m) => m switch
    {
        Tanh => Saturation.Tanh,
        Sigmoid => Saturation.Sigmoid,
        ReLU or LeakyReLU or GELU or SiLU or ReLU6 => Saturation.Relu,
        _ => null,
    };

    /// <summary>
    /// The statistics of one activation tensor (what the hooks record): mean, std, saturated fraction, dead units.
    /// Units are the last dimension for 2-D and 3-D outputs (<c>[B, F]</c>, <c>[B, T, F]</c>) and the channels for 4-D
    /// ones (<c>[B, C, H, W]</c>).
    /// </summary>
    public static (double Mean, double Std, double Saturated, double DeadUnits) Measure(Tensor activation, Saturation rule)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var a = activation.detach().to_type(ScalarType.Float64);
        double mean = a.mean().item<double>(), std = a.numel() > 1 ? a.std().item<double>() : 0;
        if (rule == Saturation.None) return (mean, std, double.NaN, double.NaN);
        var saturated = rule switch
        {
            Saturation.Tanh => a.abs().ge(0.97),
            Saturation.Sigmoid => a.le(0.03).logical_or(a.ge(0.97)),
            _ => a.le(0),
        };
        double fraction = saturated.to_type(ScalarType.Float64).mean().item<double>();
        var units = a.dim() switch
        {
            <= 1 => saturated.reshape(-1, 1),
            4 => saturated.transpose(0, 1).reshape(a.shape[1], -1).t(),
            _ => saturated.reshape(-1, a.shape[^1]),
        };
        double dead = units.all(0).to_type(ScalarType.Float64).mean().item<double>();
        return (mean, std, fraction, dead);
    }

    void Observe(string name, nn.Module m, Tensor output, Saturation rule)
    {
        if (!_capture || !m.training || _pending.Any(p => p.Layer == name)) return;
        var (mean, std, saturated, dead) = Measure(output, rule);
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var flat = output.detach().to_type(ScalarType.Float64).reshape(-1);
        double lo = flat.min().item<double>(), hi = flat.max().item<double>();
        var edges = new double[_bins + 1];
        long[] counts;
        if (!double.IsFinite(lo) || !double.IsFinite(hi)) { counts = new long[_bins]; Array.Fill(edges, double.NaN); }
        else
        {
            if (hi == lo) hi = lo + 1e-12;
            for (int i = 0; i <= _bins; i++) edges[i] = lo + (hi - lo) * i / _bins;
            // (TorchSharp's histc takes integer bounds, so bin by hand: values at the max fall in the last bin.)
            var bin = ((flat - lo) / (hi - lo) * _bins).floor().clamp(0, _bins - 1).to_type(ScalarType.Int64);
            counts = bin.bincount(null, _bins).data<long>().ToArray();
        }
        _pending.Add(new ActivationRecord(-1, name, mean, std, saturated, dead, rule, edges, counts));
    }

    /// <inheritdoc/>
    public override void OnGradients(TrainingStepContext context)
    {
        _recording = context.Step % Every == 0;
        if (_recording) Activations.AddRange(_pending.Select(p => p with { Step = context.Step }));
        _pending.Clear();
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        double total = 0;
        foreach (var (name, p) in context.Trainer.Model.named_parameters())
        {
            if (p.grad is not { } g) continue;
            double norm = g.to_type(ScalarType.Float64).norm().item<double>();
            total += norm * norm;
            if (_recording && p.dim() >= 2)
                _gradients[name] = (p.detach().to_type(ScalarType.Float64).std().item<double>(), g.to_type(ScalarType.Float64).std().item<double>(), norm);
        }
        GradNorms.Add(new GradNormRecord(context.Step, Math.Sqrt(total), double.NaN, context.Loss));
    }

    /// <inheritdoc/>
    public override void OnBeforeStep(TrainingStepContext context)
    {
        using (var scope = NewDisposeScope())
        using (no_grad())
        {
            double total = 0;
            foreach (var p in context.Trainer.Model.parameters())
                if (p.grad is { } g) { double n = g.to_type(ScalarType.Float64).norm().item<double>(); total += n * n; }
            if (GradNorms.Count > 0 && GradNorms[^1].Step == context.Step) GradNorms[^1] = GradNorms[^1] with { After = Math.Sqrt(total) };
        }
        DisposeBefore();
        if (!_recording) return;
        using var noGrad = no_grad();
        foreach (var (_, p) in _weights) _before.Add(p.detach().to_type(ScalarType.Float64).clone().DetachFromDisposeScope());
    }

    /// <inheritdoc/>
    public override void OnAfterStep(TrainingStepContext context)
    {
        if (_recording && _before.Count == _weights.Count)
        {
            using var scope = NewDisposeScope();
            using var _ = no_grad();
            for (int i = 0; i < _weights.Count; i++)
            {
                var (name, p) = _weights[i];
                var w0 = _before[i];
                double w0Std = w0.std().item<double>();
                double update = (p.detach().to_type(ScalarType.Float64) - w0).std().item<double>();
                var (wStd, gStd, gNorm) = _gradients.TryGetValue(name, out var g) ? g : (w0Std, 0.0, 0.0);
                Parameters.Add(new ParameterRecord(context.Step, name, wStd, gStd, gNorm, w0Std == 0 ? double.NaN : update / w0Std));
            }
        }
        DisposeBefore();
        _gradients.Clear();
        _capture = (context.Step + 1) % Every == 0;
        _recording = false;
    }

    void DisposeBefore()
    {
        foreach (var t in _before) t.Dispose();
        _before.Clear();
    }

    /// <summary>The steps at which layers and weights were recorded.</summary>
    public IReadOnlyList<long> RecordedSteps => Activations.Select(a => a.Step).Concat(Parameters.Select(p => p.Step)).Distinct().Order().ToList();

    /// <summary>One row per watched layer at <paramref name="step"/> (default: the last recorded step).</summary>
    public DataFrame Summary(long? step = null)
    {
        long at = step ?? (RecordedSteps.Count > 0 ? RecordedSteps[^1] : throw new InvalidOperationException("Nothing recorded yet: train first."));
        var rows = Activations.Where(a => a.Step == at).ToList();
        return new DataFrame(
            new StringDataFrameColumn("layer", rows.Select(r => r.Layer)),
            new StringDataFrameColumn("rule", rows.Select(r => r.Rule.ToString())),
            new DoubleDataFrameColumn("mean", rows.Select(r => Math.Round(r.Mean, 4))),
            new DoubleDataFrameColumn("std", rows.Select(r => Math.Round(r.Std, 4))),
            new DoubleDataFrameColumn("saturated", rows.Select(r => Math.Round(r.Saturated, 4))),
            new DoubleDataFrameColumn("dead units", rows.Select(r => Math.Round(r.DeadUnits, 4))));
    }

    /// <summary>One row per weight matrix at <paramref name="step"/> (default: the last recorded step).</summary>
    public DataFrame WeightSummary(long? step = null)
    {
        long at = step ?? (RecordedSteps.Count > 0 ? RecordedSteps[^1] : throw new InvalidOperationException("Nothing recorded yet: train first."));
        var rows = Parameters.Where(p => p.Step == at).ToList();
        return new DataFrame(
            new StringDataFrameColumn("weight", rows.Select(r => r.Name)),
            new DoubleDataFrameColumn("std(w)", rows.Select(r => r.WeightStd)),
            new DoubleDataFrameColumn("‖grad‖", rows.Select(r => r.GradNorm)),
            new DoubleDataFrameColumn("std(grad)/std(w)", rows.Select(r => r.GradToWeight)),
            new DoubleDataFrameColumn("update/weight", rows.Select(r => r.UpdateRatio)));
    }

    /// <summary>
    /// Four panels: output std per layer and saturated fraction per layer (first and last recorded step),
    /// log₁₀ update-to-weight ratio per weight matrix over the steps (with the 1e-3 rule of thumb), and the total
    /// gradient norm before and after clipping.
    /// </summary>
    public GenericChart Plot(string? title = null)
    {
        var steps = Activations.Select(a => a.Step).Distinct().Order().ToList();
        if (steps.Count == 0 && GradNorms.Count == 0) throw new InvalidOperationException("Nothing recorded yet: train first.");
        var shown = steps.Count <= 1 ? steps : new List<long> { steps[0], steps[^1] };
        var x = Layers.Select((_, i) => (double)i).ToList();
        IReadOnlyList<double> PerLayer(long s, Func<ActivationRecord, double> f) =>
            Layers.Select(l => Activations.FirstOrDefault(a => a.Step == s && a.Layer == l) is { } r ? f(r) : double.NaN).ToList();
        var std = Workbook.Plots.Plot.Lines(x, shown.Select(s => ($"std, step {s}", PerLayer(s, r => r.Std))), xTitle: "layer");
        var sat = Workbook.Plots.Plot.Lines(x, shown.Select(s => ($"saturated, step {s}", PerLayer(s, r => r.Saturated))), xTitle: "layer");
        var updateSteps = Parameters.Select(p => p.Step).Distinct().Order().Select(s => (double)s).ToList();
        var names = Parameters.Select(p => p.Name).Distinct().ToList();
        var updates = updateSteps.Count == 0 ? Workbook.Plots.Plot.Lines([0.0], [("no weights recorded", [double.NaN])])
            : Workbook.Plots.Plot.Lines(updateSteps, names.Select(n => ($"log10 update/weight {n}",
                (IReadOnlyList<double>)updateSteps.Select(s => Parameters.FirstOrDefault(p => p.Name == n && p.Step == (long)s) is { } r ? Math.Log10(r.UpdateRatio) : double.NaN).ToList()))
                .Append(("1e-3", updateSteps.Select(_ => -3.0).ToList())));
        var normSteps = GradNorms.Select(g => (double)g.Step).ToList();
        var norms = Workbook.Plots.Plot.Lines(normSteps.Count > 0 ? normSteps : [0.0],
            normSteps.Count > 0
                ? new (string, IReadOnlyList<double>)[] { ("‖g‖ before clipping", GradNorms.Select(g => g.Before).ToList()), ("‖g‖ after clipping", GradNorms.Select(g => g.After).ToList()) }
                : [("no steps", [double.NaN])], logY: true);
        return Workbook.Plots.Plot.Grid([std, sat, updates, norms], 2, 2, title ?? "Training diagnostics: output std and saturation per layer; log10 update/weight; gradient norm");
    }

    /// <summary>The histograms of every watched layer's output at <paramref name="step"/> (default: the first recorded step).</summary>
    public GenericChart HistogramPlot(long? step = null, string? title = null)
    {
        var steps = Activations.Select(a => a.Step).Distinct().Order().ToList();
        long at = step ?? (steps.Count > 0 ? steps[0] : throw new InvalidOperationException("Nothing recorded yet: train first."));
        var rows = Activations.Where(a => a.Step == at).ToList();
        var traces = rows.Select(r => Workbook.Plots.Plot.Trace("scatter",
            ("x", r.HistogramEdges.Zip(r.HistogramEdges.Skip(1), (a, b) => (a + b) / 2).ToArray()),
            ("y", r.Histogram.Select(c => c / (double)Math.Max(1, r.Histogram.Sum())).ToArray()),
            ("mode", "lines"), ("name", $"layer {r.Layer}"))).ToList();
        return Workbook.Plots.Plot.WithLayout(GenericChart.combine(traces),
            ("title", new { text = title ?? string.Create(CultureInfo.InvariantCulture, $"Output histograms per layer, step {at}") }),
            ("xaxis", new { title = new { text = "value" } }), ("yaxis", new { title = new { text = "fraction" } }));
    }

    /// <summary>Removes the forward hooks and frees the snapshots.</summary>
    public void Dispose()
    {
        foreach (var remove in _removeHooks) remove();
        _removeHooks.Clear();
        DisposeBefore();
    }
}
