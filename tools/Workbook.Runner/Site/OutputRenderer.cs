using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace Workbook.Runner.Site;

/// <summary>
/// A code cell's outputs as the kernel gave them, in the MIME order Jupyter prefers: HTML, Markdown, LaTeX, images,
/// JSON, then plain text; streams (consecutive ones merged, as Jupyter does), and errors with their traceback.
/// HTML is kept as is, except for three things an offline page must not carry: .NET Interactive's kernel bootstrap
/// script (it probes the live kernel over HTTP and loads require.js from a CDN), repeated copies of the same
/// <c>&lt;style&gt;</c> block, and the inline plotly.js of the library's first chart, which the site writes once.
/// </summary>
sealed partial class OutputRenderer
{
    static readonly string[] MimeOrder =
        ["text/html", "text/markdown", "text/latex", "image/svg+xml", "image/png", "image/jpeg", "image/gif", "image/webp", "application/json", "text/plain"];

    readonly MarkdownRenderer _markdown;
    readonly PlotlyAssets _plotly;

    public OutputRenderer(MarkdownRenderer markdown, PlotlyAssets plotly)
    {
        _markdown = markdown;
        _plotly = plotly;
    }

    /// <summary>Renders one cell's outputs; <paramref name="page"/> collects what the page as a whole needs.</summary>
    public string Render(IReadOnlyList<JsonObject> outputs, MarkdownContext context, PageState page)
    {
        var sb = new StringBuilder();
        for (int i = 0; i < outputs.Count; i++)
        {
            var o = outputs[i];
            var type = NotebookFile.Text(o["output_type"]);
            if (type == "stream")
            {
                var name = NotebookFile.Text(o["name"]) ?? "stdout";
                var text = new StringBuilder(NotebookFile.Text(o["text"]) ?? "");
                while (i + 1 < outputs.Count && NotebookFile.Text(outputs[i + 1]["output_type"]) == "stream" && (NotebookFile.Text(outputs[i + 1]["name"]) ?? "stdout") == name)
                    text.Append(NotebookFile.Text(outputs[++i]["text"]));
                var cls = name == "stderr" ? "wb-stderr" : "wb-stdout";
                sb.Append($"<div class=\"wb-output\"><pre class=\"wb-stream {cls}\">{Ansi.ToHtml(text.ToString().TrimEnd('\n'))}</pre></div>\n");
                continue;
            }
            if (type == "error") { sb.Append(Error(o)); continue; }
            if (o["data"] is not JsonObject data) continue;
            var html = Bundle(data, o["metadata"] as JsonObject, context, page);
            if (html.Length > 0) sb.Append("<div class=\"wb-output\">").Append(html).Append("</div>\n");
        }
        return sb.ToString();
    }

    static string Error(JsonObject o)
    {
        var ename = NotebookFile.Text(o["ename"]) ?? "Error";
        var evalue = NotebookFile.Text(o["evalue"]) ?? "";
        var traceback = (o["traceback"] as JsonArray ?? []).Select(NotebookFile.Text).Where(t => t is not null).Select(t => t!).ToList();
        // .NET Interactive repeats the stack: traceback[0] is the whole exception text, the rest are its own lines again.
        if (traceback.Count > 1 && traceback[0].Contains('\n') && traceback.Skip(1).All(t => traceback[0].Contains(t, StringComparison.Ordinal)))
            traceback = [traceback[0]];
        // The name heads the box; the traceback (or, without one, the value) follows, with the value first when the traceback omits it.
        var body = traceback.Count > 0 ? string.Join("\n", traceback) : evalue;
        if (traceback.Count > 0 && evalue.Length > 0 && !Ansi.Strip(body).Contains(Ansi.Strip(evalue).Split('\n')[0], StringComparison.Ordinal)) body = evalue + "\n" + body;
        return $"<div class=\"wb-output\"><pre class=\"wb-error\"><span class=\"wb-error-name\">{Html.Encode(ename)}</span>\n{Ansi.ToHtml(body)}</pre></div>\n";
    }

