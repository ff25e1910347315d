using TorchSharp;
using Workbook.Gpt;
using Workbook.Text;
using static TorchSharp.torch;

namespace Workbook.Tests.Gpt;

public class SamplingTests
{
    static Tensor RandomLogits(int rows, int vocab, double scale, int seed)
    {
        using var g = new Generator((ulong)seed);
        return randn([rows, vocab], generator: g) * scale;
    }

    static HashSet<long> Finite(Tensor row) => Enumerable.Range(0, (int)row.shape[0]).Where(i => !double.IsNegativeInfinity(row[i].item<float>())).Select(i => (long)i).ToHashSet();

    [Theory]
    [InlineData(1)]
    [InlineData(5)]
    [InlineData(50)]
    public void TopKNeverPicksOutsideTheTopK(int k)
    {
        var logits = RandomLogits(4, 1000, 2.0, k);
        var filtered = Sampling.TopK(logits, k);
        using var g = new Generator(123);
        var options = new GenerationOptions { TopK = k };
        for (int b = 0; b < 4; b++)
        {
            var top = logits[b].topk(k).indexes.data<long>().ToHashSet();
            Assert.Equal(top, Finite(filtered[b]));
        }
        for (int draw = 0; draw < 200; draw++)
        {
            var (ids, _) = Sampling.Next(logits, options, generator: g);
            for (int b = 0; b < 4; b++)
                Assert.Contains(ids[b].item<long>(), logits[b].topk(k).indexes.data<long>().ToArray());
        }
    }

    [Theory]
    [InlineData(0.1)]
    [InlineData(0.5)]
    [InlineData(0.9)]
    [InlineData(0.99)]
    public void TopPKeepsTheSmallestSetWithMassAtLeastP(double p)
    {
        var logits = RandomLogits(6, 500, 3.0, (int)(p * 1000));
        var filtered = Sampling.TopP(logits, p);
        var probs = logits.softmax(-1);
        for (int b = 0; b < 6; b++)
        {
            var kept = Finite(filtered[b]);
            var sorted = probs[b].sort(descending: true);
            var order = sorted.Indices.data<long>().ToArray();
            var mass = sorted.Values.to(ScalarType.Float64).cumsum(0).data<double>().ToArray();
            int m = kept.Count;
            Assert.Equal(order.Take(m).ToHashSet(), kept);       // the kept tokens are the m most likely
            Assert.True(mass[m - 1] >= p - 1e-6, $"mass {mass[m - 1]} < p {p}"); // they reach p
            if (m > 1) Assert.True(mass[m - 2] < p + 1e-6, $"m-1 tokens already have mass {mass[m - 2]} >= p {p}"); // one fewer does not
            // and the kept logits are unchanged
            foreach (var i in kept) Assert.Equal(logits[b, i].item<float>(), filtered[b, i].item<float>());
        }
    }

    [Fact]
    public void LowTemperatureEqualsGreedy()
    {
        using var model = Golden.Model();
        var prompt = Golden.Ids("input.prompt_ids");
        var greedy = Golden.Ids("expected.greedy.new_tokens");
        for (int seed = 1; seed <= 5; seed++)
        {
            var options = new GenerationOptions { MaxNewTokens = greedy.Length, Temperature = 1e-4, Seed = seed };
            Assert.Equal(greedy, TextGenerator.GenerateIds(model, [prompt], options).Select(s => (int)s.Tokens[0]).ToArray());
        }
        var logits = RandomLogits(3, 100, 1.0, 5);
        var sharp = Sampling.Distribution(logits, new GenerationOptions { Temperature = 1e-3 });
        Assert.Equal(logits.argmax(-1).data<long>().ToArray(), sharp.argmax(-1).data<long>().ToArray());
        Assert.True(sharp.max(-1).values.min().item<float>() > 0.999f);
    }

    [Fact]
    public void HigherTemperatureFlattensTheDistribution()
    {
        var logits = RandomLogits(1, 200, 2.0, 9);
        double Entropy(double t)
        {
            var p = Sampling.Distribution(logits, new GenerationOptions { Temperature = t });
            return -(p * p.clamp_min(1e-30).log()).sum().item<float>();
        }
        var entropies = new[] { 0.3, 0.7, 1.0, 1.5, 3.0 }.Select(Entropy).ToArray();
        for (int i = 1; i < entropies.Length; i++) Assert.True(entropies[i] > entropies[i - 1]);
        Assert.True(entropies[^1] < Math.Log(200));
    }

    [Fact]
    public void RepetitionPenaltyDividesPositiveAndMultipliesNegativeLogits()
    {
        var logits = tensor(new[] { 2f, -2f, 4f, -1f }).unsqueeze(0);
        var seen = tensor(new[] { true, true, false, false }).unsqueeze(0);
        var result = Sampling.ApplyRepetitionPenalty(logits, seen, 2.0);
        Assert.Equal(new[] { 1f, -4f, 4f, -1f }, result[0].data<float>().ToArray());
    }

    [Fact]
    public void InvalidOptionsAreNamed()
    {
        Assert.Contains("TopP", Assert.Throws<ArgumentException>(() => new GenerationOptions { TopP = 0 }.Validate()).Message);
        Assert.Contains("Temperature", Assert.Throws<ArgumentException>(() => new GenerationOptions { Temperature = -1 }.Validate()).Message);
        Assert.Contains("TopK", Assert.Throws<ArgumentException>(() => new GenerationOptions { TopK = -3 }.Validate()).Message);
        Assert.Contains("RepetitionPenalty", Assert.Throws<ArgumentException>(() => new GenerationOptions { RepetitionPenalty = 0 }.Validate()).Message);
    }
}

