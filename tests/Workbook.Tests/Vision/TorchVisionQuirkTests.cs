using SkiaSharp;
using TorchSharp;
using Workbook.Vision;
using static TorchSharp.torch;
using static TorchSharp.torchvision;

namespace Workbook.Tests.Vision;

/// <summary>
/// Where TorchSharp's TorchVision 0.107 differs from PyTorch's torchvision, measured here. The library uses TorchVision
/// where it is right and keeps its own code where it is not (each such type says why); if a TorchVision update fixes
/// a quirk, the test naming it fails, and the library's own type can go.
/// </summary>
[Collection(Training.TorchGlobalStateCollection.Name)]
public class TorchVisionQuirkTests
{
    static string TempDir() { var d = Path.Combine(Path.GetTempPath(), "wb-tvq-" + Guid.NewGuid().ToString("N")); Directory.CreateDirectory(d); return d; }

    [Fact]
    public void HasNoRandomCropAndNoToTensor()
    {
        var names = typeof(transforms).GetMethods().Select(m => m.Name).ToHashSet();
        Assert.DoesNotContain("RandomCrop", names);   // hence Workbook.Vision.RandomCrop
        Assert.DoesNotContain("ToTensor", names);     // ConvertImageDtype(Float32) does its scaling:
        var u8 = torch.tensor(new byte[] { 0, 51, 255 }, new long[] { 1, 1, 3 });
        Assert.Equal(new[] { 0f, 0.2f, 1f }, transforms.ConvertImageDtype(ScalarType.Float32).call(u8).data<float>().ToArray());
    }

    [Fact]
    public void ResizeIsNearestNeighbourUnlessToldBilinear()
    {
        // PyTorch's transforms.Resize is bilinear (with antialias); TorchVision's defaults to nearest.
        var img = torch.tensor(new float[] { 0, 100, 200, 255 }, new long[] { 1, 2, 2 });
        Assert.Equal(new float[] { 0, 0, 100, 100, 0, 0, 100, 100, 200, 200, 255, 255, 200, 200, 255, 255 },
            transforms.Resize(4, 4).call(img).data<float>().ToArray());
        // Asked for bilinear with antialias, it is PyTorch's: the same as F.interpolate(antialias: true).
        var x = torch.rand(3, 20, 30, generator: new Generator(3));
        var reference = nn.functional.interpolate(x.unsqueeze(0), [7, 11], mode: InterpolationMode.Bilinear, align_corners: false, antialias: true).squeeze(0);
        Assert.True(transforms.Resize(7, 11, InterpolationMode.Bilinear, antialias: true).call(x).allclose(reference, 0, 0));
    }

    [Fact]
    public void CenterCropFloorsTheOffsets()
    {
        // torchvision: top = int(round((5 − 2) / 2)) = round(1.5) = 2; TorchVision 0.107 takes 1 (hence Workbook.Vision.CenterCrop).
        var img = torch.arange(25, dtype: ScalarType.Float32).view(1, 5, 5);
        Assert.Equal(new float[] { 6, 7, 11, 12 }, transforms.CenterCrop(2).call(img).data<float>().ToArray());
        Assert.Equal(new float[] { 12, 13, 17, 18 }, new Workbook.Vision.CenterCrop(2).call(img).data<float>().ToArray());
    }

    [Fact]
    public void NormalizeRejectsASingleImage()
    {
        // PyTorch normalises [C, H, W]; TorchVision 0.107 throws on it and works on batches only (hence Workbook.Vision.Normalize).
        var image = torch.rand(3, 4, 5, generator: new Generator(1));
        double[] mean = [0.1, 0.2, 0.3], std = [0.5, 0.6, 0.7];
        Assert.Throws<ArgumentException>(() => transforms.Normalize(mean, std).call(image));
        var batch = transforms.Normalize(mean, std).call(image.unsqueeze(0)).squeeze(0);
        var ours = new Workbook.Vision.Normalize([0.1f, 0.2f, 0.3f], [0.5f, 0.6f, 0.7f]).call(image);
        Assert.True(batch.allclose(ours, 1e-6, 1e-6));
    }

