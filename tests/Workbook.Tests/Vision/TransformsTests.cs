using TorchSharp;
using Workbook.Vision;
using static TorchSharp.torch;

namespace Workbook.Tests.Vision;

public class TransformsTests
{
    [Fact]
    public void BilinearResizeOfA2x2ImageMatchesHandValues()
    {
        // align_corners=False: output pixel x samples source coordinate (x + 0.5)·(2/4) − 0.5, clamped at 0.
        // Columns sample -0.25→0, 0.25, 0.75, 1.25→1; so row 0 is [0, 25, 75, 100].
        var img = torch.tensor(new float[] { 0, 100, 200, 255 }, new long[] { 1, 2, 2 });
        var y = new Resize(4, 4).Apply(img);
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
        var u = new Resize(4, 4).Apply(img.to_type(ScalarType.Byte));
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
        var y = new Resize(1, 2).Apply(row).data<float>().ToArray();
        Assert.Equal(0f, y[0]);
        Assert.True(y[1] > 5f, $"antialiased value {y[1]}");
        var flat = new Resize(3, 5).Apply(torch.full(1, 12, 20, 0.25f));
        Assert.True(flat.sub(0.25f).abs().max().item<float>() < 1e-6f);
    }

    [Fact]
    public void ResizeShorterSideKeepsAspectRatio()
    {
        var y = new Resize(16).Apply(torch.zeros(3, 20, 40));
        Assert.Equal(new long[] { 3, 16, 32 }, y.shape);
        Assert.Equal((21, 14), new Resize(14).OutputSize(30, 20));   // 14·30/20 = 21
    }

    [Fact]
    public void CenterCropTakesTheMiddle()
    {
        var img = torch.arange(25, dtype: ScalarType.Float32).view(1, 5, 5);
        var y = new CenterCrop(3).Apply(img);
        Assert.Equal(new float[] { 6, 7, 8, 11, 12, 13, 16, 17, 18 }, y.data<float>().ToArray());
        var e = Assert.Throws<ArgumentException>(() => new CenterCrop(6).Apply(img));
        Assert.Contains("6×6 crop does not fit an image of 5×5", e.Message);
    }

    [Fact]
    public void FlipAndRandomCropAreSeededAndCorrect()
    {
        var img = torch.arange(12, dtype: ScalarType.Float32).view(1, 3, 4);
        Assert.Equal(new float[] { 3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8 }, new RandomHorizontalFlip(p: 1).Apply(img).data<float>().ToArray());
        Assert.Equal(img.data<float>().ToArray(), new RandomHorizontalFlip(p: 0).Apply(img).data<float>().ToArray());

        // A padded random crop is some window of the zero-padded image, and the same seed gives the same windows.
        var padded = nn.functional.pad(img, new long[] { 1, 1, 1, 1 });
        var a = new RandomCrop(3, padding: 1, seed: 7); var b = new RandomCrop(3, padding: 1, seed: 7);
        for (int t = 0; t < 10; t++)
        {
            var ya = a.Apply(img); var yb = b.Apply(img);
            Assert.True(ya.allclose(yb, 0, 0));
            bool found = false;
            for (int top = 0; top <= 2 && !found; top++)
                for (int left = 0; left <= 3 && !found; left++)
                    found = padded.narrow(1, top, 3).narrow(2, left, 3).allclose(ya, 0, 0);
            Assert.True(found);
        }
    }

    [Fact]
    public void ToTensorAndNormalizeGiveKnownValues()
    {
        var img = torch.tensor(new byte[] { 0, 51, 255, 0, 102, 204 }, new long[] { 2, 1, 3 });
        var t = new Compose(new ToTensor(), new Normalize(new[] { 0.5f, 0.2f }, new[] { 0.5f, 0.4f })).Apply(img);
        Assert.Equal(ScalarType.Float32, t.dtype);
        // channel 0: (v/255 − 0.5)/0.5; channel 1: (v/255 − 0.2)/0.4
        var expected = new[] { -1f, (0.2f - 0.5f) / 0.5f, 1f, -0.5f, (0.4f - 0.2f) / 0.4f, (0.8f - 0.2f) / 0.4f };
        var got = t.data<float>().ToArray();
        for (int i = 0; i < 6; i++) Assert.Equal(expected[i], got[i], 5);
        var e = Assert.Throws<ArgumentException>(() => new Normalize(new[] { 0.5f }, new[] { 0.5f }).Apply(img));
        Assert.Contains("put ToTensor before it", e.Message);
        Assert.Throws<ArgumentException>(() => new Normalize(new[] { 0.1f, 0.2f, 0.3f }, new[] { 1f, 1f, 1f }).Apply(t));
    }
}
