using TorchSharp;
using static TorchSharp.torch;

namespace Workbook.Vision;

/// <summary>
/// One step of an image pipeline: takes a <c>[C, H, W]</c> image tensor and returns a new one (the input is not
/// modified or disposed). Compose steps with <see cref="Compose"/>, as torchvision's <c>transforms.Compose</c>.
/// </summary>
public interface IImageTransform
{
    /// <summary>Applies the transform to one image <c>[C, H, W]</c>.</summary>
    Tensor Apply(Tensor image);
}

/// <summary>Runs transforms in order: <c>new Compose(new Resize(32), new ToTensor(), new Normalize(...))</c>.</summary>
public sealed class Compose : IImageTransform
{
    /// <summary>The steps, in order.</summary>
    public IReadOnlyList<IImageTransform> Steps { get; }

    /// <summary>Composes the given steps.</summary>
    public Compose(params IImageTransform[] steps) => Steps = steps;

    /// <inheritdoc />
    public Tensor Apply(Tensor image)
    {
        using var scope = torch.NewDisposeScope();   // intermediate images are freed; only the result survives
        var x = image;
        foreach (var step in Steps) x = step.Apply(x);
        return ReferenceEquals(x, image) ? image.alias() : x.MoveToOuterDisposeScope();
    }

    /// <inheritdoc />
    public override string ToString() => "Compose(" + string.Join(", ", Steps) + ")";
}

/// <summary>
/// Resizes with bilinear interpolation (<c>align_corners=False</c>, antialiased when shrinking: torchvision's
/// tensor <c>Resize</c>). An int size resizes the shorter side to it and keeps the aspect ratio; (height, width)
/// sets both. uint8 images stay uint8 (rounded), float images stay float.
/// </summary>
public sealed class Resize : IImageTransform
{
    readonly int? _shorter;
    readonly (int H, int W)? _size;

    /// <summary>Resize the shorter side to <paramref name="size"/>, keeping the aspect ratio.</summary>
    public Resize(int size)
    {
        if (size <= 0) throw new ArgumentException($"Resize size must be positive, got {size}.", nameof(size));
        _shorter = size;
    }

    /// <summary>Resize to exactly <paramref name="height"/> × <paramref name="width"/>.</summary>
    public Resize(int height, int width)
    {
        if (height <= 0 || width <= 0) throw new ArgumentException($"Resize size must be positive, got {height}×{width}.");
        _size = (height, width);
    }

    /// <summary>The output size for an input of the given size.</summary>
    public (int H, int W) OutputSize(int height, int width)
    {
        if (_size is { } s) return s;
        int target = _shorter!.Value;
        // torchvision: the shorter side becomes `size`, the longer is scaled and truncated.
        return height <= width ? (target, (int)(target * (long)width / height)) : ((int)(target * (long)height / width), target);
    }

    /// <inheritdoc />
    public Tensor Apply(Tensor image)
    {
        Check.Image(image, nameof(image));
        var (h, w) = OutputSize((int)image.shape[1], (int)image.shape[2]);
        if (h == image.shape[1] && w == image.shape[2]) return image.alias();
        using var scope = torch.NewDisposeScope();
        var x = image.to_type(ScalarType.Float32).unsqueeze(0);
        // Shrinking with plain bilinear sampling skips pixels (aliasing); antialias widens the filter to the scale
        // factor, as torchvision and PIL do. For enlarging both are identical.
        bool shrinking = h < image.shape[1] || w < image.shape[2];
        var y = nn.functional.interpolate(x, new long[] { h, w }, mode: InterpolationMode.Bilinear, align_corners: false,
            antialias: shrinking).squeeze(0);
        if (image.dtype == ScalarType.Byte) y = y.round().clamp(0, 255).to_type(ScalarType.Byte);
        else y = y.to_type(image.dtype);
        return y.MoveToOuterDisposeScope();
    }

    /// <inheritdoc />
    public override string ToString() => _size is { } s ? $"Resize({s.H}, {s.W})" : $"Resize({_shorter})";
}