    string Bundle(JsonObject data, JsonObject? metadata, MarkdownContext context, PageState page)
    {
        foreach (var mime in MimeOrder)
        {
            if (data[mime] is not { } node) continue;
            var text = mime == "application/json" ? node.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) : NotebookFile.Text(node) ?? "";
            switch (mime)
            {
                case "text/html":
                    if (IsKernelBootstrap(text)) return "";
                    return $"<div class=\"wb-html\">{RewriteHtml(text, context, page)}</div>";
                case "text/markdown":
                    return $"<div class=\"wb-md wb-md-output\">{_markdown.Render(text, context)}</div>";
                case "text/latex":
                    var latex = text.Trim();
                    return $"<div class=\"wb-md wb-md-output\">{(latex.Contains('$') || latex.StartsWith("\\[", StringComparison.Ordinal) ? _markdown.Render(latex.Replace("\\[", "$$").Replace("\\]", "$$"), context) : context.Math(page.Math, latex, display: true))}</div>";
                case "image/svg+xml":
                    return Image("image/svg+xml", Convert.ToBase64String(Encoding.UTF8.GetBytes(text)), metadata?[mime] as JsonObject);
                case "image/png" or "image/jpeg" or "image/gif" or "image/webp":
                    return Image(mime, Regex.Replace(text, "\\s", ""), metadata?[mime] as JsonObject);
                case "application/json":
                    return $"<pre class=\"wb-text\">{Html.Encode(text)}</pre>";
                default:
                    return $"<pre class=\"wb-text\">{Ansi.ToHtml(text.TrimEnd('\n'))}</pre>";
            }
        }
        var kinds = string.Join(", ", data.Select(p => p.Key));
        return $"<div class=\"wb-unsupported\">An output of type {Html.Encode(kinds)} that a static page cannot show.</div>";
    }

    static string Image(string mime, string base64, JsonObject? meta)
    {
        var size = "";
        if (meta?["width"] is JsonValue w && w.GetValueKind() == JsonValueKind.Number) size += $" width=\"{w}\"";
        if (meta?["height"] is JsonValue h && h.GetValueKind() == JsonValueKind.Number) size += $" height=\"{h}\"";
        return $"<img class=\"wb-image\" alt=\"output image\" src=\"data:{mime};base64,{base64}\"{size}>";
    }

    /// <summary>.NET Interactive's first output in a session: a script that looks for the live kernel's HTTP API.</summary>
    static bool IsKernelBootstrap(string html) =>
        html.Contains("dotnet-interactive-this-cell-", StringComparison.Ordinal) && html.Contains("probeAddresses", StringComparison.Ordinal);

    string RewriteHtml(string html, MarkdownContext context, PageState page)
    {
        html = PlotlyLibrary().Replace(html, m =>
        {
            _plotly.Add(m.Groups["version"].Value, m.Groups["body"].Value);
            page.PlotlyVersion ??= m.Groups["version"].Value;
            return "";
        });
        if (html.Contains("Plotly.newPlot", StringComparison.Ordinal) || html.Contains("class=\"wb-plotly\"", StringComparison.Ordinal)) page.HasCharts = true;
        html = StyleBlock().Replace(html, m => page.Styles.Add(m.Value) ? m.Value : "");
        foreach (Match m in RemoteResource().Matches(html))
            context.Report(new SiteProblem(SiteProblemKind.NetworkResource, context.Notebook, context.Cell, "an output loads a resource from the network, which an offline page cannot", m.Groups["url"].Value));
        return html;
    }

    [GeneratedRegex("<script\\b[^>]*\\bdata-wb-plotly=\"(?<version>[^\"]+)\"[^>]*>(?<body>[\\s\\S]*?)</script>", RegexOptions.IgnoreCase)]
    private static partial Regex PlotlyLibrary();

    [GeneratedRegex("<style\\b[^>]*>[\\s\\S]*?</style>", RegexOptions.IgnoreCase)]
    private static partial Regex StyleBlock();

    [GeneratedRegex("<(?:script|img|link|iframe|audio|video|source|embed)\\b[^>]*?\\b(?:src|href)\\s*=\\s*[\"']?(?<url>(?:https?:)?//[^\"'\\s>]+)", RegexOptions.IgnoreCase)]
    private static partial Regex RemoteResource();
}

/// <summary>What one page needs beyond its cells: plotly.js for its charts, KaTeX, the styles already emitted.</summary>
sealed class PageState(MathRenderer math)
{
    /// <summary>The formula renderer (for LaTeX outputs).</summary>
    public MathRenderer Math { get; } = math;

    /// <summary>Whether an output draws a Plotly chart.</summary>
    public bool HasCharts { get; set; }

    /// <summary>The plotly.js version this page's outputs carried inline, if any.</summary>
    public string? PlotlyVersion { get; set; }

    /// <summary>Style blocks already on the page (the kernel repeats the same one with every value).</summary>
    public HashSet<string> Styles { get; } = new(StringComparer.Ordinal);
}

/// <summary>The plotly.js copies stripped from chart outputs, by version, to be written once as site assets.</summary>
sealed class PlotlyAssets
{
    readonly SortedDictionary<string, string> _scripts = new(StringComparer.Ordinal);

    /// <summary>Remembers a library script body (the first copy of each version wins).</summary>
    public void Add(string version, string body) => _scripts.TryAdd(version, body);

    /// <summary>The versions seen.</summary>
    public IEnumerable<string> Versions => _scripts.Keys;

    /// <summary>A version's script body.</summary>
    public string Script(string version) => _scripts[version];

    /// <summary>The asset file name for a version, e.g. <c>plotly-3.0.1.js</c>.</summary>
    public static string FileName(string version) => $"plotly-{Regex.Replace(version, "[^A-Za-z0-9.-]", "_")}.js";
}
