using Plotly.NET;
using TorchSharp;
using Workbook.Vision;
using static TorchSharp.torch;

namespace Workbook.Tests.Vision;

public class VisionPlotTests
{
    [Fact]
    public void ImageGridPlacesEveryPixelOfEveryImageInOneMosaic()
    {
        // Three 2×3 gray images with distinct values; the mosaic must contain each pixel exactly once, plus empty gaps.
        var images = torch.arange(18, dtype: ScalarType.Float32).view(3, 1, 2, 3) + 1;
        var json = GenericChart.toFigureJson(VisionPlot.ImageGrid(images, new[] { "a", "b", "c" }, columns: 2));
        foreach (var caption in new[] { "\"a\"", "\"b\"", "\"c\"" }) Assert.Contains(caption, json);
        var z = System.Text.Json.JsonDocument.Parse(json).RootElement.GetProperty("data")[0].GetProperty("z");
        var values = z.EnumerateArray().SelectMany(r => r.EnumerateArray()).Where(v => v.ValueKind == System.Text.Json.JsonValueKind.Number)
            .Select(v => v.GetDouble()).OrderBy(v => v).ToArray();
        Assert.Equal(Enumerable.Range(1, 18).Select(v => (double)v), values);
    }

    [Fact]
    public void PlotHelpersRejectWrongShapesWithTheShape()
    {
        var e = Assert.Throws<ArgumentException>(() => VisionPlot.ImageGrid(torch.zeros(2, 4, 5, 5)));
        Assert.Contains("[2, 4, 5, 5]", e.Message);
        Assert.Throws<ArgumentException>(() => VisionPlot.ImageGrid(torch.zeros(2, 1, 5, 5), new[] { "only one" }));
        Assert.Contains("[8, 3, 3]", Assert.Throws<ArgumentException>(() => VisionPlot.Filters(torch.zeros(8, 3, 3))).Message);
        // A well-formed confusion matrix and filter grid build.
        Assert.NotNull(VisionPlot.ConfusionMatrix(torch.eye(3, dtype: ScalarType.Int64), new[] { "x", "y", "z" }));
        Assert.NotNull(VisionPlot.Filters(torch.randn(4, 3, 3, 3)));
    }
}
