using Plotly.NET;
using TorchSharp;
using Workbook.Plots;
using static TorchSharp.torch;

namespace Workbook.Vision;

/// <summary>
/// Image plots on top of <see cref="Plot"/>: a grid of images with captions (labels, predictions), a confusion-matrix
/// heatmap, learned convolution filters and feature maps. Each image grid is one mosaic trace, so a 64-image grid
/// stays light in the notebook.
/// </summary>
public static class VisionPlot
{
    /// <summary>
    /// Images in a grid with an optional caption above each. Gray images (<c>C = 1</c>) use a colour scale
    /// (values as they are, one scale for the whole grid); RGB images (<c>C = 3</c>) are drawn as colours after
    /// scaling the grid's value range to 0..255.
    /// </summary>
    /// <param name="images"><c>[N, C, H, W]</c> or <c>[N, H, W]</c>.</param>
    /// <param name="captions">One caption per image (optional).</param>
    /// <param name="columns">Images per row.</param>
    /// <param name="title">Chart title.</param>
    /// <param name="captionColors">One CSS colour per caption (e.g. red for mistakes), optional.</param>
    /// <param name="colorscale">Plotly colour scale for gray images.</param>
    /// <param name="symmetric">Centre the colour scale on 0 (for filters with signed weights).</param>
    /// <param name="pixelSize">Screen pixels per image pixel.</param>
    public static GenericChart ImageGrid(Tensor images, IReadOnlyList<string>? captions = null, int columns = 8, string? title = null,
        IReadOnlyList<string>? captionColors = null, string colorscale = "Greys", bool symmetric = false, double? pixelSize = null)
    {
        using var scope = torch.NewDisposeScope();
        var x = images.detach().cpu().to_type(ScalarType.Float64);
        if (x.dim() == 3) x = x.unsqueeze(1);
        if (x.dim() != 4 || (x.shape[1] != 1 && x.shape[1] != 3))
            throw new ArgumentException($"ImageGrid needs [N, C, H, W] with C = 1 or 3 (or [N, H, W]), got shape [{string.Join(", ", images.shape)}].", nameof(images));
        int n = (int)x.shape[0], c = (int)x.shape[1], h = (int)x.shape[2], w = (int)x.shape[3];
        if (n == 0) throw new ArgumentException("ImageGrid needs at least one image.", nameof(images));
        if (captions is not null && captions.Count != n) throw new ArgumentException($"{captions.Count} captions for {n} images.", nameof(captions));
        if (captionColors is not null && captionColors.Count != n) throw new ArgumentException($"{captionColors.Count} caption colours for {n} images.", nameof(captionColors));
        if (columns <= 0) throw new ArgumentException($"columns must be positive, got {columns}.", nameof(columns));
        columns = Math.Min(columns, n);
        int rows = (n + columns - 1) / columns;
        int gapX = Math.Max(1, w / 14), gapY = captions is null ? gapX : Math.Max(3, h / 3);   // room for a caption above each tile
        int totalH = rows * (h + gapY), totalW = columns * (w + gapX) - gapX;
        var data = x.contiguous().data<double>().ToArray();
        double lo = data.Min(), hi = data.Max();
        if (symmetric) { hi = Math.Max(Math.Abs(lo), Math.Abs(hi)); lo = -hi; }

        GenericChart chart;
        if (c == 1)
        {
            // About 1/1000 of the value range is all a colour scale can show; rounding keeps the notebook small.
            int digits = Math.Clamp(3 - (int)Math.Floor(Math.Log10(Math.Max(hi - lo, 1e-12))), 0, 15);
            for (int i = 0; i < data.Length; i++) data[i] = Math.Round(data[i], digits);
            var z = new double?[totalH][];
            for (int r = 0; r < totalH; r++) z[r] = new double?[totalW];
            for (int i = 0; i < n; i++)
            {
                int top = (i / columns) * (h + gapY) + gapY, left = (i % columns) * (w + gapX);
                for (int r = 0; r < h; r++)
                    for (int q = 0; q < w; q++) z[top + r][left + q] = data[(long)i * h * w + r * w + q];
            }
            // plotly's "Greys" runs black (low) to white (high), so images look as they would on screen.
            chart = Plot.Trace("heatmap", ("z", z), ("colorscale", colorscale), ("zmin", lo), ("zmax", hi), ("showscale", symmetric),
                ("hoverongaps", false));
        }
        else
        {
            // plotly's image trace: z[row][col] = [r, g, b] in 0..255; gaps are white.
            double span = hi - lo > 0 ? hi - lo : 1;
            var z = new int[totalH][][];
            for (int r = 0; r < totalH; r++) { z[r] = new int[totalW][]; for (int q = 0; q < totalW; q++) z[r][q] = new[] { 255, 255, 255 }; }
            for (int i = 0; i < n; i++)
            {
                int top = (i / columns) * (h + gapY) + gapY, left = (i % columns) * (w + gapX);
                for (int r = 0; r < h; r++)
                    for (int q = 0; q < w; q++)
                        z[top + r][left + q] = Enumerable.Range(0, 3)
                            .Select(ch => (int)Math.Round(255 * (data[((long)i * 3 + ch) * h * w + r * w + q] - lo) / span)).ToArray();
            }
            chart = Plot.Trace("image", ("z", z));
        }

        var annotations = new List<object>();
        for (int i = 0; captions is not null && i < n; i++)
            annotations.Add(new
            {
                x = (i % columns) * (w + gapX) + (w - 1) / 2.0, y = (i / columns) * (h + gapY) + gapY - 0.6,
                text = captions[i], showarrow = false, yanchor = "bottom", xref = "x", yref = "y",
                font = new { size = 10, color = captionColors?[i] ?? "black" },
            });
        double px = pixelSize ?? Math.Max(1.5, 72.0 / Math.Max(h, w));
        return Plot.WithLayout(chart,
            ("title", new { text = title ?? "" }),
            ("annotations", annotations),
            ("xaxis", new { visible = false, constrain = "domain" }),
            ("yaxis", new { visible = false, autorange = "reversed", scaleanchor = "x", constrain = "domain" }),
            ("width", (int)Math.Max(320, totalW * px + 60)),
            ("height", (int)(totalH * px + (title is null ? 40 : 80))),
            ("margin", new { l = 20, r = 20, t = title is null ? 20 : 60, b = 20 }));
    }

