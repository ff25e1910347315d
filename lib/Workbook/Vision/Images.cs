using SkiaSharp;
using TorchSharp;
using static TorchSharp.torch;

namespace Workbook.Vision;

/// <summary>
/// Image files as tensors in PyTorch's layout: <c>[C, H, W]</c>, <c>uint8</c> 0..255 when just decoded (like
/// <c>torchvision.io.read_image</c>), <c>float32</c> 0..1 after <c>transforms.ConvertImageDtype(ScalarType.Float32)</c>.
/// <para>
/// <see cref="SavePng"/> encodes with TorchVision (<c>torchvision.io.write_png</c> through its SkiaSharp imager).
/// <see cref="Load"/> decodes with SkiaSharp itself, because TorchVision 0.107's <c>read_image</c> gets three things
/// wrong that matter for a folder of your own images (pinned in TorchVisionQuirkTests): colours of pixels with
/// transparency come back multiplied by their alpha, <c>RGB_ALPHA</c> comes back as [A, R, G, B], and <c>GRAY</c> from a
/// colour file comes back as float32 in 0..1 instead of uint8. (<see cref="Load"/> also refuses truncated files
/// and images beyond <see cref="MaxPixels"/>.)
/// </para>
/// </summary>
public static class Images
{
    /// <summary>File extensions that <see cref="ImageFolder"/> treats as images (lower case, with the dot).</summary>
    public static IReadOnlyList<string> Extensions { get; } = new[] { ".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp" };

    /// <summary>
    /// The largest image <see cref="Load"/> decodes by default, in pixels (width × height): 50 million (e.g. 8660 × 5773).
    /// A small file can claim a huge image (a 60 KB PNG of 8000 × 8000 decodes to 256 MB of RGBA), so the size in the
    /// header is checked before any pixel memory is allocated. Raise it for big images, or pass <c>maxPixels</c>.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">Not positive.</exception>
    public static long MaxPixels
    {
        get => _maxPixels;
        set => _maxPixels = value > 0 ? value : throw new ArgumentOutOfRangeException(nameof(value), value, "MaxPixels must be positive.");
    }
    static long _maxPixels = 50_000_000;

    /// <summary>
    /// Decodes an image file into a <c>uint8</c> tensor <c>[channels, H, W]</c>. The file must decode completely: a
    /// truncated or damaged PNG/JPEG is an error, not an image with missing rows.
    /// </summary>
    /// <param name="path">The image file (PNG, JPEG, ...).</param>
    /// <param name="channels">3 for RGB, 1 for grayscale (ITU-R 601 luma <c>L = 0.299 R + 0.587 G + 0.114 B</c>, as PIL's "L" mode).</param>
    /// <param name="maxPixels">The largest width × height accepted; default <see cref="MaxPixels"/>.</param>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="InvalidDataException">The file is not a decodable image, is truncated or corrupt, or is larger than the pixel limit; the message names the path.</exception>
    public static Tensor Load(string path, int channels = 3, long? maxPixels = null)
    {
        if (channels != 1 && channels != 3) throw new ArgumentException($"channels must be 1 or 3, got {channels}.", nameof(channels));
        if (maxPixels is <= 0) throw new ArgumentOutOfRangeException(nameof(maxPixels), maxPixels, "maxPixels must be positive.");
        if (!File.Exists(path)) throw new FileNotFoundException($"Image file not found: {path}", path);
        long limit = maxPixels ?? MaxPixels;
        using var codec = SKCodec.Create(path, out var opened);
        if (codec is null)
            throw new InvalidDataException($"Cannot decode image '{path}': not a valid PNG/JPEG/BMP/GIF/WebP file, or it is corrupt ({opened}).");
        var size = codec.Info;
        long pixels = (long)size.Width * size.Height;
        if (pixels > limit)
            throw new InvalidDataException($"Image '{path}' is {size.Width} × {size.Height} = {pixels:N0} pixels, more than the limit of {limit:N0} " +
                "(Images.MaxPixels). Raise Images.MaxPixels, or pass maxPixels:, to decode it.");
        if (4 * pixels > Array.MaxLength)
            throw new InvalidDataException($"Image '{path}' is {size.Width} × {size.Height} = {pixels:N0} pixels, too large to decode into one buffer (at most {Array.MaxLength / 4:N0}).");
        // Decode straight into one known layout (RGBA, unpremultiplied) whatever the file stored; the codec reports
        // a file that ends early (IncompleteInput) or is damaged (ErrorInInput) instead of leaving rows blank.
        var info = new SKImageInfo(size.Width, size.Height, SKColorType.Rgba8888, SKAlphaType.Unpremul, size.ColorSpace);
        using var rgba = new SKBitmap(info);
        var result = codec.GetPixels(info, rgba.GetPixels());
        if (result != SKCodecResult.Success)
            throw new InvalidDataException($"Cannot decode image '{path}' ({size.Width} × {size.Height}): " + (result == SKCodecResult.IncompleteInput
                ? "the file is truncated (it ends before the last row of pixels)." : $"the decoder reported {result}; the file is corrupt or unsupported."));
        int h = rgba.Height, w = rgba.Width;
        var src = rgba.GetPixelSpan();
        var dst = new byte[channels * h * w];
        int plane = h * w;
        for (int i = 0; i < plane; i++)
        {
            byte r = src[4 * i], g = src[4 * i + 1], b = src[4 * i + 2];
            if (channels == 3) { dst[i] = r; dst[plane + i] = g; dst[2 * plane + i] = b; }
            else dst[i] = (byte)((r * 299 + g * 587 + b * 114 + 500) / 1000);   // PIL's integer luma, rounded
        }
        return torch.tensor(dst, new long[] { channels, h, w }, dtype: ScalarType.Byte);
    }

    /// <summary>Writes a <c>[C, H, W]</c> or <c>[H, W]</c> image tensor as a PNG (uint8 as is; floats are taken as 0..1).</summary>
    /// <param name="image">1 (gray) or 3 (RGB) channels.</param>
    /// <param name="path">Target file; its folder is created.</param>
    public static void SavePng(Tensor image, string path)
    {
        using var scope = torch.NewDisposeScope();
        var img = image.dim() == 2 ? image.unsqueeze(0) : image;
        if (img.dim() != 3 || (img.shape[0] != 1 && img.shape[0] != 3))
            throw new ArgumentException($"SavePng needs [C,H,W] with C = 1 or 3 (or [H,W]), got shape [{string.Join(", ", image.shape)}].", nameof(image));
        // TorchVision's write_png takes uint8 only (it rejects floats): scale floats from 0..1 first.
        if (img.dtype != ScalarType.Byte) img = (img.to_type(ScalarType.Float32) * 255f).round().clamp(0, 255).to_type(ScalarType.Byte);
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        torchvision.io.write_png(img.cpu().contiguous(), path, new torchvision.io.SkiaImager());
    }
}