/// <summary>Crops the central <c>height × width</c> region (torchvision's rounding of the offsets).</summary>
public sealed class CenterCrop : IImageTransform
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
    public Tensor Apply(Tensor image)
    {
        Check.Image(image, nameof(image));
        Check.Fits(image, Height, Width, "CenterCrop");
        long top = (long)Math.Round((image.shape[1] - Height) / 2.0, MidpointRounding.ToEven);
        long left = (long)Math.Round((image.shape[2] - Width) / 2.0, MidpointRounding.ToEven);
        return image.narrow(1, top, Height).narrow(2, left, Width).contiguous();
    }

    /// <inheritdoc />
    public override string ToString() => $"CenterCrop({Height}, {Width})";
}

/// <summary>
/// Crops a random <c>height × width</c> region, optionally after zero-padding each side (the classic
/// "pad 4, crop 32" augmentation). Seeded, so a run is reproducible.
/// </summary>
public sealed class RandomCrop : IImageTransform
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
    public Tensor Apply(Tensor image)
    {
        Check.Image(image, nameof(image));
        using var scope = torch.NewDisposeScope();
        var x = Padding > 0 ? nn.functional.pad(image, new long[] { Padding, Padding, Padding, Padding }) : image;
        Check.Fits(x, Height, Width, "RandomCrop");
        int top = _random.Next((int)x.shape[1] - Height + 1), left = _random.Next((int)x.shape[2] - Width + 1);
        return x[.., top..(top + Height), left..(left + Width)].contiguous().MoveToOuterDisposeScope();
    }

    /// <inheritdoc />
    public override string ToString() => $"RandomCrop({Height}, padding: {Padding})";
}

/// <summary>Mirrors the image left-right with probability <c>p</c> (seeded).</summary>
public sealed class RandomHorizontalFlip : IImageTransform
{
    readonly Random _random;
    /// <summary>Probability of flipping.</summary>
    public double P { get; }

    /// <summary>Flip with probability <paramref name="p"/>.</summary>
    public RandomHorizontalFlip(double p = 0.5, int seed = 0)
    {
        if (p < 0 || p > 1) throw new ArgumentException($"p must be in [0, 1], got {p}.", nameof(p));
        P = p; _random = new Random(seed);
    }

    /// <inheritdoc />
    public Tensor Apply(Tensor image)
    {
        Check.Image(image, nameof(image));
        return _random.NextDouble() < P ? image.flip(2) : image.alias();
    }

    /// <inheritdoc />
    public override string ToString() => $"RandomHorizontalFlip(p: {P})";
}

/// <summary>uint8 0..255 → float32 0..1 (torchvision's <c>ToTensor</c> after decoding). Float input passes unchanged.</summary>
public sealed class ToTensor : IImageTransform
{
    /// <inheritdoc />
    public Tensor Apply(Tensor image)
    {
        Check.Image(image, nameof(image));
        if (image.dtype != ScalarType.Byte) return image.to_type(ScalarType.Float32);
        using var scope = torch.NewDisposeScope();
        return image.to_type(ScalarType.Float32).div_(255f).MoveToOuterDisposeScope();
    }

    /// <inheritdoc />
    public override string ToString() => "ToTensor()";
}

/// <summary>Per-channel standardisation <c>(x − mean[c]) / std[c]</c> of a float image.</summary>
public sealed class Normalize : IImageTransform
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
    public Tensor Apply(Tensor image)
    {
        Check.Image(image, nameof(image));
        if (!image.is_floating_point())
            throw new ArgumentException($"Normalize needs a float image (put ToTensor before it), got {image.dtype}.", nameof(image));
        int c = (int)image.shape[0];
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
        if (image.dim() != 3)
            throw new ArgumentException($"Image transforms expect [C, H, W], got shape [{string.Join(", ", image.shape)}].", name);
    }

    public static void Fits(Tensor image, int height, int width, string what)
    {
        if (image.shape[1] < height || image.shape[2] < width)
            throw new ArgumentException($"{what}: a {height}×{width} crop does not fit an image of {image.shape[1]}×{image.shape[2]}.");
    }
}