    [Fact]
    public void RandomResizedCropAndRandomRotationIgnoreTorchsSeed()
    {
        // They draw from a fresh System.Random: torch.manual_seed does not make them reproducible.
        var big = torch.arange(100 * 100, dtype: ScalarType.Float32).view(1, 100, 100);
        bool Reproducible(ITransform t)
        {
            for (int trial = 0; trial < 5; trial++)
            {
                torch.manual_seed(3); var a = t.call(big);
                torch.manual_seed(3); var b = t.call(big);
                if (!a.allclose(b, 0, 0)) return false;
            }
            return true;
        }
        Assert.False(Reproducible(transforms.RandomResizedCrop(10, 0.1, 0.9)));
        Assert.False(Reproducible(transforms.RandomRotation(30)));
        // The ones that draw from torch's generator are reproducible.
        Assert.True(Reproducible(transforms.RandomHorizontalFlip(0.5)));
        Assert.True(Reproducible(transforms.ColorJitter(0.4f, 0.4f, 0.4f, 0.1f)));
    }

    /// <summary>Writes a 2 × 1 PNG: pixel 0 red-ish and half transparent, pixel 1 opaque.</summary>
    static string TransparentPng(string dir)
    {
        var path = Path.Combine(dir, "rgba.png");
        using var bmp = new SKBitmap(new SKImageInfo(2, 1, SKColorType.Rgba8888, SKAlphaType.Unpremul));
        bmp.SetPixel(0, 0, new SKColor(255, 10, 20, 128));
        bmp.SetPixel(1, 0, new SKColor(5, 200, 30, 255));
        using var data = bmp.Encode(SKEncodedImageFormat.Png, 100);
        using var f = File.Create(path);
        data.SaveTo(f);
        return path;
    }

    static byte[] Channel(Tensor image, int c) => image[c].flatten().data<byte>().ToArray();

    [Fact]
    public void ReadImageGivesAlphaFirstAndPremultipliedColours()
    {
        var path = TransparentPng(TempDir());
        // RGB_ALPHA comes back [A, R, G, B] (PyTorch: [R, G, B, A]), and the colours of the half-transparent pixel are
        // multiplied by its alpha 128/255: 255 → 128, 10 → 5, 20 → 10.
        var rgba = io.read_image(path, io.ImageReadMode.RGB_ALPHA, new io.SkiaImager());
        Assert.Equal(new long[] { 4, 1, 2 }, rgba.shape);
        Assert.Equal(new byte[] { 128, 255 }, Channel(rgba, 0));
        Assert.Equal(new byte[] { 128, 5 }, Channel(rgba, 1));
        Assert.Equal(new byte[] { 5, 200 }, Channel(rgba, 2));
        Assert.Equal(new byte[] { 10, 30 }, Channel(rgba, 3));
        var rgb = io.read_image(path, io.ImageReadMode.RGB, new io.SkiaImager());
        Assert.Equal(new byte[] { 128, 5 }, Channel(rgb, 0));
        // Images.Load gives the stored colours (hence our decoder).
        var ours = Images.Load(path);
        Assert.Equal(new byte[] { 255, 5 }, Channel(ours, 0));
        Assert.Equal(new byte[] { 10, 200 }, Channel(ours, 1));
        Assert.Equal(new byte[] { 20, 30 }, Channel(ours, 2));
    }

