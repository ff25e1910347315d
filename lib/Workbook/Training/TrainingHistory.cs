using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.Data.Analysis;
using Plotly.NET;
using Workbook.Plots;

namespace Workbook.Training;

/// <summary>One optimizer step: its number (0-based), epoch, the loss of the batch(es) it used, the rate and the gradient norm.</summary>
/// <param name="Step">Optimizer step, 0-based.</param>
/// <param name="Epoch">Epoch, 0-based.</param>
/// <param name="Loss">Mean training loss over the micro-batches of this step.</param>
/// <param name="LearningRate">The rate used for this update.</param>
/// <param name="GradNorm">Total L2 norm of the gradients before clipping (only when clipping is on).</param>
public sealed record StepRecord(long Step, int Epoch, double Loss, double LearningRate, double? GradNorm);

/// <summary>
/// The summary of one stretch of training that ends in an evaluation: an epoch (<see cref="EpochRecord"/>), or the
/// <see cref="Trainer.EvalEvery"/> optimizer steps before a step evaluation (<see cref="EvaluationRecord"/>).
/// </summary>
/// <param name="Epoch">The epoch it ended in, 0-based (displayed 1-based in progress text).</param>
/// <param name="Steps">Optimizer steps done by its end.</param>
/// <param name="LearningRate">The rate of its last update.</param>
/// <param name="TrainLoss">Mean training loss over its samples (with dropout on, weights changing along the way).</param>
/// <param name="TrainMetrics">Training metrics by name.</param>
/// <param name="ValLoss">Validation loss (eval mode, no grad) at its end, if it was evaluated on a validation source.</param>
/// <param name="ValMetrics">Validation metrics by name.</param>
/// <param name="Seconds">Wall time including validation.</param>
/// <param name="SamplesPerSecond">Training samples per second.</param>
public abstract record TrainingRecord(int Epoch, long Steps, double LearningRate, double TrainLoss, IReadOnlyDictionary<string, double> TrainMetrics,
    double? ValLoss, IReadOnlyDictionary<string, double> ValMetrics, double Seconds, double SamplesPerSecond)
{
    /// <summary>A value by history name: "train_loss", "val_loss", "train_NAME", "val_NAME", "lr".</summary>
    /// <returns>The value, or null when this record has none by that name.</returns>
    public double? Get(string name) => name switch
    {
        "train_loss" => TrainLoss,
        "val_loss" => ValLoss,
        "lr" => LearningRate,
        _ when name.StartsWith("train_", StringComparison.Ordinal) && TrainMetrics.TryGetValue(name[6..], out var v) => v,
        _ when name.StartsWith("val_", StringComparison.Ordinal) && ValMetrics.TryGetValue(name[4..], out var v) => v,
        _ => null,
    };
}

/// <summary>One epoch's summary (see <see cref="TrainingRecord"/> for the fields). When the <see cref="Trainer"/>
/// evaluates by steps, an epoch record has the training side only and the evaluations are <see cref="EvaluationRecord"/>s.</summary>
public sealed record EpochRecord(int Epoch, long Steps, double LearningRate, double TrainLoss, IReadOnlyDictionary<string, double> TrainMetrics,
    double? ValLoss, IReadOnlyDictionary<string, double> ValMetrics, double Seconds, double SamplesPerSecond)
    : TrainingRecord(Epoch, Steps, LearningRate, TrainLoss, TrainMetrics, ValLoss, ValMetrics, Seconds, SamplesPerSecond);

/// <summary>One evaluation every <see cref="Trainer.EvalEvery"/> optimizer steps (see <see cref="TrainingRecord"/>): the
/// training side covers the steps since the previous evaluation, <c>Epoch</c> is the epoch in progress.</summary>
public sealed record EvaluationRecord(int Epoch, long Steps, double LearningRate, double TrainLoss, IReadOnlyDictionary<string, double> TrainMetrics,
    double? ValLoss, IReadOnlyDictionary<string, double> ValMetrics, double Seconds, double SamplesPerSecond)
    : TrainingRecord(Epoch, Steps, LearningRate, TrainLoss, TrainMetrics, ValLoss, ValMetrics, Seconds, SamplesPerSecond);

