using TorchSharp;
using Workbook.Vision;
using static TorchSharp.torch;
using static TorchSharp.torchvision;
using CenterCrop = Workbook.Vision.CenterCrop;
using Normalize = Workbook.Vision.Normalize;

namespace Workbook.Tests.Vision;

/// <summary>Image pipelines: TorchVision's transforms as the library uses them, and the three of ours.</summary>
public class TransformsTests
{
    /// <summary>PyTorch's Resize: bilinear with antialiasing (TorchVision's default is nearest; see TorchVisionQuirkTests).</summary>
    static ITransform Resize(int h, int w) => transforms.Resize(h, w, InterpolationMode.Bilinear, antialias: true);

    [Fact]
    public void BilinearResizeOfA2x2ImageMatchesHandValues()
    {
        // align_corners=False: output pixel x samples source coordinate (x + 0.5)·(2/4) − 0.5, clamped at 0.
        // Columns sample -0.25→0, 0.25, 0.75, 1.25→1; so row 0 is [0, 25, 75, 100].
        var img = torch.tensor(new float[] { 0, 100, 200, 255 }, new long[] { 1, 2, 2 });
        var y = Resize(4, 4).call(img);
        var expected = new float[]
        {
            0, 25, 75, 100,
            50, 72.1875f, 116.5625f, 138.75f,       // 0.75·row0 + 0.25·row1
            150, 166.5625f, 199.6875f, 216.25f,     // 0.25·row0 + 0.75·row1
            200, 213.75f, 241.25f, 255,
        };
        Assert.Equal(new long[] { 1, 4, 4 }, y.shape);
        var got = y.data<float>().ToArray();
        for (int i = 0; i < 16; i++) Assert.Equal(expected[i], got[i], 4);
        // uint8 stays uint8, rounded: 72.1875 → 72, 116.5625 → 117.
        var u = Resize(4, 4).call(img.to_type(ScalarType.Byte));
        Assert.Equal(ScalarType.Byte, u.dtype);
        Assert.Equal(new byte[] { 50, 72, 117, 139 }, u.data<byte>().ToArray().Skip(4).Take(4).ToArray());
    }

    [Fact]
    public void ShrinkingIsAntialiasedSoNoPixelIsSkipped()
    {
        // Plain bilinear sampling at 1/4 scale reads source columns 1.5 and 5.5 only, missing a bright pixel at column 7;
        // the antialiased filter averages over each 4-pixel span, so it shows up and a flat image stays flat.
        var row = torch.tensor(new float[] { 0, 0, 0, 0, 0, 0, 0, 80 }, new long[] { 1, 1, 8 });
        var plain = nn.functional.interpolate(row.unsqueeze(0), new long[] { 1, 2 }, mode: InterpolationMode.Bilinear, align_corners: false);
        Assert.Equal(0f, plain.max().item<float>());
        var y = Resize(1, 2).call(row).data<float>().ToArray();
        Assert.Equal(0f, y[0]);
        Assert.True(y[1] > 5f, $"antialiased value {y[1]}");
        var flat = Resize(3, 5).call(torch.full(1, 12, 20, 0.25f));
        Assert.True(flat.sub(0.25f).abs().max().item<float>() < 1e-6f);
    }

    [Fact]
    public void ResizeShorterSideKeepsAspectRatio()
    {
        Assert.Equal(new long[] { 3, 16, 32 }, transforms.Resize(16, InterpolationMode.Bilinear, antialias: true).call(torch.zeros(3, 20, 40)).shape);
        Assert.Equal(new long[] { 1, 21, 14 }, transforms.Resize(14, InterpolationMode.Bilinear, antialias: true).call(torch.zeros(1, 30, 20)).shape); // 14·30/20
    }