    [Fact]
    public void ReadImageInGrayFromColourIsFloat()
    {
        // PyTorch's read_image(GRAY) gives uint8; TorchVision 0.107 gives float32 in 0..1 for a colour file.
        var photo = Path.Combine(Path.GetDirectoryName(Workbook.Data.DataPaths.File("images", "china.jpg"))!, "china.jpg");
        var gray = io.read_image(photo, io.ImageReadMode.GRAY, new io.SkiaImager());
        Assert.Equal(ScalarType.Float32, gray.dtype);
        Assert.InRange(gray.max().item<float>(), 0.5f, 1f);
        Assert.Equal(ScalarType.Byte, Images.Load(photo, channels: 1).dtype);
        // Opaque RGB is read right, and agrees with Images.Load exactly.
        Assert.True(io.read_image(photo, io.ImageReadMode.RGB, new io.SkiaImager()).equal(Images.Load(photo)).all().item<bool>());
    }

    [Fact]
    public void WritePngRoundTripsUint8AndRejectsFloats()
    {
        var dir = TempDir();
        var rgb = (torch.rand(3, 5, 7, generator: new Generator(2)) * 255).to_type(ScalarType.Byte);
        var gray = (torch.rand(1, 5, 7, generator: new Generator(4)) * 255).to_type(ScalarType.Byte);
        io.write_png(rgb, Path.Combine(dir, "rgb.png"), new io.SkiaImager());
        io.write_png(gray, Path.Combine(dir, "gray.png"), new io.SkiaImager());
        Assert.True(Images.Load(Path.Combine(dir, "rgb.png")).equal(rgb).all().item<bool>());
        Assert.True(Images.Load(Path.Combine(dir, "gray.png"), channels: 1).equal(gray).all().item<bool>());
        Assert.ThrowsAny<Exception>(() => io.write_png(rgb.to_type(ScalarType.Float32) / 255, Path.Combine(dir, "f.png"), new io.SkiaImager()));
        // Images.SavePng (which uses write_png) takes floats in 0..1 too.
        Images.SavePng(rgb.to_type(ScalarType.Float32) / 255, Path.Combine(dir, "f.png"));
        Assert.True(Images.Load(Path.Combine(dir, "f.png")).equal(rgb).all().item<bool>());
    }

    /// <summary>An MNIST-layout folder as TorchVision reads it: ROOT/fashion-mnist/test_data/train-*-ubyte (uncompressed).</summary>
    static string FashionMnistFolder(byte[] pixels, byte[] labels)
    {
        var root = TempDir();
        var dir = Path.Combine(root, "fashion-mnist", "test_data");
        Directory.CreateDirectory(dir);
        static void Idx(string path, int magic, int[] dims, byte[] body)
        {
            using var w = new BinaryWriter(File.Create(path));
            foreach (var v in new[] { magic }.Concat(dims)) w.Write(System.Buffers.Binary.BinaryPrimitives.ReverseEndianness(v));
            w.Write(body);
        }
        Idx(Path.Combine(dir, "train-images-idx3-ubyte"), 2051, [labels.Length, 28, 28], pixels);
        Idx(Path.Combine(dir, "train-labels-idx1-ubyte"), 2049, [labels.Length], labels);
        return root;
    }

    [Fact]
    public void FashionMnistDividesBy256AndAppliesTargetTransformToTheImage()
    {
        var pixels = Enumerable.Range(0, 2 * 28 * 28).Select(i => (byte)(i % 256)).ToArray();
        var root = FashionMnistFolder(pixels, [3, 7]);
        using (var ds = datasets.FashionMNIST(root, true, false, null))
        {
            var sample = ds.GetTensor(0);
            // Pixel 255 becomes 255/256, so white is 0.996, not 1 (hence Datasets.FashionMnist's own IDX reader, 255 → 1).
            Assert.Equal(255f / 256f, sample["data"].flatten()[255].item<float>());
            Assert.Equal(3, sample["label"].item<long>());
        }
        // The parameter named target_transform transforms the image; the label stays.
        using (var ds = datasets.FashionMNIST(root, true, false, transforms.Lambda(x => x * 0 - 1)))
        {
            var sample = ds.GetTensor(0);
            Assert.Equal(-1f, sample["data"].max().item<float>());
            Assert.Equal(3, sample["label"].item<long>());
        }
    }
}
