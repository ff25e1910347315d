using TorchSharp;
using Workbook.Vision;
using static TorchSharp.torch;

namespace Workbook.Tests.Vision;

public class ImageFolderTests
{
    static string TempDir() { var d = Path.Combine(Path.GetTempPath(), "wb-if-" + Guid.NewGuid().ToString("N")); Directory.CreateDirectory(d); return d; }

    // A 2×3 RGB image with known pixels: R = 10·i, G = 100 + i, B = 250 − 20·i for pixel i in row-major order.
    static Tensor Known(int shift) =>
        torch.tensor(Enumerable.Range(0, 6).Select(i => (byte)(10 * i + shift))
            .Concat(Enumerable.Range(0, 6).Select(i => (byte)(100 + i)))
            .Concat(Enumerable.Range(0, 6).Select(i => (byte)(250 - 20 * i))).ToArray(), new long[] { 3, 2, 3 });

    [Fact]
    public void ClassesAreSortedSubfoldersAndPixelsRoundTripExactly()
    {
        var root = TempDir();
        Images.SavePng(Known(0), Path.Combine(root, "b_dog", "x.png"));
        Images.SavePng(Known(1), Path.Combine(root, "a_cat", "2.png"));
        Images.SavePng(Known(2), Path.Combine(root, "a_cat", "1.png"));
        File.WriteAllText(Path.Combine(root, "a_cat", "notes.txt"), "not an image, ignored");

        var ds = new ImageFolder(root);
        Assert.Equal(new[] { "a_cat", "b_dog" }, ds.Classes);
        Assert.Equal(1, ds.ClassToIndex["b_dog"]);
        Assert.Equal(3, ds.Count);
        Assert.Equal(new[] { 0, 0, 1 }, ds.Samples.Select(s => s.Label));
        Assert.EndsWith("1.png", ds.Samples[0].Path);
        Assert.Equal(new[] { 2, 1 }, ds.CountsPerClass());

        var (img, label) = ds.Get(2);
        Assert.Equal(1, label);
        Assert.Equal(ScalarType.Byte, img.dtype);
        Assert.Equal(Known(0).data<byte>().ToArray(), img.data<byte>().ToArray());   // PNG is lossless, CHW order kept
    }

    [Fact]
    public void GrayscaleAndTransformPipelineGiveKnownValues()
    {
        var root = TempDir();
        var rgb = torch.tensor(new byte[] { 200, 0, 100, 0, 50, 0 }, new long[] { 3, 1, 2 });   // pixels (200,100,50), (0,0,0)
        Images.SavePng(rgb, Path.Combine(root, "only", "p.png"));
        var gray = new ImageFolder(root, channels: 1).Get(0).Image;
        // PIL "L": (200·299 + 100·587 + 50·114)/1000 = 124.2 → 124.
        Assert.Equal(new byte[] { 124, 0 }, gray.data<byte>().ToArray());

        var tf = torchvision.transforms.Compose(torchvision.transforms.Resize(2, 4, InterpolationMode.Bilinear, antialias: true),
            torchvision.transforms.ConvertImageDtype(ScalarType.Float32), new Normalize(new[] { 0.5f }, new[] { 0.25f }));
        var (x, _) = new ImageFolder(root, tf, channels: 1).Get(0);
        Assert.Equal(new long[] { 1, 2, 4 }, x.shape);
        // Width 2 → 4 samples source columns 0, 0.25, 0.75, 1: 124, 93, 31, 0 (uint8, rounded), then (v/255 − 0.5)/0.25.
        var expected = new[] { 124, 93, 31, 0 }.Select(v => (v / 255f - 0.5f) / 0.25f).ToArray();
        var got = x.data<float>().ToArray();
        for (int i = 0; i < 4; i++) { Assert.Equal(expected[i], got[i], 5); Assert.Equal(expected[i], got[4 + i], 5); }

        var (inputs, targets) = new ImageFolder(root, tf, channels: 1).Load();
        Assert.Equal(new long[] { 1, 1, 2, 4 }, inputs.shape);
        Assert.Equal(new long[] { 0 }, targets.data<long>().ToArray());
    }

    [Fact]
    public void CorruptFileIsReportedWithItsPath()
    {
        var root = TempDir();
        Images.SavePng(Known(0), Path.Combine(root, "ok", "good.png"));
        var bad = Path.Combine(root, "ok", "zz_broken.png");
        File.WriteAllBytes(bad, new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G', 1, 2, 3, 4, 5 });
        var ds = new ImageFolder(root);
        Assert.Equal(2, ds.Count);
        var e = Assert.Throws<InvalidDataException>(() => ds.Get(1));
        Assert.Contains(bad, e.Message);
        Assert.Throws<InvalidDataException>(() => ds.Load());
    }

    [Fact]
    public void MissingEmptyOrClasslessFoldersGetClearErrors()
    {
        var root = TempDir();
        var noClasses = Assert.Throws<InvalidDataException>(() => new ImageFolder(root));
        Assert.Contains("no class subfolders", noClasses.Message);
        Assert.Contains(root, noClasses.Message);

        Directory.CreateDirectory(Path.Combine(root, "empty_class"));
        File.WriteAllText(Path.Combine(root, "empty_class", "readme.txt"), "no images here");
        var noImages = Assert.Throws<InvalidDataException>(() => new ImageFolder(root));
        Assert.Contains(Path.Combine(root, "empty_class"), noImages.Message);
        Assert.Contains("no image files", noImages.Message);

        var missing = Path.Combine(root, "does-not-exist");
        Assert.Contains(missing, Assert.Throws<DirectoryNotFoundException>(() => new ImageFolder(missing)).Message);
    }

    [Fact]
    public void MismatchedShapesNameTheImage()
    {
        var root = TempDir();
        Images.SavePng(torch.zeros(3, 4, 4, dtype: ScalarType.Byte), Path.Combine(root, "c", "a.png"));
        Images.SavePng(torch.zeros(3, 5, 4, dtype: ScalarType.Byte), Path.Combine(root, "c", "b.png"));
        var e = Assert.Throws<InvalidDataException>(() => new ImageFolder(root).Load());
        Assert.Contains("b.png", e.Message);
        Assert.Equal(new long[] { 2, 3, 3, 3 }, new ImageFolder(root, new CenterCrop(3)).Load().Inputs.shape);
    }
}
