using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using Microsoft.Data.Analysis;
using SkiaSharp;
using TorchSharp;
using Workbook.Tabular;
using Workbook.Vision;
using static TorchSharp.torch;

namespace Workbook.Tests.Reliability;

/// <summary>
/// The image part of finding 10 (truncated files, decompression bombs) and finding 11 (the CSV pipeline) of issue 14.
/// </summary>
public sealed class ImageAndCsvReliabilityTests
{
    readonly string _dir = Hostile.Folder("img");

    string Path_(string name) => Path.Combine(_dir, name);

    /// <summary>A noisy RGB image (noise does not compress, so a cut falls inside the pixel data).</summary>
    static SKBitmap Noise(int w, int h)
    {
        var bmp = new SKBitmap(new SKImageInfo(w, h, SKColorType.Rgba8888, SKAlphaType.Opaque));
        var random = new Random(10);
        var px = new byte[4 * w * h];
        random.NextBytes(px);
        for (int i = 3; i < px.Length; i += 4) px[i] = 255;
        System.Runtime.InteropServices.Marshal.Copy(px, 0, bmp.GetPixels(), px.Length);
        return bmp;
    }

    string Encoded(string name, SKEncodedImageFormat format, double keep)
    {
        using var bmp = Noise(160, 120);
        using var data = bmp.Encode(format, 90);
        var bytes = data.ToArray();
        var path = Path_(name);
        File.WriteAllBytes(path, bytes[..(int)(bytes.Length * keep)]);
        return path;
    }

    [Fact]
    public void CompleteImagesStillDecode()
    {
        using var png = Images.Load(Encoded("full.png", SKEncodedImageFormat.Png, 1.0));
        Assert.Equal(new long[] { 3, 120, 160 }, png.shape);
        using var jpg = Images.Load(Encoded("full.jpg", SKEncodedImageFormat.Jpeg, 1.0), channels: 1);
        Assert.Equal(new long[] { 1, 120, 160 }, jpg.shape);
    }

    [Fact]
    public void PngTruncatedAt60PercentIsRejected()
    {
        var path = Encoded("cut.png", SKEncodedImageFormat.Png, 0.6);
        Hostile.Throws<InvalidDataException>(() => Images.Load(path), path, "160 × 120", "truncated");
    }

    [Fact]
    public void JpegTruncatedAt50PercentIsRejected()
    {
        var path = Encoded("cut.jpg", SKEncodedImageFormat.Jpeg, 0.5);
        Hostile.Throws<InvalidDataException>(() => Images.Load(path), path, "160 × 120", "truncated");
    }

    /// <summary>A gray PNG of <paramref name="w"/> × <paramref name="h"/> zeros, written chunk by chunk (tiny on disk).</summary>
    static void ZeroPng(string path, int w, int h)
    {
        using var fs = File.Create(path);
        fs.Write([0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A]);
        var ihdr = new byte[13];
        BinaryPrimitives.WriteInt32BigEndian(ihdr, w);
        BinaryPrimitives.WriteInt32BigEndian(ihdr.AsSpan(4), h);
        ihdr[8] = 8; // 8-bit gray, no interlace
        Chunk(fs, "IHDR", ihdr);
        using (var idat = new MemoryStream())
        {
            using (var z = new ZLibStream(idat, CompressionLevel.Optimal, leaveOpen: true))
            {
                var row = new byte[w + 1]; // filter byte 0, then the pixels
                for (int y = 0; y < h; y++) z.Write(row);
            }
            Chunk(fs, "IDAT", idat.ToArray());
        }
        Chunk(fs, "IEND", []);
    }

    static void Chunk(Stream s, string type, byte[] data)
    {
        Span<byte> len = stackalloc byte[4];
        BinaryPrimitives.WriteInt32BigEndian(len, data.Length);
        s.Write(len);
        var typed = Encoding.ASCII.GetBytes(type).Concat(data).ToArray();
        s.Write(typed);
        BinaryPrimitives.WriteUInt32BigEndian(len, Crc32(typed));
        s.Write(len);
    }

    static uint Crc32(byte[] data)
    {
        uint crc = 0xFFFFFFFF;
        foreach (var b in data)
        {
            crc ^= b;
            for (int k = 0; k < 8; k++) crc = (crc & 1) != 0 ? (crc >> 1) ^ 0xEDB88320 : crc >> 1;
        }
        return ~crc;
    }