/// <summary>
/// Everything a training run recorded: one <see cref="StepRecord"/> per optimizer step, one <see cref="EpochRecord"/>
/// per completed epoch and, when the <see cref="Trainer"/> evaluates every <see cref="Trainer.EvalEvery"/> steps, one
/// <see cref="EvaluationRecord"/> per evaluation. Saved inside checkpoints, so a resumed run continues the same history.
/// <see cref="ToDataFrame"/> gives the evaluated records as a table; <see cref="Plot"/> draws loss and metric curves.
/// </summary>
public sealed class TrainingHistory
{
    /// <summary>Per optimizer step.</summary>
    public List<StepRecord> Steps { get; init; } = new();

    /// <summary>Per completed epoch.</summary>
    public List<EpochRecord> Epochs { get; init; } = new();

    /// <summary>Per step evaluation (empty unless the Trainer evaluated every <see cref="Trainer.EvalEvery"/> steps).</summary>
    public List<EvaluationRecord> Evaluations { get; init; } = new();

    /// <summary>
    /// The records a run was evaluated at, in order: <see cref="Evaluations"/> when it evaluated by steps, else
    /// <see cref="Epochs"/>. Early stopping, <see cref="Column"/>, <see cref="ToDataFrame"/> and <see cref="Plot"/> use these.
    /// </summary>
    public IReadOnlyList<TrainingRecord> Records => Evaluations.Count > 0 ? Evaluations : Epochs;

    /// <summary>The epoch early stopping judged best (0-based), if it ran and evaluated by epochs.</summary>
    public int? BestEpoch { get; set; }

    /// <summary>The optimizer steps done at the record early stopping judged best, if early stopping ran.</summary>
    public long? BestStep { get; set; }

    /// <summary>Why the last <see cref="Trainer.Fit"/> ended (<see cref="Workbook.StopReason.Completed"/> when it ran
    /// everything it was given); null before a run has ended.</summary>
    public StopReason? StopReason { get; set; }

    /// <summary>The reason in words, with the numbers (e.g. which value did not improve for how long); null before a run has ended.</summary>
    public string? StopDetail { get; set; }

    /// <summary>The per-step training losses, in order.</summary>
    public double[] StepLosses => Steps.Select(s => s.Loss).ToArray();

    /// <summary>The last evaluated record (<see cref="Records"/>), if any.</summary>
    public TrainingRecord? Last => Records.Count == 0 ? null : Records[^1];

    /// <summary>A column of <see cref="Records"/> by name ("train_loss", "val_accuracy", "lr", ...); NaN where a record has no value.</summary>
    public double[] Column(string name) => Records.Select(e => e.Get(name) ?? double.NaN).ToArray();

    /// <summary>The column names present: train_loss, train_METRIC..., val_loss, val_METRIC..., lr.</summary>
    public IReadOnlyList<string> ColumnNames
    {
        get
        {
            var records = Records;
            var names = new List<string> { "train_loss" };
            names.AddRange(records.SelectMany(e => e.TrainMetrics.Keys).Distinct().Select(k => "train_" + k));
            if (records.Any(e => e.ValLoss.HasValue)) names.Add("val_loss");
            names.AddRange(records.SelectMany(e => e.ValMetrics.Keys).Distinct().Select(k => "val_" + k));
            names.Add("lr");
            return names;
        }
    }

    /// <summary>The <see cref="Records"/> as a DataFrame: epoch (1-based), steps, the loss/metric columns, lr, seconds, samples/s.</summary>
    public DataFrame ToDataFrame()
    {
        var records = Records;
        var columns = new List<DataFrameColumn>
        {
            new Int32DataFrameColumn("epoch", records.Select(e => e.Epoch + 1)),
            new Int64DataFrameColumn("steps", records.Select(e => e.Steps)),
        };
        foreach (var name in ColumnNames)
            columns.Add(new DoubleDataFrameColumn(name, records.Select(e => e.Get(name))));
        columns.Add(new DoubleDataFrameColumn("seconds", records.Select(e => Math.Round(e.Seconds, 2))));
        columns.Add(new DoubleDataFrameColumn("samples_per_s", records.Select(e => Math.Round(e.SamplesPerSecond))));
        return new DataFrame(columns);
    }

    /// <summary>The steps as a DataFrame: step, epoch, loss, lr (and grad_norm when clipping recorded it).</summary>
    public DataFrame StepsToDataFrame()
    {
        var columns = new List<DataFrameColumn>
        {
            new Int64DataFrameColumn("step", Steps.Select(s => s.Step)),
            new Int32DataFrameColumn("epoch", Steps.Select(s => s.Epoch + 1)),
            new DoubleDataFrameColumn("loss", Steps.Select(s => s.Loss)),
            new DoubleDataFrameColumn("lr", Steps.Select(s => s.LearningRate)),
        };
        if (Steps.Any(s => s.GradNorm.HasValue)) columns.Add(new DoubleDataFrameColumn("grad_norm", Steps.Select(s => s.GradNorm)));
        return new DataFrame(columns);
    }

