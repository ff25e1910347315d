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

/// <summary>One epoch's summary.</summary>
/// <param name="Epoch">Epoch, 0-based (displayed 1-based in progress text).</param>
/// <param name="Steps">Optimizer steps done by the end of the epoch.</param>
/// <param name="LearningRate">The rate of the epoch's last update.</param>
/// <param name="TrainLoss">Mean training loss over the epoch's samples (with dropout on, weights changing along the way).</param>
/// <param name="TrainMetrics">Training metrics by name.</param>
/// <param name="ValLoss">Validation loss (eval mode, no grad) at the end of the epoch, if a validation set was given.</param>
/// <param name="ValMetrics">Validation metrics by name.</param>
/// <param name="Seconds">Wall time of the epoch including validation.</param>
/// <param name="SamplesPerSecond">Training samples per second.</param>
public sealed record EpochRecord(int Epoch, long Steps, double LearningRate, double TrainLoss, IReadOnlyDictionary<string, double> TrainMetrics,
    double? ValLoss, IReadOnlyDictionary<string, double> ValMetrics, double Seconds, double SamplesPerSecond)
{
    /// <summary>A value by history name: "train_loss", "val_loss", "train_NAME", "val_NAME", "lr".</summary>
    /// <returns>The value, or null when this epoch has none by that name.</returns>
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

/// <summary>
/// Everything a training run recorded: one <see cref="StepRecord"/> per optimizer step and one
/// <see cref="EpochRecord"/> per epoch. Saved inside checkpoints, so a resumed run continues the same history.
/// <see cref="ToDataFrame"/> gives the epochs as a table; <see cref="Plot"/> draws loss and metric curves.
/// </summary>
public sealed class TrainingHistory
{
    /// <summary>Per optimizer step.</summary>
    public List<StepRecord> Steps { get; init; } = new();

    /// <summary>Per epoch.</summary>
    public List<EpochRecord> Epochs { get; init; } = new();

    /// <summary>The epoch early stopping judged best (0-based), if early stopping ran.</summary>
    public int? BestEpoch { get; set; }

    /// <summary>Why training ended early: early stopping or a cancellation; null when it ran all epochs.</summary>
    public string? StopReason { get; set; }

    /// <summary>The per-step training losses, in order.</summary>
    public double[] StepLosses => Steps.Select(s => s.Loss).ToArray();

    /// <summary>The last epoch's record, if any.</summary>
    public EpochRecord? Last => Epochs.Count == 0 ? null : Epochs[^1];

    /// <summary>An epoch column by name ("train_loss", "val_accuracy", "lr", ...); NaN where an epoch has no value.</summary>
    public double[] Column(string name) => Epochs.Select(e => e.Get(name) ?? double.NaN).ToArray();

    /// <summary>The column names present: train_loss, train_METRIC..., val_loss, val_METRIC..., lr.</summary>
    public IReadOnlyList<string> ColumnNames
    {
        get
        {
            var names = new List<string> { "train_loss" };
            names.AddRange(Epochs.SelectMany(e => e.TrainMetrics.Keys).Distinct().Select(k => "train_" + k));
            if (Epochs.Any(e => e.ValLoss.HasValue)) names.Add("val_loss");
            names.AddRange(Epochs.SelectMany(e => e.ValMetrics.Keys).Distinct().Select(k => "val_" + k));
            names.Add("lr");
            return names;
        }
    }

    /// <summary>The epochs as a DataFrame: epoch (1-based), steps, the loss/metric columns, lr, seconds, samples/s.</summary>
    public DataFrame ToDataFrame()
    {
        var columns = new List<DataFrameColumn>
        {
            new Int32DataFrameColumn("epoch", Epochs.Select(e => e.Epoch + 1)),
            new Int64DataFrameColumn("steps", Epochs.Select(e => e.Steps)),
        };
        foreach (var name in ColumnNames)
            columns.Add(new DoubleDataFrameColumn(name, Epochs.Select(e => e.Get(name))));
        columns.Add(new DoubleDataFrameColumn("seconds", Epochs.Select(e => Math.Round(e.Seconds, 2))));
        columns.Add(new DoubleDataFrameColumn("samples_per_s", Epochs.Select(e => Math.Round(e.SamplesPerSecond))));
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
    /// Loss curves (per-step training loss, smoothed, plus per-epoch train and validation loss at the epochs' end
    /// steps) and, when metrics were tracked, a second panel with the metric per epoch.
    /// </summary>
    /// <param name="title">Chart title.</param>
    /// <param name="smoothing">Window of the moving average over step losses (1 = raw).</param>
    public GenericChart Plot(string? title = "Training history", int smoothing = 20)
    {
        var charts = new List<GenericChart> { LossChart(smoothing) };
        var metricNames = Epochs.SelectMany(e => e.TrainMetrics.Keys.Concat(e.ValMetrics.Keys)).Distinct().ToList();
        if (metricNames.Count > 0)
        {
            var x = Epochs.Select(e => (double)(e.Epoch + 1)).ToArray();
            var series = new List<(string, IReadOnlyList<double>)>();
            foreach (var m in metricNames)
            {
                if (Epochs.Any(e => e.TrainMetrics.ContainsKey(m))) series.Add(("train " + m, Column("train_" + m)));
                if (Epochs.Any(e => e.ValMetrics.ContainsKey(m))) series.Add(("val " + m, Column("val_" + m)));
            }
            charts.Add(Workbook.Plots.Plot.Lines(x, series, xTitle: "epoch", yTitle: string.Join(", ", metricNames)));
        }
        return charts.Count == 1
            ? (title is null ? charts[0] : Workbook.Plots.Plot.WithLayout(charts[0], ("title", new { text = title })))
            : Workbook.Plots.Plot.Grid(charts, 1, charts.Count, title);
    }

    GenericChart LossChart(int smoothing)
    {
        var traces = new List<GenericChart>();
        if (Steps.Count > 0)
        {
            var smooth = MovingAverage(StepLosses, Math.Max(1, smoothing));
            traces.Add(Workbook.Plots.Plot.Trace("scatter", ("x", Steps.Select(s => (double)s.Step + 1).ToArray()), ("y", smooth),
                ("mode", "lines"), ("name", smoothing > 1 ? $"train loss (step, avg {smoothing})" : "train loss (step)"), ("opacity", 0.5)));
        }
        if (Epochs.Count > 0)
        {
            var x = Epochs.Select(e => (double)e.Steps).ToArray();
            traces.Add(Workbook.Plots.Plot.Trace("scatter", ("x", x), ("y", Column("train_loss")), ("mode", "lines+markers"), ("name", "train loss (epoch)")));
            if (Epochs.Any(e => e.ValLoss.HasValue))
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
    public string ToJson() => JsonSerializer.Serialize(new Dto(Steps, Epochs.Select(e => new EpochDto(e.Epoch, e.Steps, e.LearningRate, e.TrainLoss,
        new(e.TrainMetrics), e.ValLoss, new(e.ValMetrics), e.Seconds, e.SamplesPerSecond)).ToList(), BestEpoch, StopReason), Json);

    /// <summary>Reads a history written by <see cref="ToJson"/>.</summary>
    /// <exception cref="InvalidDataException">The text is not a history.</exception>
    public static TrainingHistory FromJson(string json)
    {
        try
        {
            var dto = JsonSerializer.Deserialize<Dto>(json, Json) ?? throw new InvalidDataException("Not a training history: the JSON is null.");
            // Deserialization leaves absent members null; a history written by ToJson has them all.
            if (dto.Steps is null || dto.Epochs is null || dto.Steps.Any(s => s is null)
                || dto.Epochs.Any(e => e is null || e.TrainMetrics is null || e.ValMetrics is null))
                throw new InvalidDataException("Not a training history: 'Steps', 'Epochs' or an epoch's metrics are missing or null.");
            return new TrainingHistory
            {
                Steps = dto.Steps.ToList(),
                Epochs = dto.Epochs.Select(e => new EpochRecord(e.Epoch, e.Steps, e.LearningRate, e.TrainLoss, e.TrainMetrics, e.ValLoss,
                    e.ValMetrics, e.Seconds, e.SamplesPerSecond)).ToList(),
                BestEpoch = dto.BestEpoch,
                StopReason = dto.StopReason,
            };
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"Not a training history: {e.Message}", e);
        }
    }

    /// <summary>A deep copy.</summary>
    public TrainingHistory Clone() => FromJson(ToJson());

    /// <inheritdoc/>
    public override string ToString()
    {
        if (Epochs.Count == 0) return $"TrainingHistory: {Steps.Count} steps, no complete epoch";
        var last = Epochs[^1];
        var parts = new List<string> { $"{Epochs.Count} epochs, {last.Steps} steps", $"train_loss {last.TrainLoss:F4}" };
        parts.AddRange(last.TrainMetrics.Select(kv => $"train_{kv.Key} {kv.Value:F4}"));
        if (last.ValLoss is { } vl) parts.Add($"val_loss {vl:F4}");
        parts.AddRange(last.ValMetrics.Select(kv => $"val_{kv.Key} {kv.Value:F4}"));
        if (StopReason is not null) parts.Add($"stopped: {StopReason}");
        return "TrainingHistory: " + string.Join(", ", parts);
    }

    sealed record Dto(List<StepRecord> Steps, List<EpochDto> Epochs, int? BestEpoch, string? StopReason);

    sealed record EpochDto(int Epoch, long Steps, double LearningRate, double TrainLoss, Dictionary<string, double> TrainMetrics,
        double? ValLoss, Dictionary<string, double> ValMetrics, double Seconds, double SamplesPerSecond);
}
