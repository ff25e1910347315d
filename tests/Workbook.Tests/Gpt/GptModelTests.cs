using TorchSharp;
using Workbook.Gpt;
using Workbook.IO;
using static TorchSharp.torch;

namespace Workbook.Tests.Gpt;

/// <summary>The tiny HF-layout golden checkpoint and its expected tensors (Fixtures/golden/README.md, section e).</summary>
static class Golden
{
    public static string Folder => TestSetup.Fixture("golden", "gpt2_tiny");
    static Dictionary<string, Tensor>? _tensors;
    public static Dictionary<string, Tensor> Tensors => _tensors ??= SafeTensors.Load(TestSetup.Fixture("golden", "gpt2_tiny.safetensors"));
    public static GptModel Model() => GptCheckpoint.Load(Folder);
    public static int[] Ids(string name, int row = 0) => Tensors[name][row].data<long>().Select(v => (int)v).ToArray();

    public static double MaxDiff(Tensor a, Tensor b)
    {
        Assert.Equal(b.shape, a.shape);
        return (a - b).abs().max().item<float>();
    }
}

public class GptModelTests
{
    [Fact]
    public void Gpt2SmallHasThePublishedParameterCount()
    {
        Assert.Equal(124_439_808, GptConfig.Gpt2.ParameterCount);
        using var model = new GptModel(GptConfig.Gpt2);
        Assert.Equal(124_439_808, model.ParameterCount);
        Assert.Equal(model.ParameterCount, model.ParameterBreakdown().Sum(p => p.Parameters));
        Assert.Equal(15, model.ParameterBreakdown().Count); // wte, wpe, h.0..h.11, ln_f
    }

    [Theory]
    [InlineData("gpt2-medium", 354_823_168L)]
    [InlineData("gpt2-large", 774_030_080L)]
    [InlineData("gpt2-xl", 1_557_611_200L)]
    public void PresetsHaveThePublishedParameterCounts(string name, long expected) => Assert.Equal(expected, GptConfig.FromPreset(name).ParameterCount);

    [Fact]
    public void ForwardMatchesReferenceLogitsAndHiddenStates()
    {
        using var model = Golden.Model();
        var hidden = new List<Tensor>();
        using var _ = no_grad();
        var logits = model.Forward(Golden.Tensors["input.input_ids"], hiddenStates: hidden);
        Assert.True(Golden.MaxDiff(logits, Golden.Tensors["expected.logits"]) < 1e-4);
        string[] names = ["embeddings", .. Enumerable.Range(0, model.Config.NumLayers - 1).Select(i => $"block_{i}"), "ln_f"];
        Assert.Equal(names.Length, hidden.Count);
        for (int i = 0; i < names.Length; i++)
            Assert.True(Golden.MaxDiff(hidden[i], Golden.Tensors[$"expected.hidden.{names[i]}"]) < 1e-4, names[i]);
        // the plain Module forward is the same computation
        Assert.True(Golden.MaxDiff(model.forward(Golden.Tensors["input.input_ids"]), logits) == 0);
    }

    [Fact]
    public void KvCacheAfterPromptMatchesReference()
    {
        using var model = Golden.Model();
        using var cache = new KvCache(model.Config, 1, model.Config.MaxLength);
        using var _ = no_grad();
        model.Forward(Golden.Tensors["input.prompt_ids"], cache);
        Assert.Equal(3, cache.Length);
        for (int i = 0; i < model.Config.NumLayers; i++)
        {
            Assert.True(Golden.MaxDiff(cache.Key(i), Golden.Tensors[$"expected.kv_cache.prompt.h.{i}.key"]) < 1e-5);
            Assert.True(Golden.MaxDiff(cache.Value(i), Golden.Tensors[$"expected.kv_cache.prompt.h.{i}.value"]) < 1e-5);
        }
    }

    [Fact]
    public void KvCacheInChunksEqualsFullRecompute()
    {
        using var model = Golden.Model();
        var ids = Golden.Tensors["input.input_ids"];
        long T = ids.shape[1];
        using var _ = no_grad();
        var full = model.forward(ids);
        foreach (var chunks in new[] { new long[] { T / 2, T - T / 2 }, new long[] { 3, 1, 4, T - 8 }, Enumerable.Repeat(1L, (int)T).ToArray() })
        {
            using var cache = new KvCache(model.Config, ids.shape[0], (int)T);
            var parts = new List<Tensor>();
            long at = 0;
            foreach (var c in chunks) { parts.Add(model.Forward(ids.narrow(1, at, c), cache)); at += c; }
            Assert.True(Golden.MaxDiff(cat(parts, 1), full) < 1e-5, string.Join(",", chunks));
            Assert.True(Golden.MaxDiff(cat(parts, 1), Golden.Tensors["expected.logits"]) < 1e-4);
        }
    }