    /// <summary>
    /// Loss curves (per-step training loss, smoothed, plus the train and validation loss of each evaluated record at
    /// its end step) and, when metrics were tracked, a second panel with the metrics per record.
    /// </summary>
    /// <param name="title">Chart title.</param>
    /// <param name="smoothing">Window of the moving average over step losses (1 = raw).</param>
    public GenericChart Plot(string? title = "Training history", int smoothing = 20)
    {
        var records = Records;
        bool bySteps = Evaluations.Count > 0;
        var charts = new List<GenericChart> { LossChart(smoothing, records, bySteps) };
        var metricNames = records.SelectMany(e => e.TrainMetrics.Keys.Concat(e.ValMetrics.Keys)).Distinct().ToList();
        if (metricNames.Count > 0)
        {
            var x = records.Select(e => bySteps ? (double)e.Steps : e.Epoch + 1).ToArray();
            var series = new List<(string, IReadOnlyList<double>)>();
            foreach (var m in metricNames)
            {
                if (records.Any(e => e.TrainMetrics.ContainsKey(m))) series.Add(("train " + m, Column("train_" + m)));
                if (records.Any(e => e.ValMetrics.ContainsKey(m))) series.Add(("val " + m, Column("val_" + m)));
            }
            charts.Add(Workbook.Plots.Plot.Lines(x, series, xTitle: bySteps ? "step" : "epoch", yTitle: string.Join(", ", metricNames)));
        }
        return charts.Count == 1
            ? (title is null ? charts[0] : Workbook.Plots.Plot.WithLayout(charts[0], ("title", new { text = title })))
            : Workbook.Plots.Plot.Grid(charts, 1, charts.Count, title);
    }

    GenericChart LossChart(int smoothing, IReadOnlyList<TrainingRecord> records, bool bySteps)
    {
        var traces = new List<GenericChart>();
        if (Steps.Count > 0)
        {
            var smooth = MovingAverage(StepLosses, Math.Max(1, smoothing));
            traces.Add(Workbook.Plots.Plot.Trace("scatter", ("x", Steps.Select(s => (double)s.Step + 1).ToArray()), ("y", smooth),
                ("mode", "lines"), ("name", smoothing > 1 ? $"train loss (step, avg {smoothing})" : "train loss (step)"), ("opacity", 0.5)));
        }
        if (records.Count > 0)
        {
            var x = records.Select(e => (double)e.Steps).ToArray();
            traces.Add(Workbook.Plots.Plot.Trace("scatter", ("x", x), ("y", Column("train_loss")), ("mode", "lines+markers"),
                ("name", bySteps ? "train loss (since last evaluation)" : "train loss (epoch)")));
            if (records.Any(e => e.ValLoss.HasValue))
                traces.Add(Workbook.Plots.Plot.Trace("scatter", ("x", x), ("y", Column("val_loss")), ("mode", "lines+markers"), ("name", "val loss")));
        }
        var chart = GenericChart.combine(traces);
        return Workbook.Plots.Plot.WithLayout(chart, ("xaxis", new { title = new { text = "step" } }), ("yaxis", new { title = new { text = "loss" } }));
    }

    /// <summary>Trailing moving average over a window (shorter at the start).</summary>
    public static double[] MovingAverage(IReadOnlyList<double> values, int window)
    {
        var result = new double[values.Count];
        double sum = 0;
        for (int i = 0; i < values.Count; i++)
        {
            sum += values[i];
            if (i >= window) sum -= values[i - window];
            result[i] = sum / Math.Min(i + 1, window);
        }
        return result;
    }

    static readonly JsonSerializerOptions Json = new() { NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals };

    /// <summary>The history as JSON (doubles round-trip exactly).</summary>
    public string ToJson() => JsonSerializer.Serialize(new Dto(Steps, Epochs.Select(RecordDto.Of).ToList(), Evaluations.Select(RecordDto.Of).ToList(),
        BestEpoch, BestStep, StopReason?.ToString(), StopDetail), Json);

