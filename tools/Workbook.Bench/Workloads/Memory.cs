using Workbook.Runtime;
using Workbook.Gpt;
using F = TorchSharp.torch.nn.functional;

namespace Workbook.Bench.Workloads;

/// <summary>
/// Workload 6: memory stays flat. RSS and the live tensor count are sampled every few steps over 2,000 MLP training
/// steps and over 500 greedily generated tokens (a char-GPT with the KV cache). The figure is the median of the samples
/// taken after the first tenth of the run; the spread column is then the range of the series (0% = perfectly flat), and
/// the JSON keeps the whole series and the growth from the first kept sample to the last.
/// Each sample is taken right after a full garbage collection, so RSS counts what the process holds, as it does for
/// PyTorch, whose reference counting frees at once. Without it, RSS also counts the managed garbage not yet collected: a
/// training step leaves about 10 KB of it (tensor handles, scopes, the optimizer's loop), and .NET sizes its first
/// generation from the L3 cache (tens of MB on this Xeon), so over 2,000 steps no collection came at all and RSS climbed
/// 22 MiB in a straight line, falling back at the first collection (flat with <c>DOTNET_GCgen0size=0x800000</c>). The
/// JSON's <c>gen0_collections_unforced</c> counts the collections the run would have had by itself.
/// </summary>
public sealed class MemoryWorkload() : Workload("memory",
    "memory over 2,000 training steps and 500 generated tokens: RSS and live tensors (flat?)",
    [
        new("memory_train_rss", "MiB", false), new("memory_train_live_tensors", "tensors", false, Compare: false),
        new("memory_generate_rss", "MiB", false), new("memory_generate_live_tensors", "tensors", false, Compare: false),
    ])
{

    /// <inheritdoc/>
    public override JsonObject Parameters(bool smoke) => new()
    {
        ["train_steps"] = smoke ? 40 : 2000, ["generate_tokens"] = smoke ? 20 : 500, ["samples"] = 20,
        ["batch"] = 64, ["sizes"] = new JsonArray(784, 256, 128, 10),
        ["vocab"] = 65, ["n_positions"] = 1024, ["n_layer"] = smoke ? 2 : 4, ["n_head"] = 4, ["n_embd"] = smoke ? 32 : 128, ["prompt"] = 16,
    };

    static int s_forced;

    /// <summary>RSS after a full collection (see the class summary).</summary>
    static double CollectedRssMiB()
    {
        s_forced += 2;
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        return Stats.RssMiB();
    }

    /// <summary>Turns a sampled series into a figure: drop the first tenth (warm-up), keep the rest and the growth.</summary>
    static Figure Series(string name, List<double> series, JsonObject? more = null)
    {
        var kept = series.Skip(Math.Max(1, series.Count / 10)).ToArray();
        var extra = new JsonObject
        {
            ["growth"] = kept[^1] - kept[0], ["growth_pct"] = kept[0] != 0 ? (kept[^1] - kept[0]) / kept[0] * 100 : 0,
            ["series"] = new JsonArray(series.Select(v => (JsonNode)JsonValue.Create(Math.Round(v, 2))!).ToArray()),
        };
        foreach (var (k, v) in more ?? new JsonObject()) extra[k] = v?.DeepClone();
        return new Figure(name, kept, extra);
    }

    /// <summary>Per-mapping RSS difference between two breakdowns (MiB), the mappings that moved most first.</summary>
    static JsonObject Difference(JsonObject before, JsonObject after)
    {
        var names = before.Select(kv => kv.Key).Union(after.Select(kv => kv.Key)).Where(k => k != "total_mib");
        var d = names.Select(n => (n, (after[n]?.GetValue<double>() ?? 0) - (before[n]?.GetValue<double>() ?? 0)))
            .Where(t => Math.Abs(t.Item2) >= 0.1).OrderByDescending(t => Math.Abs(t.Item2));
        var o = new JsonObject();
        foreach (var (n, v) in d) o[n] = Math.Round(v, 1);
        return o;
    }

    static JsonObject Top(JsonObject breakdown)
    {
        var o = new JsonObject { ["total_mib"] = breakdown["total_mib"]!.GetValue<double>() };
        foreach (var (k, v) in breakdown.Where(kv => kv.Key is not ("total_mib" or "other_mib")).Take(10)) o[k] = v!.GetValue<double>();
        o["other_mib"] = Math.Round(breakdown["total_mib"]!.GetValue<double>() - o.Where(kv => kv.Key != "total_mib").Sum(kv => kv.Value!.GetValue<double>()), 1);
        return o;
    }

    /// <inheritdoc/>
    public override IReadOnlyList<Figure> Run(JsonObject p)
    {
        int steps = p.Int("train_steps"), tokens = p.Int("generate_tokens"), samples = p.Int("samples"), batch = p.Int("batch");
        var sizes = p.Longs("sizes");
        var trainRss = new List<double>();
        var trainLive = new List<double>();
        JsonObject? trainFirst = null, trainLast = null;
        torch.manual_seed(0);
        s_forced = 0;
        int gcTrain = GC.CollectionCount(0);
        using (var mlp = MlpTrainWorkload.Build(sizes))
        using (var opt = optim.Adam(mlp.parameters(), lr: 1e-3))
        using (var x = randn(batch, sizes[0]))
        using (var y = randint(sizes[^1], [batch]))
        {
            int every = Math.Max(1, steps / samples);
            for (int s = 1; s <= steps; s++)
            {
                using (var scope = NewDisposeScope())
                {
                    mlp.zero_grad(); // set_to_none
                    var loss = F.cross_entropy(mlp.forward(x), y);
                    loss.backward();
                    opt.step();
                }
                if (s % every == 0)
                {
                    trainRss.Add(CollectedRssMiB()); trainLive.Add(Stats.LiveTensors());
                    if (trainRss.Count == Math.Max(1, samples / 10) + 1) trainFirst = Stats.RssBreakdown(40); // the first kept sample
                }
            }
            trainLast = Stats.RssBreakdown(40);
        }
        gcTrain = GC.CollectionCount(0) - gcTrain - s_forced;
        s_forced = 0;
        int gcGenerate = GC.CollectionCount(0);

        var genRss = new List<double>();
        var genLive = new List<double>();
        JsonObject? genFirst = null;
        var config = new GptConfig { VocabSize = p.Int("vocab"), MaxLength = p.Int("n_positions"), NumLayers = p.Int("n_layer"), NumHeads = p.Int("n_head"), DModel = p.Int("n_embd") };
        using (var model = new GptModel(config))
        {
            // The library's generation loop (KV cache, greedy), sampled while it streams tokens.
            var rng = new Random(0);
            var prompt = Enumerable.Range(0, p.Int("prompt")).Select(_ => rng.Next(config.VocabSize)).ToArray();
            int every = Math.Max(1, tokens / samples);
            var options = GenerationOptions.Greedy with { MaxNewTokens = tokens, UseKvCache = true, StopAtEndOfText = false };
            foreach (var step in TextGenerator.GenerateIds(model, [prompt], options, eosId: null))
                if ((step.Step + 1) % every == 0)
                {
                    genRss.Add(CollectedRssMiB()); genLive.Add(Stats.LiveTensors());
                    if (genRss.Count == Math.Max(1, samples / 10) + 1) genFirst = Stats.RssBreakdown(40);
                }
        }
        var genLast = Stats.RssBreakdown(40);
        gcGenerate = GC.CollectionCount(0) - gcGenerate - s_forced;
        var heap = NativeHeap.State ?? "not tuned";
        return [Series("memory_train_rss", trainRss, new JsonObject { ["rss_breakdown"] = Top(trainLast!), ["growth_by_mapping"] = Difference(trainFirst!, trainLast!), ["gen0_collections_unforced"] = gcTrain, ["native_heap"] = heap }),
                Series("memory_train_live_tensors", trainLive),
                Series("memory_generate_rss", genRss, new JsonObject { ["rss_breakdown"] = Top(genLast), ["growth_by_mapping"] = Difference(genFirst!, genLast), ["gen0_collections_unforced"] = gcGenerate, ["native_heap"] = heap }),
                Series("memory_generate_live_tensors", genLive)];
    }
}
