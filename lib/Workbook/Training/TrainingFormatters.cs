using Microsoft.DotNet.Interactive.Formatting;
using Workbook.Plots;

namespace Workbook.Training;

/// <summary>
/// Notebook display of training objects: <see cref="TrainingProgress"/> as a progress bar with the latest numbers,
/// <see cref="TrainingHistory"/> as its epoch table, <see cref="EvaluationResult"/> as one line. Registered when the
/// first <see cref="Trainer"/> is created (and idempotent).
/// </summary>
public static class TrainingFormatters
{
    static int _registered;

    /// <summary>Registers the formatters with .NET Interactive's formatter registry.</summary>
    public static void Register()
    {
        if (Interlocked.Exchange(ref _registered, 1) == 1) return;
        Formatter.Register<TrainingProgress>((p, w) => w.Write(p.ToHtml()), HtmlFormatter.MimeType);
        Formatter.Register<TrainingProgress>((p, w) => w.Write(p.ToText()), PlainTextFormatter.MimeType);
        Formatter.Register<TrainingHistory>((h, w) => w.Write(Formatters.DataFrameHtml(h.ToDataFrame())), HtmlFormatter.MimeType);
        Formatter.Register<TrainingHistory>((h, w) => w.Write(h.ToString()), PlainTextFormatter.MimeType);
        Formatter.Register<EvaluationResult>((r, w) => w.Write(System.Net.WebUtility.HtmlEncode(r.ToString())), HtmlFormatter.MimeType);
        Formatter.Register<EvaluationResult>((r, w) => w.Write(r.ToString()), PlainTextFormatter.MimeType);
    }
}
