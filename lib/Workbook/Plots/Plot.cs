using Plotly.NET;
using TorchSharp;

namespace Workbook.Plots;

/// <summary>
/// C#-friendly chart builders over Plotly.NET. Plotly.NET's F# API is awkward from C# (every optional argument
/// is an FSharpOption), so these build Plotly.NET traces and layouts by their plotly.js attribute names, which a
/// reader can look up in the plotly.js reference. Each returns a <see cref="GenericChart"/>, which a notebook
/// displays as an interactive plot (see <see cref="Formatters"/>) and which Plotly.NET's own API can restyle.
/// </summary>
public static class Plot
{
    /// <summary>One or more lines over a shared x axis.</summary>
    /// <param name="x">The x values.</param>
    /// <param name="series">Name and y values of each line; every y must have x's length.</param>
    /// <param name="title">Chart title.</param>
    /// <param name="xTitle">X axis title.</param>
    /// <param name="yTitle">Y axis title.</param>
    /// <param name="logY">Logarithmic y axis.</param>
    public static GenericChart Lines(IReadOnlyList<double> x, IEnumerable<(string Name, IReadOnlyList<double> Y)> series,
        string? title = null, string? xTitle = null, string? yTitle = null, bool logY = false)
    {
        var charts = new List<GenericChart>();
        foreach (var (name, y) in series)
        {
            if (y.Count != x.Count)
                throw new ArgumentException($"Series '{name}' has {y.Count} values but x has {x.Count}.", nameof(series));
            charts.Add(Trace("scatter", ("x", x), ("y", y), ("mode", "lines"), ("name", name)));
        }
        return Decorate(GenericChart.combine(charts), title, xTitle, yTitle, logY);
    }

    /// <summary>A single line.</summary>
    public static GenericChart Line(IReadOnlyList<double> x, IReadOnlyList<double> y, string name = "y",
        string? title = null, string? xTitle = null, string? yTitle = null, bool logY = false) =>
        Lines(x, new[] { (name, y) }, title, xTitle, yTitle, logY);

    /// <summary>Lines whose x is the step index 0..n-1 (loss curves); series may differ in length.</summary>
    public static GenericChart Curves(IEnumerable<(string Name, IReadOnlyList<double> Y)> series,
        string? title = null, string? xTitle = "step", string? yTitle = null, bool logY = false)
    {
        var charts = series.Select(s => Trace("scatter", ("x", Enumerable.Range(0, s.Y.Count).ToArray()), ("y", s.Y),
            ("mode", "lines"), ("name", s.Name))).ToList();
        return Decorate(GenericChart.combine(charts), title, xTitle, yTitle, logY);
    }

    /// <summary>Points, optionally one colour group per label.</summary>
    public static GenericChart Scatter(IReadOnlyList<double> x, IReadOnlyList<double> y, IReadOnlyList<string>? groups = null,
        string? title = null, string? xTitle = null, string? yTitle = null)
    {
        if (x.Count != y.Count) throw new ArgumentException($"x has {x.Count} values but y has {y.Count}.", nameof(y));
        if (groups is null)
            return Decorate(Trace("scatter", ("x", x), ("y", y), ("mode", "markers")), title, xTitle, yTitle, false);
        if (groups.Count != x.Count) throw new ArgumentException($"groups has {groups.Count} labels but x has {x.Count}.", nameof(groups));
        var charts = groups.Select((g, i) => (g, i)).GroupBy(p => p.g).Select(g => Trace("scatter",
            ("x", g.Select(p => x[p.i]).ToArray()), ("y", g.Select(p => y[p.i]).ToArray()), ("mode", "markers"), ("name", g.Key)));
        return Decorate(GenericChart.combine(charts), title, xTitle, yTitle, false);
    }

    /// <summary>Vertical bars, one per label.</summary>
    public static GenericChart Bar(IReadOnlyList<string> labels, IReadOnlyList<double> values, string? title = null,
        string? xTitle = null, string? yTitle = null)
    {
        if (labels.Count != values.Count) throw new ArgumentException($"{labels.Count} labels but {values.Count} values.", nameof(values));
        return Decorate(Trace("bar", ("x", labels), ("y", values)), title, xTitle, yTitle, false);
    }

    /// <summary>Several bar series side by side over the same labels.</summary>
    public static GenericChart GroupedBars(IReadOnlyList<string> labels, IEnumerable<(string Name, IReadOnlyList<double> Values)> series,
        string? title = null, string? xTitle = null, string? yTitle = null) =>
        Decorate(GenericChart.combine(series.Select(s => Trace("bar", ("x", labels), ("y", s.Values), ("name", s.Name)))),
            title, xTitle, yTitle, false);

    /// <summary>A histogram of values.</summary>
    public static GenericChart Histogram(IEnumerable<double> values, int bins = 50, string? title = null, string? xTitle = null) =>
        Decorate(Trace("histogram", ("x", values.ToArray()), ("nbinsx", bins)), title, xTitle, "count", false);