    [Fact]
    public void GreedyContinuationMatchesReferenceWithAndWithoutCache()
    {
        using var model = Golden.Model();
        var prompt = Golden.Ids("input.prompt_ids");
        var expected = Golden.Ids("expected.greedy.new_tokens");
        foreach (var useCache in new[] { true, false })
        {
            var steps = TextGenerator.GenerateIds(model, [prompt], GenerationOptions.Greedy with { MaxNewTokens = expected.Length, UseKvCache = useCache }).ToList();
            Assert.Equal(expected, steps.Select(s => (int)s.Tokens[0]).ToArray());
        }
        // the per-step logits of incremental decoding equal the reference's step logits
        using var cache = new KvCache(model.Config, 1, model.Config.MaxLength);
        using var _ = no_grad();
        var seq = Golden.Tensors["expected.greedy.sequence"];
        var stepLogits = Golden.Tensors["expected.greedy.step_logits"];
        var last = model.Forward(seq.narrow(1, 0, prompt.Length), cache).select(1, -1);
        for (int k = 0; k < expected.Length; k++)
        {
            Assert.True(Golden.MaxDiff(last, stepLogits[0, k].unsqueeze(0)) < 1e-4, $"step {k}");
            last = model.Forward(seq.narrow(1, prompt.Length + k, 1), cache).select(1, -1);
        }
    }

    [Fact]
    public void LeftPaddedBatchEqualsEachRowAlone()
    {
        using var model = Golden.Model();
        int[][] prompts = [[5, 6, 7, 8, 9, 10, 11], [1, 2, 3], [42]];
        foreach (var useCache in new[] { true, false })
        {
            var options = GenerationOptions.Greedy with { MaxNewTokens = 10, UseKvCache = useCache };
            var batch = TextGenerator.GenerateIds(model, prompts, options).ToList();
            for (int b = 0; b < prompts.Length; b++)
            {
                var alone = TextGenerator.GenerateIds(model, [prompts[b]], options).Select(s => s.Tokens[0]);
                Assert.Equal(alone, batch.Select(s => s.Tokens[b]));
            }
        }
    }

    [Fact]
    public void SampledGenerationWithCacheEqualsRecomputeEvenPastTheContext()
    {
        using var model = Golden.Model();
        int[][] prompts = [[1, 2, 3], [9, 8, 7, 6, 5]];
        // 100 new tokens in a 64-position context: the window slides, and both paths must slide the same way.
        var options = new GenerationOptions { MaxNewTokens = 100, Temperature = 0.8, TopK = 50, Seed = 11 };
        var cached = TextGenerator.GenerateIds(model, prompts, options).Select(s => s.Tokens).ToList();
        var recomputed = TextGenerator.GenerateIds(model, prompts, options with { UseKvCache = false }).Select(s => s.Tokens).ToList();
        Assert.Equal(100, cached.Count);
        Assert.Equal(cached, recomputed);
    }

    [Fact]
    public void ConfigJsonRoundTrips()
    {
        var config = GptConfig.Load(Path.Combine(Golden.Folder, "config.json"));
        Assert.Equal(new GptConfig { VocabSize = 512, MaxLength = 64, DModel = 64, NumHeads = 4, NumLayers = 2, EosTokenId = 511 }, config);
        Assert.Equal(config, GptConfig.FromJson(config.ToJson()));
        var e = Assert.Throws<InvalidDataException>(() => GptConfig.FromJson("""{"model_type":"gpt2","activation_function":"relu","n_embd":8}""", "x.json"));
        Assert.Contains("relu", e.Message);
        Assert.Contains("'vocab_size' is missing", e.Message);
    }

    [Fact]
    public void DimFeedforwardIsFourTimesDModelUnlessSetAndRoundTripsAsNInner()
    {
        var config = new GptConfig { DModel = 64, NumHeads = 4 };
        Assert.Equal(256, config.DimFeedforward);
        Assert.Equal(512, (config with { DModel = 128 }).DimFeedforward); // the default follows DModel
        Assert.Contains("\"n_inner\": null", config.ToJson());
        var explicitWidth = config with { DimFeedforward = 100 };
        Assert.Equal(100, (explicitWidth with { DModel = 128 }).DimFeedforward); // an explicit width is kept
        Assert.Contains("\"n_inner\": 100", explicitWidth.ToJson());
        Assert.Equal(explicitWidth, GptConfig.FromJson(explicitWidth.ToJson()));
        Assert.Equal(100, GptConfig.FromJson(explicitWidth.ToJson()).DimFeedforward);
    }

    [Fact]
    public void ForwardRejectsBadInput()
    {
        using var model = Golden.Model();
        var tooLong = Assert.Throws<ArgumentException>(() => model.forward(zeros(1, 65, dtype: ScalarType.Int64)));
        Assert.Contains("65", tooLong.Message);
        Assert.Contains("64", tooLong.Message);
        Assert.Throws<ArgumentException>(() => model.forward(zeros(1, 3)));
        Assert.Throws<ArgumentException>(() => new GptConfig { DModel = 10, NumHeads = 3 }.Validate());
    }
}
