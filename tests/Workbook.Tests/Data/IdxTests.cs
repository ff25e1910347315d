using System.IO.Compression;
using TorchSharp;
using Workbook.Data;
using static TorchSharp.torch;

namespace Workbook.Tests.Data;

public class IdxTests
{
    static string Temp(string name)
    {
        var dir = Path.Combine(Path.GetTempPath(), "wb-idx-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        return Path.Combine(dir, name);
    }

    static string RepoData(params string[] parts) => Path.Combine(new[] { TestSetup.RepoRoot, "data" }.Concat(parts).ToArray());

    [Fact]
    public void ReadsFashionMnistTestLabels()
    {
        var labels = Idx.Read(RepoData("fashion-mnist", "t10k-labels-idx1-ubyte.gz"));
        Assert.Equal(new long[] { 10000 }, labels.shape);
        Assert.Equal(ScalarType.Byte, labels.dtype);
        // The Fashion-MNIST test set is balanced: exactly 1,000 of each of the 10 classes.
        var counts = torch.bincount(labels.to(int64)).data<long>().ToArray();
        Assert.Equal(Enumerable.Repeat(1000L, 10), counts);
    }

    [Fact]
    public void ReadsImageHeaderAndDataset()
    {
        var header = Idx.ReadHeader(RepoData("fashion-mnist", "train-images-idx3-ubyte.gz"));
        Assert.Equal(new long[] { 60000, 28, 28 }, header.Shape);
        Assert.Equal(ScalarType.Byte, header.Type);
        using var ds = Datasets.FashionMnist(train: false, limit: 100, download: false);
        Assert.Equal(new long[] { 100, 1, 28, 28 }, ds.Inputs.shape);
        Assert.Equal(ScalarType.Float32, ds.Inputs.dtype);
        Assert.Equal(ScalarType.Int64, ds.Targets.dtype);
        Assert.True(ds.Inputs.min().item<float>() >= 0 && ds.Inputs.max().item<float>() == 1f);
        var mnist = Idx.ReadHeader(RepoData("mnist", "t10k-images-idx3-ubyte.gz"));
        Assert.Equal(new long[] { 10000, 28, 28 }, mnist.Shape);
    }

    [Fact]
    public void BadMagicNumberIsRejected()
    {
        var path = Temp("bad.idx");
        File.WriteAllBytes(path, new byte[] { 0x12, 0x34, 0x08, 0x01, 0, 0, 0, 1, 7 });
        var e = Assert.Throws<InvalidDataException>(() => Idx.Read(path));
        Assert.Contains("bad magic number 0x12340801", e.Message);
        Assert.Contains(path, e.Message);
        File.WriteAllBytes(path, new byte[] { 0, 0, 0x07, 0x01, 0, 0, 0, 1, 7 }); // unknown type code
        Assert.Contains("bad magic number 0x00000701", Assert.Throws<InvalidDataException>(() => Idx.Read(path)).Message);
        File.WriteAllBytes(path, new byte[] { 0, 0, 0x08, 0x00 }); // zero dimensions
        Assert.Contains("bad magic number", Assert.Throws<InvalidDataException>(() => Idx.Read(path)).Message);
    }

    [Fact]
    public void TruncatedAndOverlongFilesAreRejected()
    {
        var path = Temp("short.idx");
        File.WriteAllBytes(path, new byte[] { 0, 0, 0x08, 0x01, 0, 0, 0, 10, 1, 2, 3, 4 });
        var e = Assert.Throws<InvalidDataException>(() => Idx.Read(path));
        Assert.Contains("truncated", e.Message);
        Assert.Contains("10 bytes of data, but only 4 follow", e.Message);
        File.WriteAllBytes(path, new byte[] { 0, 0, 0x08, 0x03, 0, 0, 0, 10 });
        Assert.Contains("announces 3 dimensions", Assert.Throws<InvalidDataException>(() => Idx.Read(path)).Message);
        File.WriteAllBytes(path, new byte[] { 0, 0, 0x08, 0x01, 0, 0, 0, 2, 1, 2, 3 });
        Assert.Contains("bytes after", Assert.Throws<InvalidDataException>(() => Idx.Read(path)).Message);
    }

    [Fact]
    public void TruncatedGzipIsRejected()
    {
        var bytes = File.ReadAllBytes(RepoData("fashion-mnist", "t10k-labels-idx1-ubyte.gz"));
        var path = Temp("cut.gz");
        File.WriteAllBytes(path, bytes[..(bytes.Length / 2)]);
        var e = Assert.Throws<InvalidDataException>(() => Idx.Read(path));
        Assert.Contains("truncated", e.Message);
        Assert.Contains(path, e.Message);
    }

    [Fact]
    public void MultiByteValuesAreBigEndianAndGzipIsDetectedByContent()
    {
        var raw = new byte[] { 0, 0, 0x0C, 0x01, 0, 0, 0, 3, 0, 0, 0, 1, 0, 0, 1, 0, 0xFF, 0xFF, 0xFF, 0xFE };
        var path = Temp("ints.bin"); // no .gz suffix, but gzip content
        using (var fs = File.Create(path))
        using (var gz = new GZipStream(fs, CompressionLevel.Fastest))
            gz.Write(raw);
        var t = Idx.Read(path);
        Assert.Equal(ScalarType.Int32, t.dtype);
        Assert.Equal(new[] { 1, 256, -2 }, t.data<int>().ToArray());
    }
}
