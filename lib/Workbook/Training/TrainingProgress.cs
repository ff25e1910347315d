using System.Globalization;
using System.Net;
using System.Text;

namespace Workbook.Training;

/// <summary>Where a training run is when it reports progress.</summary>
public enum TrainingPhase
{
    /// <summary>Inside an epoch's training batches (reported about every <see cref="Trainer.ProgressInterval"/>).</summary>
    Train,
    /// <summary>An epoch finished (training and, when evaluating by epochs, validation); <see cref="TrainingProgress.History"/> has its record.</summary>
    EpochEnd,
    /// <summary>An evaluation every <see cref="Trainer.EvalEvery"/> steps finished; <see cref="TrainingHistory.Evaluations"/> has its record.</summary>
    Evaluation,
    /// <summary>The run ended (all epochs, early stopping, cancellation or a non-finite loss).</summary>
    Done,
}

/// <summary>
/// A progress report from <see cref="Trainer.Fit"/>. A notebook renders it live
/// (<c>var view = Notebook.Display(""); trainer.OnProgress = p =&gt; view.Update(p);</c> shows a progress bar and the latest
/// numbers; update with <c>p.History.Plot()</c> at <see cref="TrainingPhase.EpochEnd"/> for live curves), a console
/// with <see cref="ConsoleProgress"/>.
/// </summary>
/// <param name="Phase">What just happened.</param>
/// <param name="Epoch">The current epoch, 0-based.</param>
/// <param name="Epochs">The total number of epochs.</param>
/// <param name="Batch">Micro-batches done in this epoch.</param>
/// <param name="Batches">Micro-batches per epoch.</param>
/// <param name="Step">Optimizer steps done so far (whole run).</param>
/// <param name="Loss">Mean training loss over this epoch's batches so far.</param>
/// <param name="LearningRate">The current learning rate.</param>
/// <param name="SamplesPerSecond">Training throughput in this epoch.</param>
/// <param name="Elapsed">Time since this epoch started.</param>
/// <param name="History">The history so far (shared, not a copy: read it in the callback).</param>
public sealed record TrainingProgress(TrainingPhase Phase, int Epoch, int Epochs, int Batch, int Batches, long Step, double Loss,
    double LearningRate, double SamplesPerSecond, TimeSpan Elapsed, TrainingHistory History)
{
    /// <summary>The run's step budget (<see cref="Trainer.MaxSteps"/>), or null when it runs by epochs; with it, the
    /// bar shows steps instead of the epoch's batches.</summary>
    public long? MaxSteps { get; init; }

    /// <summary>Fraction of the epoch done, in [0, 1].</summary>
    public double EpochFraction => Batches == 0 ? 1 : (double)Batch / Batches;

    /// <summary>Estimated time left in this epoch's training part.</summary>
    public TimeSpan EpochRemaining => Batch == 0 ? TimeSpan.Zero : Elapsed * ((double)(Batches - Batch) / Batch);

    /// <summary>
    /// One line with a text progress bar: <c>epoch 2/5 [██████····] 312/469 loss 0.4123 lr 1.0e-03 5,400 samples/s 0:12 left</c>,
    /// or with a step budget <c>step 300/1000 [███████·················] epoch 3 loss ...</c>.
    /// </summary>
    public string ToText(int barWidth = 24)
    {
        double fraction = MaxSteps is { } max ? Math.Clamp((double)Step / Math.Max(1, max), 0, 1) : EpochFraction;
        int filled = (int)Math.Round(fraction * barWidth);
        var sb = new StringBuilder();
        if (MaxSteps is { } total)
            sb.Append(CultureInfo.InvariantCulture, $"step {Step}/{total} [").Append('█', filled).Append('·', barWidth - filled)
              .Append(CultureInfo.InvariantCulture, $"] epoch {Epoch + 1}");
        else
            sb.Append(CultureInfo.InvariantCulture, $"epoch {Epoch + 1}/{Epochs} [").Append('█', filled).Append('·', barWidth - filled)
              .Append(CultureInfo.InvariantCulture, $"] {Batch}/{Batches}");
        sb.Append(CultureInfo.InvariantCulture, $" loss {Loss:F4} lr {LearningRate:0.0e+00} {SamplesPerSecond:N0} samples/s");
        if (Phase == TrainingPhase.Train && MaxSteps is null) sb.Append(CultureInfo.InvariantCulture, $" {Format(EpochRemaining)} left");
        if (Phase != TrainingPhase.Train && History.Last is { } last && last.Epoch == Epoch)
        {
            foreach (var (k, v) in last.TrainMetrics) sb.Append(CultureInfo.InvariantCulture, $" train_{k} {v:F4}");
            if (last.ValLoss is { } vl) sb.Append(CultureInfo.InvariantCulture, $" val_loss {vl:F4}");
            foreach (var (k, v) in last.ValMetrics) sb.Append(CultureInfo.InvariantCulture, $" val_{k} {v:F4}");
        }
        if (Phase == TrainingPhase.Done && History.StopReason is { } why and not StopReason.Completed)
            sb.Append(" (").Append(History.StopDetail ?? why.ToString()).Append(')');
        return sb.ToString();
    }

    /// <summary>An HTML progress bar and the latest numbers, for notebooks.</summary>
    public string ToHtml()
    {
        var sb = new StringBuilder("<div class=\"wb-progress\" style=\"font-family:monospace;font-size:90%\">");
        if (MaxSteps is { } total)
        {
            sb.Append(CultureInfo.InvariantCulture, $"<div>step {Step}/{total} · epoch {Epoch + 1} · batch {Batch}/{Batches}</div>");
            sb.Append(CultureInfo.InvariantCulture, $"<progress value=\"{Step}\" max=\"{Math.Max(1, total)}\" style=\"width:320px\"></progress>");
        }
        else
        {
            sb.Append(CultureInfo.InvariantCulture, $"<div>epoch {Epoch + 1}/{Epochs} · batch {Batch}/{Batches} · step {Step}</div>");
            sb.Append(CultureInfo.InvariantCulture, $"<progress value=\"{Batch}\" max=\"{Math.Max(1, Batches)}\" style=\"width:320px\"></progress>");
        }
        sb.Append("<table style=\"border-collapse:collapse\"><tr>");
        var cells = new List<(string, string)>
        {
            ("loss", Loss.ToString("F4", CultureInfo.InvariantCulture)),
            ("lr", LearningRate.ToString("0.00e+00", CultureInfo.InvariantCulture)),
            ("samples/s", SamplesPerSecond.ToString("N0", CultureInfo.InvariantCulture)),
            (Phase == TrainingPhase.Train ? "left" : "time", Format(Phase == TrainingPhase.Train ? EpochRemaining : Elapsed)),
        };
        if (History.Last is { } last)
        {
            string at = last is EvaluationRecord ? $"step {last.Steps}" : $"ep {last.Epoch + 1}";
            foreach (var (k, v) in last.TrainMetrics) cells.Add(($"train_{k} ({at})", v.ToString("F4", CultureInfo.InvariantCulture)));
            if (last.ValLoss is { } vl) cells.Add(($"val_loss ({at})", vl.ToString("F4", CultureInfo.InvariantCulture)));
            foreach (var (k, v) in last.ValMetrics) cells.Add(($"val_{k} ({at})", v.ToString("F4", CultureInfo.InvariantCulture)));
        }
        foreach (var (k, v) in cells)
            sb.Append("<td style=\"padding:2px 10px\"><span style=\"color:#888\">").Append(WebUtility.HtmlEncode(k)).Append("</span><br/>").Append(v).Append("</td>");
        sb.Append("</tr></table>");
        if (Phase == TrainingPhase.Done)
            sb.Append("<div>").Append(WebUtility.HtmlEncode(History.StopReason is { } why and not StopReason.Completed
                ? "stopped: " + (History.StopDetail ?? why.ToString()) : "done")).Append("</div>");
        return sb.Append("</div>").ToString();
    }

    /// <inheritdoc/>
    public override string ToString() => ToText();

    static string Format(TimeSpan t) => t.TotalHours >= 1 ? t.ToString(@"h\:mm\:ss", CultureInfo.InvariantCulture) : t.ToString(@"m\:ss", CultureInfo.InvariantCulture);
}