public class TextGeneratorTests
{
    /// <summary>A small random GPT-2 with the real vocabulary, so text goes through the real tokenizer.</summary>
    static GptModel RandomGpt(int seed = 3)
    {
        torch.manual_seed(seed);
        return new GptModel(new GptConfig { DModel = 32, NumLayers = 1, NumHeads = 2, MaxLength = 64 });
    }

    static readonly TextGenerator Generator = new(RandomGpt(), Gpt2Tokenizer.Default);

    [Fact]
    public void SeededSamplingIsReproducible()
    {
        var options = new GenerationOptions { MaxNewTokens = 20, Temperature = 1.2, TopP = 0.95, Seed = 42 };
        var a = Generator.Generate("To be, or not to be", options);
        var b = Generator.Generate("To be, or not to be", options);
        var c = Generator.Generate("To be, or not to be", options with { Seed = 43 });
        Assert.Equal(a.TokenIds, b.TokenIds);
        Assert.Equal(a.Text, b.Text);
        Assert.NotEqual(a.TokenIds, c.TokenIds);
        Assert.Equal(20, a.TokenIds.Count);
        Assert.Equal(StopReason.MaxNewTokens, a.StopReason);
        Assert.Equal(Gpt2Tokenizer.Default.Decode(a.TokenIds), a.Text);
    }

    [Fact]
    public void StreamingYieldsTheSameTextTokenByToken()
    {
        var options = new GenerationOptions { MaxNewTokens = 30, Seed = 7 };
        var whole = Generator.Generate("ROMEO:", options);
        var streamed = Generator.Stream("ROMEO:", options).ToList();
        Assert.Equal(whole.TokenIds, streamed.Select(t => t.Id));
        Assert.Equal(whole.Text, string.Concat(streamed.Select(t => t.Text)));
        Assert.Equal(Enumerable.Range(0, 30), streamed.Select(t => t.Step));
        Assert.Equal(StopReason.MaxNewTokens, streamed[^1].StopReason);
        Assert.All(streamed.SkipLast(1), t => Assert.Null(t.StopReason));
        Assert.All(streamed, t => Assert.InRange(t.Probability, 0f, 1f));
    }

    [Fact]
    public async Task AsyncStreamingMatchesStreaming()
    {
        var options = new GenerationOptions { MaxNewTokens = 12, Seed = 5 };
        var list = new List<GeneratedToken>();
        await foreach (var t in Generator.StreamAsync("JULIET:", options)) list.Add(t);
        Assert.Equal(Generator.Stream("JULIET:", options).ToList(), list);
    }

    [Fact]
    public void StopsAtAStopStringAndCutsTheTextBeforeIt()
    {
        var options = new GenerationOptions { MaxNewTokens = 40, Seed = 9 };
        var free = Generator.Generate("Hello", options).Text;
        var middle = free.Length / 2;
        var stop = free.Substring(middle, 3);
        Assert.DoesNotContain('\uFFFD', stop);
        var cut = Generator.Generate("Hello", options with { StopStrings = [stop] });
        Assert.Equal(StopReason.StopString, cut.StopReason);
        Assert.Equal(free[..free.IndexOf(stop, StringComparison.Ordinal)], cut.Text);
        var streamed = Generator.Stream("Hello", options with { StopStrings = [stop] }).ToList();
        Assert.Equal(cut.Text, string.Concat(streamed.Select(t => t.Text))); // streamed text never shows part of the stop string
        Assert.Equal(StopReason.StopString, streamed[^1].StopReason);
    }

    [Fact]
    public void StopsAtEndOfText()
    {
        using var model = RandomGpt(4);
        var p = model.named_parameters().ToDictionary(x => x.name, x => x.parameter);
        using (no_grad())
        {
            var v = randn(32);
            p["ln_f.weight"].zero_();
            p["ln_f.bias"].copy_(v); // every position's final hidden state is v ...
            p["wte.weight"][Gpt2Tokenizer.EndOfTextId] = v * 100; // ... whose best match is end-of-text
        }
        var gen = new TextGenerator(model, Gpt2Tokenizer.Default);
        var result = gen.Generate("Once upon a time", GenerationOptions.Greedy);
        Assert.Equal(StopReason.EndOfText, result.StopReason);
        Assert.Equal([Gpt2Tokenizer.EndOfTextId], result.TokenIds);
        Assert.Equal("", result.Text);
        var goOn = gen.Generate("Once upon a time", GenerationOptions.Greedy with { MaxNewTokens = 3, StopAtEndOfText = false });
        Assert.Equal(StopReason.MaxNewTokens, goOn.StopReason);
        Assert.Equal(3, goOn.TokenIds.Count);
    }

    [Fact]
    public void BatchOfPromptsEqualsOneByOne()
    {
        string[] prompts = ["First Citizen:", "O", "What light through yonder window breaks? It is"];
        var options = GenerationOptions.Greedy with { MaxNewTokens = 8 };
        var batch = Generator.Generate(prompts, options);
        for (int i = 0; i < prompts.Length; i++)
        {
            Assert.Equal(prompts[i], batch[i].Prompt);
            Assert.Equal(Generator.Generate(prompts[i], options).TokenIds, batch[i].TokenIds);
        }
    }

    [Fact]
    public void BadPromptsGetClearErrors()
    {
        var empty = Assert.Throws<ArgumentException>(() => Generator.Generate(""));
        Assert.Contains("empty", empty.Message);
        var longPrompt = string.Concat(Enumerable.Repeat(" the", 65)); // 65 tokens, context 64
        var tooLong = Assert.Throws<ArgumentException>(() => Generator.Generate(longPrompt));
        Assert.Contains("65 tokens", tooLong.Message);
        Assert.Contains("context of 64", tooLong.Message);
        Assert.Throws<ArgumentException>(() => Generator.Generate([]));
    }
}