    [Fact]
    public void CenterCropTakesTheMiddleWithTorchvisionsRounding()
    {
        var img = torch.arange(25, dtype: ScalarType.Float32).view(1, 5, 5);
        Assert.Equal(new float[] { 6, 7, 8, 11, 12, 13, 16, 17, 18 }, new CenterCrop(3).call(img).data<float>().ToArray());
        // (5 − 2) / 2 = 1.5: torchvision's int(round(1.5)) = 2 (half to even), so rows and columns 2..3.
        Assert.Equal(new float[] { 12, 13, 17, 18 }, new CenterCrop(2).call(img).data<float>().ToArray());
        // (6 − 2) / 2 = 2 and (7 − 4) / 2 = 1.5 → 2 on a 6 × 7 image; a batch is cropped the same way.
        var wide = torch.arange(42, dtype: ScalarType.Float32).view(1, 1, 6, 7);
        Assert.Equal(new float[] { 16, 17, 18, 19, 23, 24, 25, 26 }, new CenterCrop(2, 4).call(wide).data<float>().ToArray());
        var e = Assert.Throws<ArgumentException>(() => new CenterCrop(6).call(img));
        Assert.Contains("6×6 crop does not fit an image of 5×5", e.Message);
    }

    [Fact]
    public void FlipsAndRandomCropAreSeededAndCorrect()
    {
        var img = torch.arange(12, dtype: ScalarType.Float32).view(1, 3, 4);
        Assert.Equal(new float[] { 3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8 }, transforms.RandomHorizontalFlip(p: 1).call(img).data<float>().ToArray());
        Assert.Equal(img.data<float>().ToArray(), transforms.RandomHorizontalFlip(p: 0).call(img).data<float>().ToArray());
        // TorchVision's random flips draw from torch's RNG: torch.manual_seed makes them reproducible.
        float[] Flips() => Enumerable.Range(0, 16).Select(_ => transforms.RandomHorizontalFlip(0.5).call(img)[0, 0, 0].item<float>()).ToArray();
        torch.manual_seed(1); var a1 = Flips();
        torch.manual_seed(1); var a2 = Flips();
        Assert.Equal(a1, a2);
        Assert.Contains(0f, a1); Assert.Contains(3f, a1);

        // A padded random crop is some window of the zero-padded image, and the same seed gives the same windows.
        var padded = nn.functional.pad(img, new long[] { 1, 1, 1, 1 });
        var a = new RandomCrop(3, padding: 1, seed: 7); var b = new RandomCrop(3, padding: 1, seed: 7);
        for (int t = 0; t < 10; t++)
        {
            var ya = a.call(img); var yb = b.call(img);
            Assert.True(ya.allclose(yb, 0, 0));
            bool found = false;
            for (int top = 0; top <= 2 && !found; top++)
                for (int left = 0; left <= 3 && !found; left++)
                    found = padded.narrow(1, top, 3).narrow(2, left, 3).allclose(ya, 0, 0);
            Assert.True(found);
        }
    }

    [Fact]
    public void ConvertImageDtypeAndNormalizeGiveKnownValues()
    {
        var img = torch.tensor(new byte[] { 0, 51, 255, 0, 102, 204 }, new long[] { 2, 1, 3 });
        var t = transforms.Compose(transforms.ConvertImageDtype(ScalarType.Float32), new Normalize(new[] { 0.5f, 0.2f }, new[] { 0.5f, 0.4f })).call(img);
        Assert.Equal(ScalarType.Float32, t.dtype);
        // channel 0: (v/255 − 0.5)/0.5; channel 1: (v/255 − 0.2)/0.4
        var expected = new[] { -1f, (0.2f - 0.5f) / 0.5f, 1f, -0.5f, (0.4f - 0.2f) / 0.4f, (0.8f - 0.2f) / 0.4f };
        var got = t.data<float>().ToArray();
        for (int i = 0; i < 6; i++) Assert.Equal(expected[i], got[i], 5);
        // A batch [N, C, H, W] is normalised per channel the same way.
        Assert.True(new Normalize(new[] { 0.5f, 0.2f }, new[] { 0.5f, 0.4f }).call(img.to_type(ScalarType.Float32).div(255).unsqueeze(0)).squeeze(0).allclose(t, 1e-6, 1e-6));
        var e = Assert.Throws<ArgumentException>(() => new Normalize(new[] { 0.5f }, new[] { 0.5f }).call(img));
        Assert.Contains("ConvertImageDtype", e.Message);
        Assert.Throws<ArgumentException>(() => new Normalize(new[] { 0.1f, 0.2f, 0.3f }, new[] { 1f, 1f, 1f }).call(t));
    }
}