/// <summary>Console rendering of <see cref="TrainingProgress"/>.</summary>
public static class ConsoleProgress
{
    /// <summary>
    /// A progress callback for a console: on a terminal, one line redrawn in place (carriage return) and kept at each
    /// epoch's end; when output is redirected (logs, notebooks), one line per epoch only.
    /// </summary>
    /// <param name="writer">Where to write (default <see cref="Console.Out"/>).</param>
    /// <param name="inPlace">Redraw in place; default: when the console output is not redirected.</param>
    public static Action<TrainingProgress> Bar(TextWriter? writer = null, bool? inPlace = null)
    {
        bool redraw = inPlace ?? (writer is null && !Console.IsOutputRedirected);
        return p =>
        {
            var w = writer ?? Console.Out;
            if (p.Phase == TrainingPhase.Train)
            {
                if (redraw) w.Write("\r" + p.ToText() + "   ");
                return;
            }
            if (p.Phase is TrainingPhase.EpochEnd or TrainingPhase.Evaluation) w.WriteLine((redraw ? "\r" : "") + p.ToText() + "   ");
            else if (p.History.StopReason is { } why and not StopReason.Completed) w.WriteLine("stopped: " + (p.History.StopDetail ?? why.ToString()));
            w.Flush();
        };
    }
}