    [Fact]
    public void HugePngIsRejectedBeforeDecoding()
    {
        var path = Path_("bomb.png");
        ZeroPng(path, 8000, 8000);
        long size = new FileInfo(path).Length;
        Assert.InRange(size, 1, 200_000); // a small file ...
        var used = Hostile.Allocation(() => Hostile.Throws<InvalidDataException>(() => Images.Load(path), // ... claiming 64 megapixels
            path, "8000 × 8000 = 64,000,000 pixels", "limit of 50,000,000", "Images.MaxPixels"));
        Hostile.AssertAllocationBounded(used, size, 1 << 20, "Images.Load");
    }

    /// <summary>The override of the pixel cap (a parameter, and the process-wide default).</summary>
    [Fact]
    public void ThePixelCapCanBeRaised()
    {
        var path = Path_("wide.png");
        ZeroPng(path, 400, 300);
        Hostile.Throws<InvalidDataException>(() => LoadCapped(path, 100_000), "120,000 pixels", "limit of 100,000");
        using (var t = LoadCapped(path, 120_000)) Assert.Equal(new long[] { 3, 300, 400 }, t.shape);
        long before = Images.MaxPixels;
        try
        {
            Images.MaxPixels = 100_000;
            Hostile.Throws<InvalidDataException>(() => Images.Load(path), "limit of 100,000");
        }
        finally { Images.MaxPixels = before; }
        using (var t = Images.Load(path)) Assert.Equal(new long[] { 3, 300, 400 }, t.shape);
    }

    static Tensor LoadCapped(string path, long maxPixels) => Images.Load(path, maxPixels: maxPixels);

    // ---- Finding 11: CSV ----

    string Csv(string text)
    {
        var path = Path_($"t{Guid.NewGuid():N}.csv");
        File.WriteAllText(path, text);
        return path;
    }

    /// <summary>The CSV reader of the pipeline.</summary>
    static DataFrame Load(string path) => TabularData.LoadCsv(path);

    [Fact]
    public void QuotedDecimalCommaIsAnErrorNot25()
    {
        var path = Csv("a,b,label\n1,\"2,5\",x\n3,4,y\n");
        Hostile.Throws<InvalidDataException>(() => TabularData.ToTensor(Load(path), ["a", "b"]), path, "row 0 (line 2)", "column 'b'", "\"2,5\"", "not a number");
    }

    [Fact]
    public void QuotedCellsWithSeparatorsAreText()
    {
        var frame = Load(Csv("id,name\n1,\"Smith, J.\"\n2,\"say \"\"hi\"\"\"\n"));
        Assert.Equal("Smith, J.", frame.Columns["name"][0]);
        Assert.Equal("say \"hi\"", frame.Columns["name"][1]);
        Assert.Equal(2.0, frame.Columns["id"][1]);
    }

    [Fact]
    public void EmptyLabelCellIsNotAClass()
    {
        var path = Csv("a,label\n1,x\n2,\n3,y\n");
        Hostile.Throws<ArgumentException>(() => TabularData.EncodeLabels(Load(path), "label"), "Label column 'label'", "row 1");
        // The same file through DataFrame.LoadCsv, which reads the empty cell as "".
        var e = Hostile.Throws<ArgumentException>(() => TabularData.EncodeLabels(DataFrame.LoadCsv(path), "label"), "Label column 'label' is empty in row 1");
        Assert.Equal("column", e.ParamName);
    }

    [Fact]
    public void InfinityCellIsNamedNotReportedAsNaN()
    {
        var path = Csv("a,b\n1,2\n3,Infinity\n");
        Hostile.Throws<ArgumentException>(() => TabularData.ToTensor(Load(path), ["a", "b"]), "Column 'b' has +∞ (Infinity) in row 1");
        Hostile.Throws<ArgumentException>(() => TabularData.ToTensor(DataFrame.LoadCsv(path), ["a", "b"]), "Column 'b' has +∞ (Infinity) in row 1");
        using var x = tensor(new double[] { 1, 2, 3, double.PositiveInfinity }, [2, 2]);
        Hostile.Throws<ArgumentException>(() => Standardizer.Fit(x), "±∞", "row 1, feature column 1");
    }
}
