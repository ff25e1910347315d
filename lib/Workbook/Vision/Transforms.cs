using TorchSharp;
using static TorchSharp.torch;
using ITransform = TorchSharp.torchvision.ITransform;

namespace Workbook.Vision;

// Image pipelines use TorchSharp's TorchVision (torchvision.transforms: Compose, Resize, flips, rotations,
// ColorJitter, ConvertImageDtype, ...). The three transforms below exist because TorchVision 0.107 lacks them or gets
// them wrong for single [C, H, W] images; each says why. They implement TorchVision's ITransform, so they go into
// transforms.Compose with the others. TorchVision's quirks are pinned in tests/Workbook.Tests/Vision/TorchVisionQuirkTests.cs;
// the two to know when building a pipeline:
// - transforms.Resize interpolates nearest-neighbour by default; PyTorch's torchvision uses bilinear with antialiasing:
//   write transforms.Resize(h, w, InterpolationMode.Bilinear, antialias: true) to get PyTorch's result.
// - There is no ToTensor: transforms.ConvertImageDtype(ScalarType.Float32) turns uint8 0..255 into float 0..1.

/// <summary>
/// Crops the central <c>height × width</c> region with torchvision's offsets,
/// <c>top = round((H − height) / 2)</c> rounding halves to even (Python's <c>round</c>).
/// Ours because TorchVision 0.107's <c>CenterCrop</c> floors the offsets: for an odd difference (a 2×2 crop of a
/// 5×5 image) it takes a window one pixel up and left of PyTorch's.
/// </summary>
public sealed class CenterCrop : ITransform
{
    /// <summary>Output height.</summary>
    public int Height { get; }
    /// <summary>Output width.</summary>
    public int Width { get; }

    /// <summary>A square center crop.</summary>
    public CenterCrop(int size) : this(size, size) { }

    /// <summary>A <paramref name="height"/> × <paramref name="width"/> center crop.</summary>
    public CenterCrop(int height, int width)
    {
        if (height <= 0 || width <= 0) throw new ArgumentException($"Crop size must be positive, got {height}×{width}.");
        Height = height; Width = width;
    }

    /// <inheritdoc />
    public Tensor call(Tensor image)
    {
        Check.Image(image, nameof(image));
        Check.Fits(image, Height, Width, "CenterCrop");
        long top = (long)Math.Round((image.shape[^2] - Height) / 2.0, MidpointRounding.ToEven);
        long left = (long)Math.Round((image.shape[^1] - Width) / 2.0, MidpointRounding.ToEven);
        return image.narrow(-2, top, Height).narrow(-1, left, Width).contiguous();
    }

    /// <inheritdoc />
    public override string ToString() => $"CenterCrop({Height}, {Width})";
}

/// <summary>
/// Crops a random <c>height × width</c> region, optionally after zero-padding each side (the classic
/// "pad 4, crop 32" augmentation), with its own seeded generator so a run is reproducible.
/// Ours because TorchVision 0.107 has no <c>RandomCrop</c>.
/// </summary>
public sealed class RandomCrop : ITransform
{
    readonly Random _random;
    /// <summary>Output height.</summary>
    public int Height { get; }
    /// <summary>Output width.</summary>
    public int Width { get; }
    /// <summary>Zeros added on every side before cropping.</summary>
    public int Padding { get; }

    /// <summary>A random square crop.</summary>
    /// <param name="size">Output height and width.</param>
    /// <param name="padding">Zeros added on every side first.</param>
    /// <param name="seed">Seed of the crop positions.</param>
    public RandomCrop(int size, int padding = 0, int seed = 0)
    {
        if (size <= 0) throw new ArgumentException($"Crop size must be positive, got {size}.", nameof(size));
        if (padding < 0) throw new ArgumentException($"padding must be >= 0, got {padding}.", nameof(padding));
        Height = Width = size; Padding = padding; _random = new Random(seed);
    }

    /// <inheritdoc />
    public Tensor call(Tensor image)
    {
        Check.Image(image, nameof(image));
        using var scope = torch.NewDisposeScope();
        var x = Padding > 0 ? nn.functional.pad(image, new long[] { Padding, Padding, Padding, Padding }) : image;
        Check.Fits(x, Height, Width, "RandomCrop");
        int top = _random.Next((int)x.shape[^2] - Height + 1), left = _random.Next((int)x.shape[^1] - Width + 1);
        return x.narrow(-2, top, Height).narrow(-1, left, Width).contiguous().MoveToOuterDisposeScope();
    }

    /// <inheritdoc />
    public override string ToString() => $"RandomCrop({Height}, padding: {Padding})";
}

/// <summary>
/// Per-channel standardisation <c>(x − mean[c]) / std[c]</c> of a float image <c>[C, H, W]</c> (or a batch
/// <c>[N, C, H, W]</c>), with one statistic for all channels or one per channel.
/// Ours because TorchVision 0.107's <c>Normalize</c> rejects a single <c>[C, H, W]</c> image (it reads the channel
/// count from the wrong dimension), which is what an <see cref="ImageFolder"/> pipeline passes it.
/// </summary>
public sealed class Normalize : ITransform
{
    /// <summary>Per-channel means.</summary>
    public float[] Mean { get; }
    /// <summary>Per-channel standard deviations.</summary>
    public float[] Std { get; }

    /// <summary>Standardise with the given per-channel mean and std (one value each, or one per channel).</summary>
    public Normalize(float[] mean, float[] std)
    {
        if (mean.Length == 0 || mean.Length != std.Length)
            throw new ArgumentException($"mean and std need the same non-zero length, got {mean.Length} and {std.Length}.", nameof(std));
        if (std.Any(s => s <= 0)) throw new ArgumentException($"std values must be positive, got [{string.Join(", ", std)}].", nameof(std));
        Mean = mean; Std = std;
    }

    /// <inheritdoc />
    public Tensor call(Tensor image)
    {
        if (image.dim() is not (3 or 4))
            throw new ArgumentException($"Normalize expects [C, H, W] or [N, C, H, W], got shape [{string.Join(", ", image.shape)}].", nameof(image));
        if (!image.is_floating_point())
            throw new ArgumentException($"Normalize needs a float image (put transforms.ConvertImageDtype(ScalarType.Float32) before it), got {image.dtype}.", nameof(image));
        int c = (int)image.shape[^3];
        if (Mean.Length != 1 && Mean.Length != c)
            throw new ArgumentException($"Normalize has {Mean.Length} channel statistics but the image has {c} channels.", nameof(image));
        using var scope = torch.NewDisposeScope();
        var mean = torch.tensor(Mean, dtype: image.dtype, device: image.device).view(-1, 1, 1);
        var std = torch.tensor(Std, dtype: image.dtype, device: image.device).view(-1, 1, 1);
        return ((image - mean) / std).MoveToOuterDisposeScope();
    }

    /// <inheritdoc />
    public override string ToString() => $"Normalize(mean: [{string.Join(", ", Mean)}], std: [{string.Join(", ", Std)}])";
}

static class Check
{
    public static void Image(Tensor image, string name)
    {
        if (image.dim() is not (3 or 4))
            throw new ArgumentException($"Image transforms expect [C, H, W] or [N, C, H, W], got shape [{string.Join(", ", image.shape)}].", name);
    }

    public static void Fits(Tensor image, int height, int width, string what)
    {
        if (image.shape[^2] < height || image.shape[^1] < width)
            throw new ArgumentException($"{what}: a {height}×{width} crop does not fit an image of {image.shape[^2]}×{image.shape[^1]}.");
    }
}
