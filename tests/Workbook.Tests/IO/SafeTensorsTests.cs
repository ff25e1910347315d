using TorchSharp;
using Workbook.IO;
using static TorchSharp.torch;

namespace Workbook.Tests.IO;

public class SafeTensorsTests
{
    static string Temp(string name) => Path.Combine(Path.GetTempPath(), "wb-st-" + Guid.NewGuid().ToString("N"), name);

    [Fact]
    public void RoundTripIsBitExactForEveryDType()
    {
        var path = Temp("a.safetensors");
        var tensors = new Dictionary<string, Tensor>
        {
            ["f32"] = torch.randn(3, 4), ["f64"] = torch.randn(2, dtype: float64), ["f16"] = torch.randn(5).to(float16),
            ["bf16"] = torch.randn(5).to(bfloat16), ["i64"] = torch.arange(7), ["i32"] = torch.arange(3, dtype: int32),
            ["u8"] = torch.tensor(new byte[] { 1, 2, 255 }), ["b"] = torch.tensor(new[] { true, false }), ["scalar"] = torch.tensor(3.5f),
            ["empty"] = torch.zeros(0, 3),
        };
        SafeTensors.Save(path, tensors, new Dictionary<string, string> { ["format"] = "pt" });
        var back = SafeTensors.Load(path);
        Assert.Equal(tensors.Keys.OrderBy(k => k), back.Keys.OrderBy(k => k));
        foreach (var (k, t) in tensors)
        {
            Assert.Equal(t.dtype, back[k].dtype);
            Assert.Equal(t.shape, back[k].shape);
            Assert.True(t.bytes.SequenceEqual(back[k].bytes), k);
        }
        Assert.Equal("pt", SafeTensors.ReadMetadata(path)["format"]);
    }

    [Fact]
    public void ReadsPyTorchGoldenFile()
    {
        var header = SafeTensors.ReadHeader(TestSetup.Fixture("golden", "positional_encoding.safetensors"));
        Assert.NotEmpty(header.Tensors);
    }

    [Fact]
    public void TruncatedFileNamesTheTensorAndSizes()
    {
        var path = Temp("t.safetensors");
        SafeTensors.Save(path, new Dictionary<string, Tensor> { ["weight"] = torch.ones(100) });
        var bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes[..^10]);
        var e = Assert.Throws<InvalidDataException>(() => SafeTensors.Load(path));
        Assert.Contains("truncated", e.Message);
        Assert.Contains("'weight'", e.Message);
        File.WriteAllBytes(path, bytes[..5]);
        Assert.Contains("truncated", Assert.Throws<InvalidDataException>(() => SafeTensors.Load(path)).Message);
    }

    [Fact]
    public void CorruptHeaderAndMissingNamesAreReported()
    {
        var path = Temp("c.safetensors");
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        var junk = new byte[40];
        BitConverter.GetBytes(16UL).CopyTo(junk, 0);
        "{not json at all".Select(c => (byte)c).ToArray().CopyTo(junk, 8);
        File.WriteAllBytes(path, junk);
        Assert.Contains("not JSON", Assert.Throws<InvalidDataException>(() => SafeTensors.ReadHeader(path)).Message);

        SafeTensors.Save(path, new Dictionary<string, Tensor> { ["a"] = torch.ones(1) });
        var e = Assert.Throws<KeyNotFoundException>(() => SafeTensors.Load(path, names: new[] { "b" }));
        Assert.Contains("b", e.Message);
        Assert.Contains("it has: a", e.Message);
    }
}
