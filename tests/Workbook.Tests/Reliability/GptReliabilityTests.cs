using System.Diagnostics;
using System.Text.Json.Nodes;
using TorchSharp;
using Workbook.Gpt;
using static TorchSharp.torch;

namespace Workbook.Tests.Reliability;

/// <summary>
/// Findings 9 and the GPT part of 10 of issue 14: errors of the GPT API must be the library's own and name the
/// argument, the expected and the actual value, not libtorch's; a config must be checked against the weights before
/// the model it describes is built.
/// </summary>
public sealed class GptReliabilityTests : IDisposable
{
    readonly GptModel _model = Gpt.Golden.Model(); // 2 layers, 4 heads, n_embd 64, vocab 512, context 64

    public void Dispose() => _model.Dispose();

    // ---- Finding 9 ----

    [Fact]
    public void KvCacheMadeForAnotherConfig()
    {
        using var _ = no_grad();
        using var ids = tensor(new long[] { 1, 2, 3 }, [1, 3]);
        using (var fewerLayers = new KvCache(_model.Config with { NumLayers = 1 }, 1, 16))
            Hostile.Throws<ArgumentException>(() => _model.Forward(ids, fewerLayers), "KV cache was made for 1 layers", "this model has 2 layers");
        using (var otherHeads = new KvCache(_model.Config with { NumHeads = 2 }, 1, 16))
            Hostile.Throws<ArgumentException>(() => _model.Forward(ids, otherHeads), "2 heads × head size 32", "4 heads × head size 16");
        using (var otherBatch = new KvCache(_model.Config, 2, 16))
            Hostile.Throws<ArgumentException>(() => _model.Forward(ids, otherBatch), "made for batch 2", "has batch 1");
    }

    [Theory]
    [InlineData(512)]
    [InlineData(-1)]
    [InlineData(1_000_000)]
    public void TokenIdOutsideTheVocabulary(long bad)
    {
        using var _ = no_grad();
        using var ids = tensor(new long[] { 1, 2, bad, 3 }, [1, 4]);
        var e = Hostile.Throws<ArgumentException>(() => _model.Forward(ids), $"Token id {bad} at [0, 2]", "vocabulary [0, 512)");
        Assert.Equal("idx", e.ParamName);
    }

    [Fact]
    public void TokenIdOutsideTheVocabularyOnTheSingleTokenDecodePath()
    {
        using var _ = no_grad();
        using var cache = new KvCache(_model.Config, 1, 16);
        using (var prompt = tensor(new long[] { 1, 2, 3 }, [1, 3])) _model.Forward(prompt, cache).Dispose();
        using var next = tensor(new long[] { 600 }, [1, 1]);
        Hostile.Throws<ArgumentException>(() => _model.Forward(next, cache, lastPositionOnly: true), "Token id 600 at [0, 0]", "vocabulary [0, 512)");
        Assert.Equal(3, cache.Length); // the failed step cached nothing
        using var good = tensor(new long[] { 4 }, [1, 1]);
        _model.Forward(good, cache, lastPositionOnly: true).Dispose();
        Assert.Equal(4, cache.Length);
    }

    [Fact]
    public void PromptIdsOutsideTheVocabularyThroughGenerateIds()
    {
        var steps = () => TextGenerator.GenerateIds(_model, [[1, 2, 512]], new GenerationOptions { MaxNewTokens = 2 }).ToList();
        Hostile.Throws<ArgumentException>(() => steps(), "token id 512", "vocabulary [0, 512)");
    }

    [Fact]
    public void TinyTemperatureIsTheGreedyLimitNotNaN()
    {
        var greedy = TextGenerator.GenerateIds(_model, [[1, 2, 3]], new GenerationOptions { MaxNewTokens = 8, Temperature = 0 }).Select(s => s.Tokens[0]).ToList();
        var tiny = TextGenerator.GenerateIds(_model, [[1, 2, 3]], new GenerationOptions { MaxNewTokens = 8, Temperature = 1e-300, Seed = 1 }).Select(s => s.Tokens[0]).ToList();
        Assert.Equal(greedy, tiny);
        using var logits = tensor(new float[] { 1, 3, 2 }, [1, 3]);
        using var p = Sampling.Distribution(logits, new GenerationOptions { Temperature = 1e-300 });
        Assert.Equal(new float[] { 0, 1, 0 }, p.data<float>().ToArray());
    }