    /// <summary>Reads a history written by <see cref="ToJson"/>.</summary>
    /// <exception cref="InvalidDataException">The text is not a history.</exception>
    public static TrainingHistory FromJson(string json)
    {
        try
        {
            var dto = JsonSerializer.Deserialize<Dto>(json, Json) ?? throw new InvalidDataException("Not a training history: the JSON is null.");
            // Deserialization leaves absent members null; a history written by ToJson has them all.
            if (dto.Steps is null || dto.Epochs is null || dto.Steps.Any(s => s is null)
                || dto.Epochs.Concat(dto.Evaluations ?? []).Any(e => e is null || e.TrainMetrics is null || e.ValMetrics is null))
                throw new InvalidDataException("Not a training history: 'Steps', 'Epochs' or an epoch's metrics are missing or null.");
            var (reason, detail) = ParseStop(dto.StopReason, dto.StopDetail);
            return new TrainingHistory
            {
                Steps = dto.Steps.ToList(),
                Epochs = dto.Epochs.Select(e => new EpochRecord(e.Epoch, e.Steps, e.LearningRate, e.TrainLoss, e.TrainMetrics, e.ValLoss,
                    e.ValMetrics, e.Seconds, e.SamplesPerSecond)).ToList(),
                Evaluations = (dto.Evaluations ?? []).Select(e => new EvaluationRecord(e.Epoch, e.Steps, e.LearningRate, e.TrainLoss, e.TrainMetrics,
                    e.ValLoss, e.ValMetrics, e.Seconds, e.SamplesPerSecond)).ToList(),
                BestEpoch = dto.BestEpoch,
                BestStep = dto.BestStep,
                StopReason = reason,
                StopDetail = detail,
            };
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"Not a training history: {e.Message}", e);
        }
    }

    /// <summary>The stop reason from its JSON name; histories written before it was an enum kept only the sentence.</summary>
    static (StopReason?, string?) ParseStop(string? reason, string? detail)
    {
        if (reason is null) return (null, detail);
        if (Enum.TryParse<StopReason>(reason, out var r)) return (r, detail);
        StopReason? legacy = reason.StartsWith("cancelled", StringComparison.Ordinal) ? Workbook.StopReason.Cancelled
            : reason.StartsWith("early stopping", StringComparison.Ordinal) ? Workbook.StopReason.EarlyStopping
            : reason.StartsWith("the training loss became", StringComparison.Ordinal) ? Workbook.StopReason.NonFiniteLoss
            : throw new InvalidDataException($"Not a training history: unknown stop reason '{reason}'.");
        return (legacy, detail ?? reason);
    }

    /// <summary>A deep copy.</summary>
    public TrainingHistory Clone() => FromJson(ToJson());

    /// <inheritdoc/>
    public override string ToString()
    {
        if (Last is not { } last) return $"TrainingHistory: {Steps.Count} steps, no complete epoch";
        var parts = new List<string> { Evaluations.Count > 0 ? $"{Evaluations.Count} evaluations, {last.Steps} steps" : $"{Epochs.Count} epochs, {last.Steps} steps",
            $"train_loss {last.TrainLoss:F4}" };
        parts.AddRange(last.TrainMetrics.Select(kv => $"train_{kv.Key} {kv.Value:F4}"));
        if (last.ValLoss is { } vl) parts.Add($"val_loss {vl:F4}");
        parts.AddRange(last.ValMetrics.Select(kv => $"val_{kv.Key} {kv.Value:F4}"));
        if (StopReason is { } why and not Workbook.StopReason.Completed) parts.Add($"stopped: {StopDetail ?? why.ToString()}");
        return "TrainingHistory: " + string.Join(", ", parts);
    }

    sealed record Dto(List<StepRecord> Steps, List<RecordDto> Epochs, List<RecordDto>? Evaluations, int? BestEpoch, long? BestStep,
        string? StopReason, string? StopDetail);

    sealed record RecordDto(int Epoch, long Steps, double LearningRate, double TrainLoss, Dictionary<string, double> TrainMetrics,
        double? ValLoss, Dictionary<string, double> ValMetrics, double Seconds, double SamplesPerSecond)
    {
        public static RecordDto Of(TrainingRecord e) => new(e.Epoch, e.Steps, e.LearningRate, e.TrainLoss, new(e.TrainMetrics), e.ValLoss,
            new(e.ValMetrics), e.Seconds, e.SamplesPerSecond);
    }
}