    /// <summary>Images captioned "true / predicted" class names, mistakes in red.</summary>
    /// <param name="images"><c>[N, C, H, W]</c>.</param>
    /// <param name="labels">True class ids.</param>
    /// <param name="predictions">Predicted class ids (optional: then only labels are shown).</param>
    /// <param name="classNames">Class names.</param>
    /// <param name="columns">Images per row.</param>
    /// <param name="title">Chart title.</param>
    public static GenericChart Predictions(Tensor images, IReadOnlyList<int> labels, IReadOnlyList<int>? predictions,
        IReadOnlyList<string> classNames, int columns = 8, string? title = null)
    {
        if (labels.Count != images.shape[0]) throw new ArgumentException($"{labels.Count} labels for {images.shape[0]} images.", nameof(labels));
        if (predictions is not null && predictions.Count != labels.Count)
            throw new ArgumentException($"{predictions.Count} predictions for {labels.Count} labels.", nameof(predictions));
        var captions = labels.Select((l, i) => predictions is null ? classNames[l]
            : predictions[i] == l ? classNames[l] : $"{classNames[l]}→{classNames[predictions[i]]}").ToList();
        var colors = labels.Select((l, i) => predictions is null || predictions[i] == l ? "black" : "crimson").ToList();
        return ImageGrid(images, captions, columns, title, colors);
    }