    /// <summary>A heatmap of a matrix (row 0 at the top), e.g. attention weights or a confusion matrix.</summary>
    /// <param name="z">Row-major values, <c>z[row][col]</c>.</param>
    /// <param name="xLabels">Column labels (optional).</param>
    /// <param name="yLabels">Row labels (optional).</param>
    /// <param name="title">Chart title.</param>
    /// <param name="xTitle">X axis title.</param>
    /// <param name="yTitle">Y axis title.</param>
    /// <param name="colorscale">A Plotly colour scale name, e.g. "Viridis", "Blues", "RdBu".</param>
    /// <param name="showValues">Print each cell's value (for small matrices).</param>
    public static GenericChart Heatmap(IReadOnlyList<IReadOnlyList<double>> z, IReadOnlyList<string>? xLabels = null,
        IReadOnlyList<string>? yLabels = null, string? title = null, string? xTitle = null, string? yTitle = null,
        string colorscale = "Viridis", bool showValues = false)
    {
        int rows = z.Count, cols = rows == 0 ? 0 : z[0].Count;
        var xs = xLabels ?? Enumerable.Range(0, cols).Select(i => i.ToString()).ToList();
        var ys = yLabels ?? Enumerable.Range(0, rows).Select(i => i.ToString()).ToList();
        if (xs.Count != cols || ys.Count != rows)
            throw new ArgumentException($"Heatmap is {rows}×{cols} but got {ys.Count} row labels and {xs.Count} column labels.");
        var chart = Trace("heatmap", ("z", z), ("x", xs), ("y", ys), ("colorscale", colorscale));
        if (showValues)
        {
            var annotations = new List<object>();
            for (int r = 0; r < rows; r++)
                for (int c = 0; c < cols; c++)
                    annotations.Add(new { x = xs[c], y = ys[r], text = z[r][c].ToString("G3"), showarrow = false });
            chart = WithLayout(chart, ("annotations", annotations));
        }
        chart = WithLayout(chart, ("yaxis", new { autorange = "reversed", title = new { text = yTitle ?? "" } }));
        return Decorate(chart, title, xTitle, null, false);
    }

    /// <summary>A heatmap of a 2-D tensor.</summary>
    public static GenericChart Heatmap(torch.Tensor matrix, IReadOnlyList<string>? xLabels = null, IReadOnlyList<string>? yLabels = null,
        string? title = null, string? xTitle = null, string? yTitle = null, string colorscale = "Viridis", bool showValues = false)
    {
        if (matrix.dim() != 2) throw new ArgumentException($"Heatmap needs a 2-D tensor, got shape [{string.Join(", ", matrix.shape)}].", nameof(matrix));
        return Heatmap(ToRows(matrix), xLabels, yLabels, title, xTitle, yTitle, colorscale, showValues);
    }

    /// <summary>Converts a 2-D tensor to rows of doubles.</summary>
    public static IReadOnlyList<IReadOnlyList<double>> ToRows(torch.Tensor matrix)
    {
        using var m = matrix.detach().cpu().to_type(torch.ScalarType.Float64);
        var data = m.data<double>().ToArray();
        int rows = (int)m.shape[0], cols = (int)m.shape[1];
        return Enumerable.Range(0, rows).Select(r => (IReadOnlyList<double>)data.AsSpan(r * cols, cols).ToArray()).ToList();
    }

    /// <summary>Places several charts in a grid (row-major), each with its own axes.</summary>
    public static GenericChart Grid(IReadOnlyList<GenericChart> charts, int rows, int columns, string? title = null)
    {
        if (charts.Count > rows * columns)
            throw new ArgumentException($"{charts.Count} charts do not fit a {rows}×{columns} grid.", nameof(charts));
        var retargeted = charts.Select((c, i) => GenericChart.mapTrace(Microsoft.FSharp.Core.FuncConvert.FromFunc<Trace, Trace>(t =>
        {
            t.SetProperty("xaxis", i == 0 ? "x" : $"x{i + 1}");
            t.SetProperty("yaxis", i == 0 ? "y" : $"y{i + 1}");
            return t;
        }), c));
        var chart = WithLayout(GenericChart.combine(retargeted), ("grid", new { rows, columns, pattern = "independent" }));
        return title is null ? chart : WithLayout(chart, ("title", new { text = title }));
    }

    /// <summary>A Plotly.NET trace of the given plotly.js type with attributes set by name.</summary>
    public static GenericChart Trace(string type, params (string Name, object Value)[] attributes)
    {
        var trace = new Trace2D(type);
        foreach (var (name, value) in attributes) trace.SetProperty(name, value);
        return GenericChart.ofTraceObject(true, trace);
    }

    /// <summary>Merges layout attributes (plotly.js names) into a chart's layout.</summary>
    public static GenericChart WithLayout(GenericChart chart, params (string Name, object Value)[] attributes)
    {
        var layout = new Layout();
        foreach (var (name, value) in attributes) layout.SetProperty(name, value);
        return GenericChart.addLayout(layout, chart);
    }

    static GenericChart Decorate(GenericChart chart, string? title, string? xTitle, string? yTitle, bool logY)
    {
        var attrs = new List<(string, object)>();
        if (title is not null) attrs.Add(("title", new { text = title }));
        if (xTitle is not null) attrs.Add(("xaxis", new { title = new { text = xTitle } }));
        if (yTitle is not null || logY) attrs.Add(("yaxis", new { title = new { text = yTitle ?? "" }, type = logY ? "log" : "linear" }));
        return attrs.Count == 0 ? chart : WithLayout(chart, attrs.ToArray());
    }
}
