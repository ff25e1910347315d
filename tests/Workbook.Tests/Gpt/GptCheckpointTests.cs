using TorchSharp;
using Workbook.Gpt;
using Workbook.IO;
using Workbook.Text;
using static TorchSharp.torch;

namespace Workbook.Tests.Gpt;

public class GptCheckpointTests
{
    static string TempDir() => Directory.CreateDirectory(Path.Combine(Path.GetTempPath(), "wb-gpt-" + Guid.NewGuid().ToString("N"))).FullName;

    /// <summary>A copy of the golden checkpoint folder whose tensors are rewritten by <paramref name="edit"/>.</summary>
    static string EditedCopy(Action<Dictionary<string, Tensor>> edit)
    {
        var dir = TempDir();
        File.Copy(Path.Combine(Golden.Folder, "config.json"), Path.Combine(dir, "config.json"));
        var tensors = SafeTensors.Load(Path.Combine(Golden.Folder, "model.safetensors"));
        edit(tensors);
        SafeTensors.Save(Path.Combine(dir, "model.safetensors"), tensors);
        return dir;
    }

    static Tensor Logits(GptModel m) { using var _ = no_grad(); return m.forward(Golden.Tensors["input.input_ids"]); }

    [Fact]
    public void GoldenCheckpointHasAttentionBuffersThatAreIgnored()
    {
        var header = SafeTensors.ReadHeader(Path.Combine(Golden.Folder, "model.safetensors"));
        Assert.Contains(header.Tensors, t => t.Name == "h.0.attn.bias");
        using var model = Golden.Model(); // loads although the buffers have no parameter
        Assert.DoesNotContain(model.named_parameters(), p => p.name.EndsWith(".attn.bias", StringComparison.Ordinal));
    }

    [Fact]
    public void LoadsWithTransformerPrefixAndTiedLmHead()
    {
        var dir = EditedCopy(t =>
        {
            foreach (var k in t.Keys.ToList()) { t["transformer." + k] = t[k]; t.Remove(k); }
            t["lm_head.weight"] = t["transformer.wte.weight"].clone();
        });
        using var model = GptCheckpoint.Load(dir);
        Assert.True(Golden.MaxDiff(Logits(model), Golden.Tensors["expected.logits"]) < 1e-4);
    }

    [Fact]
    public void UntiedLmHeadIsRejected()
    {
        var dir = EditedCopy(t => t["lm_head.weight"] = t["wte.weight"] + 1);
        var e = Assert.Throws<InvalidDataException>(() => GptCheckpoint.Load(dir));
        Assert.Contains("lm_head.weight", e.Message);
    }

    [Fact]
    public void ReportsEveryMismatchAtOnce()
    {
        var dir = EditedCopy(t =>
        {
            t.Remove("h.1.mlp.c_fc.bias");
            t["h.0.attn.c_attn.weight"] = t["h.0.attn.c_attn.weight"].t().contiguous(); // stored as nn.Linear [out, in]: wrong for HF Conv1D
            t["ln_f.weight"] = zeros(63);
            t["h.7.ln_1.weight"] = zeros(64);
        });
        var e = Assert.Throws<InvalidDataException>(() => GptCheckpoint.Load(dir));
        Assert.Contains("4 problem(s)", e.Message);
        Assert.Contains("missing 'h.1.mlp.c_fc.bias' [256]", e.Message);
        Assert.Contains("'h.0.attn.c_attn.weight' has shape [192, 64] but the model expects [64, 192] (Conv1D [in, out])", e.Message);
        Assert.Contains("'ln_f.weight' has shape [63] but the model expects [64]", e.Message);
        Assert.Contains("unexpected 'h.7.ln_1.weight'", e.Message);
    }

    [Fact]
    public void WrongVocabularyIsNamed()
    {
        var dir = EditedCopy(t => t["wte.weight"] = zeros(50257, 64));
        var e = Assert.Throws<InvalidDataException>(() => GptCheckpoint.Load(dir));
        Assert.Contains("vocabulary of 50257 tokens, the config says 512", e.Message);
        // and a model whose vocabulary is not the tokenizer's cannot be paired with it
        using var model = Golden.Model();
        var mismatch = Assert.Throws<ArgumentException>(() => new TextGenerator(model, Gpt2Tokenizer.Default));
        Assert.Contains("50257", mismatch.Message);
        Assert.Contains("512", mismatch.Message);
    }

    [Fact]
    public void TruncatedWeightsGetAClearError()
    {
        var dir = EditedCopy(_ => { });
        var path = Path.Combine(dir, "model.safetensors");
        var bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes[..(bytes.Length - 1000)]);
        var e = Assert.Throws<InvalidDataException>(() => GptCheckpoint.Load(dir));
        Assert.Contains("truncated", e.Message);
        Assert.Contains(path, e.Message);
        File.Delete(Path.Combine(dir, "config.json"));
        Assert.Throws<FileNotFoundException>(() => GptCheckpoint.Load(dir));
    }

    [Fact]
    public void SavedModelsReopenWithTheSameLoader()
    {
        using var model = Golden.Model();
        var dir = TempDir();
        GptCheckpoint.Save(model, dir);
        var header = SafeTensors.ReadHeader(Path.Combine(dir, "model.safetensors"));
        Assert.Contains(header.Tensors, t => t.Name == "h.0.mlp.c_fc.weight" && t.Shape.SequenceEqual(new long[] { 64, 256 })); // HF Conv1D layout
        Assert.DoesNotContain(header.Tensors, t => t.Name.StartsWith("lm_head", StringComparison.Ordinal));
        using var back = GptCheckpoint.Load(dir);
        Assert.Equal(model.Config, back.Config);
        Assert.Equal(0, Golden.MaxDiff(Logits(back), Logits(model)));

        var half = TempDir();
        GptCheckpoint.Save(model, half, ScalarType.Float16);
        Assert.True(new FileInfo(Path.Combine(half, "model.safetensors")).Length < new FileInfo(Path.Combine(dir, "model.safetensors")).Length * 0.6);
        using var fp16 = GptCheckpoint.Load(half);
        Assert.Equal(ScalarType.Float32, fp16.TokenEmbedding.dtype);
        Assert.True(Golden.MaxDiff(Logits(fp16), Logits(model)) < 0.05);
    }
}
