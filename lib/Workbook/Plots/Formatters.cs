using System.Globalization;
using System.Net;
using System.Text;
using Microsoft.Data.Analysis;
using Microsoft.DotNet.Interactive.Formatting;
using Plotly.NET;
using TorchSharp;

namespace Workbook.Plots;

/// <summary>
/// Display formatters that every .NET Interactive front end shares (they live in
/// Microsoft.DotNet.Interactive.Formatting): Plotly charts as interactive offline plots, DataFrames as tables,
/// tensors as a one-line summary, and the setup summary. Registered by <see cref="Notebook.Setup"/>.
/// The formatter registered last for a type wins: a kernel extension loaded later (Plotly.NET.Interactive's, which
/// loads plotly.js from a CDN and draws nothing offline; Microsoft.Data.Analysis's DataFrame table) replaces ours
/// until <see cref="Register"/> runs again.
/// </summary>
public static class Formatters
{
    /// <summary>Rows of a DataFrame shown before "… n more rows".</summary>
    public static int DataFrameRowLimit { get; set; } = 20;

    /// <summary>Registers the formatters (again): ours win over any registered before.</summary>
    public static void Register()
    {
        Formatter.Register<GenericChart>((chart, writer) => writer.Write(PlotlyHtml.ToHtml(chart)), HtmlFormatter.MimeType);
        Formatter.Register<GenericChart>((chart, writer) => writer.Write("Plotly chart (open the HTML output to see it)"), "text/plain");
        Formatter.Register<DataFrame>((df, writer) => writer.Write(DataFrameHtml(df)), HtmlFormatter.MimeType);
        Formatter.Register<DataFrame>((df, writer) => writer.Write(DataFrameText(df)), "text/plain");
        Formatter.Register<torch.Tensor>((t, writer) => writer.Write(WebUtility.HtmlEncode(TensorSummary(t))), HtmlFormatter.MimeType);
        Formatter.Register<torch.Tensor>((t, writer) => writer.Write(TensorSummary(t)), "text/plain");
        Formatter.Register<SetupSummary>((s, writer) => writer.Write(SetupHtml(s)), HtmlFormatter.MimeType);
        Formatter.Register<SetupSummary>((s, writer) => writer.Write(
            $"TorchSharp {s.TorchSharpVersion} (libtorch {s.LibTorchVersion}) on {s.Device}, {s.Threads} threads, seed {s.Seed}, profile {s.Profile}"), "text/plain");
        Formatter.Register<ClaimResult>((c, writer) => writer.Write(ClaimHtml(c)), HtmlFormatter.MimeType);
        Formatter.Register<ClaimResult>((c, writer) => writer.Write(c.ToString()), "text/plain");
        Formatter.SetPreferredMimeTypesFor(typeof(torch.Tensor), "text/plain");
    }

    /// <summary>A checked claim as one coloured line: green when it held, grey when not checked in this profile.</summary>
    public static string ClaimHtml(ClaimResult c) =>
        $"<div class=\"wb-claim\" style=\"color:{(c.Checked ? (c.Held ? "#1a7f37" : "#b42318") : "#6e7781")}\">{WebUtility.HtmlEncode(c.ToString())}</div>";

    /// <summary>Tensor as one line: shape, dtype, device and a few values (never a wall of numbers).</summary>
    public static string TensorSummary(torch.Tensor t)
    {
        var shape = "[" + string.Join(", ", t.shape) + "]";
        var head = $"tensor {shape} {t.dtype} on {t.device}";
        if (t.IsInvalid) return head + " (disposed)";
        if (t.numel() == 0) return head + " (empty)";
        using var flat = t.detach().reshape(-1).cpu();
        int n = (int)Math.Min(6, flat.numel());
        var values = new List<string>();
        for (int i = 0; i < n; i++) values.Add(FormatScalar(flat[i]));
        var more = flat.numel() > n ? $", … ({flat.numel()} values)" : "";
        return $"{head}: [{string.Join(", ", values)}{more}]";
    }

