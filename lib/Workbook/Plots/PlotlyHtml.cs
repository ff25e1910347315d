using System.Net;
using Plotly.NET;

namespace Workbook.Plots;

/// <summary>
/// Renders Plotly.NET charts as self-sufficient HTML that works offline: plotly.js comes from the copy embedded
/// in the Plotly.NET assembly, never from a CDN. The first chart of a session carries plotly.js inline (in a
/// <c>&lt;script data-wb-plotly&gt;</c> block that a static site may strip and load once instead); later charts
/// wait for it. The loader hides AMD/CommonJS globals so that plotly.js registers <c>window.Plotly</c> in every
/// front end (VS Code, JupyterLab, classic Jupyter with require.js, plain pages).
/// </summary>
public static class PlotlyHtml
{
    static int _counter;
    static bool _libraryEmitted;
    static string? _plotlyJs;

    /// <summary>The plotly.js version bundled with Plotly.NET.</summary>
    public static string PlotlyJsVersion => ResourceName["Plotly.NET.plotly-".Length..^".min.js".Length];

    static string ResourceName => typeof(GenericChart).Assembly.GetManifestResourceNames()
        .First(n => n.StartsWith("Plotly.NET.plotly-", StringComparison.Ordinal) && n.EndsWith(".min.js", StringComparison.Ordinal));

    /// <summary>The minified plotly.js source embedded in Plotly.NET (about 3.5 MB).</summary>
    public static string PlotlyJs
    {
        get
        {
            if (_plotlyJs is not null) return _plotlyJs;
            using var stream = typeof(GenericChart).Assembly.GetManifestResourceStream(ResourceName)!;
            using var reader = new StreamReader(stream);
            return _plotlyJs = reader.ReadToEnd();
        }
    }

    /// <summary>The script block that defines <c>window.Plotly</c> and runs any charts waiting for it.</summary>
    public static string LibraryScript() =>
        $"<script type=\"text/javascript\" data-wb-plotly=\"{PlotlyJsVersion}\">\n" +
        "if (!window.Plotly) { (function (define, module, exports) {\n" + PlotlyJs + "\n}).call(window, undefined, undefined, undefined); }\n" +
        "(window.__wbPlotlyQueue || []).splice(0).forEach(function (f) { f(); });\n</script>";

    /// <summary>Forgets that plotly.js was emitted, so the next chart carries it again (a new session or page).</summary>
    public static void ResetSession() => _libraryEmitted = false;

    /// <summary>HTML for one chart: a div and the script that draws it.</summary>
    /// <param name="chart">The chart.</param>
    /// <param name="includeLibrary">Carry plotly.js: null means only for the first chart of the session.</param>
    public static string ToHtml(GenericChart chart, bool? includeLibrary = null)
    {
        ArgumentNullException.ThrowIfNull(chart);
        var id = $"wb-plot-{Environment.ProcessId}-{Interlocked.Increment(ref _counter)}";
        var figure = GenericChart.toFigureJson(chart);
        bool withLib = includeLibrary ?? !_libraryEmitted;
        _libraryEmitted = true;
        var draw =
            $"<div id=\"{id}\" class=\"wb-plotly\" style=\"width:100%;min-height:360px\"></div>\n" +
            "<script type=\"text/javascript\">\n(function () {\n" +
            $"  var fig = {figure};\n" +
            $"  function draw() {{ window.Plotly.newPlot('{id}', fig.data, fig.layout || {{}}, {{responsive: true, displaylogo: false}}); }}\n" +
            "  if (window.Plotly) { draw(); } else { (window.__wbPlotlyQueue = window.__wbPlotlyQueue || []).push(draw); }\n" +
            "})();\n</script>";
        return withLib ? draw + "\n" + LibraryScript() : draw;
    }

    /// <summary>A complete standalone HTML page for a chart, e.g. to save next to a report.</summary>
    public static string ToPage(GenericChart chart, string title = "Chart") =>
        $"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{WebUtility.HtmlEncode(title)}</title></head><body>\n" +
        ToHtml(chart, includeLibrary: true) + "\n</body></html>\n";
}
