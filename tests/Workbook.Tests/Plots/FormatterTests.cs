using Microsoft.Data.Analysis;
using Microsoft.DotNet.Interactive.Formatting;
using TorchSharp;
using Workbook.Plots;

namespace Workbook.Tests.Plots;

public class FormatterTests
{
    public FormatterTests() => Formatters.Register();

    [Fact]
    public void ChartsCarryPlotlyJsOnceAndNeverACdn()
    {
        PlotlyHtml.ResetSession();
        var chart = Plot.Line(new double[] { 0, 1 }, new double[] { 2, 3 }, title: "t");
        var first = chart.ToDisplayString("text/html");
        var second = chart.ToDisplayString("text/html");
        Assert.Contains("data-wb-plotly=\"" + PlotlyHtml.PlotlyJsVersion + "\"", first);
        Assert.DoesNotContain("data-wb-plotly", second);
        Assert.True(first.Length > 1_000_000, "plotly.js is embedded in the first chart");
        Assert.DoesNotMatch("<script[^>]*src=", first);
        Assert.Contains("Plotly.newPlot", second);
    }

    [Fact]
    public void DataFrameRendersAsTableWithShapeAndRowLimit()
    {
        var df = new DataFrame(new Int32DataFrameColumn("i", Enumerable.Range(0, 30)), new DoubleDataFrameColumn("x", Enumerable.Range(0, 30).Select(i => i / 3.0)));
        var html = df.ToDisplayString("text/html");
        Assert.Contains("30 rows × 2 columns, showing 20", html);
        Assert.Equal(21, html.Split("<tr>").Length - 1); // header + 20 rows
        Assert.Contains("0.333333", html);
    }

    [Fact]
    public void TensorsDisplayAsOneLine()
    {
        using var t = torch.arange(100, dtype: torch.int64).reshape(10, 10);
        Assert.Equal("tensor [10, 10] Int64 on cpu: [0, 1, 2, 3, 4, 5, … (100 values)]", t.ToDisplayString("text/plain"));
        using var s = torch.tensor(2.5);
        Assert.Equal("tensor [] Float64 on cpu: [2.5]", Formatters.TensorSummary(s));
    }

    [Fact]
    public void HeatmapRejectsMismatchedLabels()
    {
        var z = new[] { new double[] { 1, 2 }, new double[] { 3, 4 } };
        var e = Assert.Throws<ArgumentException>(() => Plot.Heatmap(z, xLabels: new[] { "a" }));
        Assert.Contains("2×2", e.Message);
    }
}