    static string FormatScalar(torch.Tensor s) => s.dtype switch
    {
        torch.ScalarType.Bool => s.ToBoolean().ToString(),
        torch.ScalarType.Int8 or torch.ScalarType.Int16 or torch.ScalarType.Int32 or torch.ScalarType.Int64 or torch.ScalarType.Byte
            => s.ToInt64().ToString(CultureInfo.InvariantCulture),
        _ => s.to_type(torch.ScalarType.Float64).ToDouble().ToString("G5", CultureInfo.InvariantCulture),
    };

    /// <summary>A DataFrame as an HTML table with its shape, the first <see cref="DataFrameRowLimit"/> rows, numbers rounded.</summary>
    public static string DataFrameHtml(DataFrame df)
    {
        var sb = new StringBuilder();
        sb.Append("<div class=\"wb-dataframe\"><table style=\"border-collapse:collapse;font-size:90%\"><thead><tr><th></th>");
        foreach (var c in df.Columns)
            sb.Append("<th style=\"text-align:right;padding:2px 8px;border-bottom:1px solid #999\">").Append(WebUtility.HtmlEncode(c.Name)).Append("</th>");
        sb.Append("</tr></thead><tbody>");
        long rows = Math.Min(df.Rows.Count, DataFrameRowLimit);
        for (long r = 0; r < rows; r++)
        {
            sb.Append("<tr><td style=\"color:#888;padding:2px 8px\">").Append(r).Append("</td>");
            foreach (var c in df.Columns)
                sb.Append("<td style=\"text-align:right;padding:2px 8px\">").Append(WebUtility.HtmlEncode(Cell(c[r]))).Append("</td>");
            sb.Append("</tr>");
        }
        sb.Append("</tbody></table>");
        var more = df.Rows.Count > rows ? $", showing {rows}" : "";
        sb.Append($"<div style=\"color:#888;font-size:85%\">{df.Rows.Count} rows × {df.Columns.Count} columns{more}</div></div>");
        return sb.ToString();
    }

    /// <summary>A DataFrame as aligned text with the same limits as <see cref="DataFrameHtml"/>.</summary>
    public static string DataFrameText(DataFrame df)
    {
        long rows = Math.Min(df.Rows.Count, DataFrameRowLimit);
        var cols = df.Columns.Select(c => new[] { c.Name }.Concat(Enumerable.Range(0, (int)rows).Select(r => Cell(c[r]))).ToArray()).ToList();
        var widths = cols.Select(c => c.Max(s => s.Length)).ToList();
        var sb = new StringBuilder();
        for (int r = 0; r <= rows; r++)
        {
            sb.AppendJoin("  ", cols.Select((c, i) => c[r].PadLeft(widths[i])));
            sb.Append('\n');
        }
        sb.Append($"{df.Rows.Count} rows × {df.Columns.Count} columns");
        return sb.ToString();
    }

    static string Cell(object? v) => v switch
    {
        null => "",
        double d => d.ToString("G6", CultureInfo.InvariantCulture),
        float f => f.ToString("G6", CultureInfo.InvariantCulture),
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        _ => v.ToString() ?? "",
    };

    static string SetupHtml(SetupSummary s)
    {
        var rows = new (string, string)[]
        {
            ("TorchSharp", $"{s.TorchSharpVersion} (libtorch {s.LibTorchVersion})"),
            ("Device", s.Device), ("Threads", s.Threads.ToString(CultureInfo.InvariantCulture)),
            ("Seed", s.Seed.ToString(CultureInfo.InvariantCulture)), ("Profile", s.Profile.ToString()),
            ("Native fix", s.NativeFix), ("Data", s.DataDirectory ?? "(not found)"),
        };
        var sb = new StringBuilder("<table class=\"wb-setup\" style=\"font-size:90%\">");
        foreach (var (k, v) in rows)
            sb.Append("<tr><th style=\"text-align:left;padding:1px 10px 1px 0\">").Append(k).Append("</th><td>").Append(WebUtility.HtmlEncode(v)).Append("</td></tr>");
        return sb.Append("</table>").ToString();
    }
}
