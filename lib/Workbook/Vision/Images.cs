using SkiaSharp;
using TorchSharp;
using static TorchSharp.torch;

namespace Workbook.Vision;

/// <summary>
/// Decoding and encoding of image files with SkiaSharp. Images are tensors in PyTorch's layout: <c>[C, H, W]</c>,
/// <c>uint8</c> 0..255 when just decoded (like <c>torchvision.io.read_image</c>), <c>float32</c> 0..1 after
/// <see cref="ToTensor"/>.
/// </summary>
public static class Images
{
    /// <summary>File extensions that <see cref="ImageFolder"/> treats as images (lower case, with the dot).</summary>
    public static IReadOnlyList<string> Extensions { get; } = new[] { ".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp" };

    /// <summary>Decodes an image file into a <c>uint8</c> tensor <c>[channels, H, W]</c>.</summary>
    /// <param name="path">The image file (PNG, JPEG, ...).</param>
    /// <param name="channels">3 for RGB, 1 for grayscale (ITU-R 601 luma <c>L = 0.299 R + 0.587 G + 0.114 B</c>, as PIL's "L" mode).</param>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="InvalidDataException">The file is not a decodable image; the message names the path.</exception>
    public static Tensor Load(string path, int channels = 3)
    {
        if (channels != 1 && channels != 3) throw new ArgumentException($"channels must be 1 or 3, got {channels}.", nameof(channels));
        if (!File.Exists(path)) throw new FileNotFoundException($"Image file not found: {path}", path);
        using var decoded = SKBitmap.Decode(path)
            ?? throw new InvalidDataException($"Cannot decode image '{path}': not a valid PNG/JPEG/BMP/GIF/WebP file, or it is corrupt.");
        // Read pixels in one known layout (RGBA, unpremultiplied) whatever the file stored.
        using var rgba = new SKBitmap(new SKImageInfo(decoded.Width, decoded.Height, SKColorType.Rgba8888, SKAlphaType.Unpremul));
        if (!decoded.CopyTo(rgba, SKColorType.Rgba8888))
            using (var canvas = new SKCanvas(rgba)) canvas.DrawBitmap(decoded, 0, 0);
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
        if (img.dtype != ScalarType.Byte) img = (img.to_type(ScalarType.Float32) * 255f).round().clamp(0, 255).to_type(ScalarType.Byte);
        int c = (int)img.shape[0], h = (int)img.shape[1], w = (int)img.shape[2];
        var hwc = img.permute(1, 2, 0).contiguous().cpu().data<byte>().ToArray();
        var colorType = c == 1 ? SKColorType.Gray8 : SKColorType.Rgba8888;
        using var bmp = new SKBitmap(new SKImageInfo(w, h, colorType, SKAlphaType.Opaque));
        var px = c == 1 ? hwc : new byte[4 * h * w];
        if (c == 3)
            for (int i = 0; i < h * w; i++) { px[4 * i] = hwc[3 * i]; px[4 * i + 1] = hwc[3 * i + 1]; px[4 * i + 2] = hwc[3 * i + 2]; px[4 * i + 3] = 255; }
        if (bmp.RowBytes != w * (c == 1 ? 1 : 4)) throw new InvalidOperationException($"Unexpected row padding in a {w}×{h} bitmap.");
        System.Runtime.InteropServices.Marshal.Copy(px, 0, bmp.GetPixels(), px.Length);
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        using var data = bmp.Encode(SKEncodedImageFormat.Png, 100)
            ?? throw new InvalidOperationException($"SkiaSharp could not encode a {w}×{h} PNG for '{path}'.");
        using var file = File.Create(path);
        data.SaveTo(file);
    }
}