    /// <summary>A confusion matrix as an annotated heatmap: rows = true class, columns = predicted class.</summary>
    /// <param name="confusion">A <see cref="Evaluation.ConfusionMatrix"/> result <c>[K, K]</c>.</param>
    /// <param name="classNames">K class names.</param>
    /// <param name="title">Chart title.</param>
    /// <param name="normalize">Show each row as fractions of its class (recall on the diagonal) instead of counts.</param>
    public static GenericChart ConfusionMatrix(Tensor confusion, IReadOnlyList<string> classNames, string title = "Confusion matrix",
        bool normalize = false)
    {
        using var scope = torch.NewDisposeScope();
        var m = confusion.to_type(ScalarType.Float64);
        if (normalize) m = m / m.sum(1, keepdim: true).clamp_min(1);
        var chart = Plot.Heatmap(normalize ? m.mul(1000).round().div(1000) : m, classNames, classNames, title, "predicted", "true", "Blues", showValues: true);
        // plotly's "Blues" is dark at the low end; use white → blue with a steep start so that the small
        // off-diagonal counts (the interesting ones) are visible next to the large diagonal, and black labels stay readable.
        var scale = new object[] { new object[] { 0.0, "#ffffff" }, new object[] { 0.05, "#deebf7" }, new object[] { 0.25, "#9ecae1" }, new object[] { 1.0, "#4292c6" } };
        chart = GenericChart.mapTrace(Microsoft.FSharp.Core.FuncConvert.FromFunc<Trace, Trace>(t => { t.SetProperty("colorscale", scale); return t; }), chart);
        return Plot.WithLayout(chart, ("width", 720), ("height", 640));
    }

    /// <summary>
    /// Learned filters of a convolution, one tile per output channel (input channels averaged for C_in &gt; 1,
    /// or the first three shown as RGB when <paramref name="asRgb"/>), on a colour scale centred on 0: red and blue
    /// are weights of opposite sign, so an edge detector shows as a red band beside a blue one.
    /// </summary>
    /// <param name="weight">Convolution weight <c>[C_out, C_in, kH, kW]</c>.</param>
    /// <param name="columns">Filters per row.</param>
    /// <param name="title">Chart title.</param>
    /// <param name="asRgb">Show 3-input-channel filters as colour images.</param>
    public static GenericChart Filters(Tensor weight, int columns = 8, string title = "First-layer filters", bool asRgb = false)
    {
        if (weight.dim() != 4) throw new ArgumentException($"Filters needs a conv weight [C_out, C_in, kH, kW], got shape [{string.Join(", ", weight.shape)}].", nameof(weight));
        using var scope = torch.NewDisposeScope();
        var w = weight.detach().cpu();
        var tiles = asRgb && w.shape[1] == 3 ? w : w.mean(new long[] { 1 }, keepdim: true);
        var captions = Enumerable.Range(0, (int)w.shape[0]).Select(i => $"#{i}").ToList();
        return ImageGrid(tiles, captions, columns, title, colorscale: "RdBu", symmetric: true, pixelSize: 12);
    }

    /// <summary>Feature maps (activations) of one image, one tile per channel, e.g. the first conv layer's output.</summary>
    /// <param name="maps"><c>[C, H, W]</c> (or <c>[1, C, H, W]</c>).</param>
    /// <param name="columns">Maps per row.</param>
    /// <param name="title">Chart title.</param>
    public static GenericChart FeatureMaps(Tensor maps, int columns = 8, string title = "Feature maps")
    {
        using var scope = torch.NewDisposeScope();
        var m = maps.dim() == 4 && maps.shape[0] == 1 ? maps[0] : maps;
        if (m.dim() != 3) throw new ArgumentException($"FeatureMaps needs [C, H, W], got shape [{string.Join(", ", maps.shape)}].", nameof(maps));
        var captions = Enumerable.Range(0, (int)m.shape[0]).Select(i => $"ch {i}").ToList();
        return ImageGrid(m, captions, columns, title, colorscale: "Viridis");
    }
}