    [Fact]
    public void InfiniteTemperatureIsRejected()
    {
        var options = new GenerationOptions { Temperature = double.PositiveInfinity };
        Hostile.Throws<ArgumentException>(() => options.Validate(), "Temperature must be finite", "∞");
        Hostile.Throws<ArgumentException>(() => TextGenerator.GenerateIds(_model, [[1, 2]], options).ToList(), "Temperature");
        Hostile.Throws<ArgumentOutOfRangeException>(() => Sampling.ApplyTemperature(torch.zeros(1, 3), double.PositiveInfinity), "temperature", "finite");
    }

    [Fact]
    public void NullStopStringsAreNamed()
    {
        var options = new GenerationOptions { StopStrings = null! };
        Hostile.Throws<ArgumentException>(() => options.Validate(), "StopStrings must not be null");
        Hostile.Throws<ArgumentException>(() => TextGenerator.GenerateIds(_model, [[1, 2]], options).ToList(), "StopStrings");
    }

    // ---- Finding 10: the config against the weights ----

    string Folder(Action<JsonObject> editConfig)
    {
        var folder = Hostile.Folder("gptcfg");
        File.Copy(Path.Combine(Gpt.Golden.Folder, GptCheckpoint.WeightsFile), Path.Combine(folder, GptCheckpoint.WeightsFile));
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(Gpt.Golden.Folder, GptCheckpoint.ConfigFile)))!.AsObject();
        editConfig(config);
        File.WriteAllText(Path.Combine(folder, GptCheckpoint.ConfigFile), config.ToJsonString());
        return folder;
    }

    [Fact]
    public void ConfigThatDoesNotFitTheWeightsFailsBeforeTheModelIsBuilt()
    {
        var folder = Folder(c => { c["n_layer"] = 24; c["n_embd"] = 768; c["n_head"] = 12; });
        var clock = Stopwatch.StartNew();
        var used = Hostile.Allocation(() => { try { GptCheckpoint.Load(folder).Dispose(); } catch (InvalidDataException) { } });
        // The model that config describes has 170M parameters (680 MB): it must not be allocated to find that out.
        Hostile.AssertAllocationBounded(used, new FileInfo(Path.Combine(folder, GptCheckpoint.WeightsFile)).Length, 4 << 20, "GptCheckpoint.Load");
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(3), $"took {clock.Elapsed.TotalSeconds:F1} s (two loads)");
        Hostile.Throws<InvalidDataException>(() => GptCheckpoint.Load(folder),
            Path.Combine(folder, GptCheckpoint.WeightsFile), Path.Combine(folder, GptCheckpoint.ConfigFile),
            "24 layers, n_embd 768", "'wte.weight' has shape [512, 64] but the model expects [512, 768]", "missing 'h.23.ln_1.weight' [768]");
    }

    [Fact]
    public void HugeVocabularyIsAnErrorNotAnAllocation()
    {
        var folder = Folder(c => c["vocab_size"] = 1e12);
        Hostile.Throws<InvalidDataException>(() => GptCheckpoint.Load(folder), GptCheckpoint.ConfigFile, "'vocab_size' is 1000000000000", "expected an integer");
        var fractional = Folder(c => c["n_layer"] = 2.5);
        Hostile.Throws<InvalidDataException>(() => GptCheckpoint.Load(fractional), "'n_layer' is 2.5", "expected an integer");
    }

    [Fact]
    public void ParameterShapesMatchTheModel()
    {
        var expected = GptCheckpoint.ParameterShapes(_model.Config);
        var actual = _model.named_parameters().Select(p => (p.name, p.parameter.shape)).ToList();
        Assert.Equal(expected.Select(e => e.Name), actual.Select(a => a.name));
        for (int i = 0; i < actual.Count; i++) Assert.Equal(expected[i].Shape, actual[i].shape);
    }
}
