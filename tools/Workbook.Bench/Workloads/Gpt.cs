using System.Text.Json.Nodes;
using TorchSharp;
using Workbook.Gpt;
using Workbook.Kernels;
using static TorchSharp.torch;

namespace Workbook.Bench.Workloads;

/// <summary>Greedy decoding through the library's generation path (<see cref="TextGenerator.GenerateIds"/>).</summary>
public static class GreedyDecode
{
    /// <summary>
    /// Appends <paramref name="newTokens"/> greedy tokens to <paramref name="prompt"/> with <see cref="TextGenerator.GenerateIds"/>:
    /// with the KV cache the prompt runs once and each new token costs a one-position forward; without it every step
    /// reruns the whole sequence. No end-of-text stop, so exactly <paramref name="newTokens"/> are produced. Returns their ids.
    /// </summary>
    public static long[] Run(GptModel model, int[] prompt, int newTokens, bool useCache) =>
        TextGenerator.GenerateIds(model, [prompt], GenerationOptions.Greedy with { MaxNewTokens = newTokens, UseKvCache = useCache, StopAtEndOfText = false }, eosId: null)
            .Select(step => step.Tokens[0]).ToArray();
}

/// <summary>
/// Workload 1: character-level GPT training with nanoGPT's CPU config (shakespeare_char on a laptop: 4 layers, 4 heads,
/// n_embd 128, block 64, batch 12, dropout 0, AdamW lr 1e-3 betas (0.9, 0.99) weight decay 0.1): tokens/s. The model is
/// the library's <see cref="GptModel"/>; the data are random ids over a 65-character vocabulary (the cost does not depend on them).
/// </summary>
public sealed class CharGptTrainWorkload : IWorkload
{
    /// <inheritdoc/>
    public string Name => "chargpt";
    /// <inheritdoc/>
    public string Description => "char-level GPT training, nanoGPT CPU config (4L 4H 128, block 64, batch 12, AdamW): tokens/s";
    /// <inheritdoc/>
    public IReadOnlyList<RowSpec> Rows { get; } = [new("chargpt_train", "tokens/s", true)];
    /// <inheritdoc/>
    public bool HasPyTorch => true;

    /// <inheritdoc/>
    public JsonObject Parameters(bool smoke) => new()
    {
        ["vocab"] = 65, ["n_layer"] = smoke ? 2 : 4, ["n_head"] = 4, ["n_embd"] = smoke ? 32 : 128,
        ["block"] = smoke ? 16 : 64, ["batch"] = smoke ? 4 : 12, ["steps"] = smoke ? 2 : 25, ["reps"] = smoke ? 3 : 5,
        ["lr"] = 1e-3, ["weight_decay"] = 0.1,
    };

    /// <summary>The config the parameters describe.</summary>
    public static GptConfig Config(JsonObject p) => new()
    {
        VocabSize = p.Int("vocab"), MaxLength = p.Int("block"), NumLayers = p.Int("n_layer"), NumHeads = p.Int("n_head"), DModel = p.Int("n_embd"), Dropout = 0,
    };

    /// <inheritdoc/>
    public IReadOnlyList<Figure> Run(JsonObject p)
    {
        int batch = p.Int("batch"), block = p.Int("block"), steps = p.Int("steps");
        torch.manual_seed(0);
        var config = Config(p);
        using var model = new GptModel(config);
        model.train();
        using var opt = optim.AdamW(model.parameters(), lr: p.Dbl("lr"), beta1: 0.9, beta2: 0.99, weight_decay: p.Dbl("weight_decay"));
        // A few fixed batches of (input, next-token target), cycled: the cost of a step does not depend on the ids.
        var batches = Enumerable.Range(0, 4).Select(_ =>
        {
            var seq = randint(config.VocabSize, [batch, block + 1]);
            var pair = (X: seq[.., ..block].contiguous(), Y: seq[.., 1..].contiguous());
            seq.Dispose();
            return pair;
        }).ToArray();
        int step = 0;
        void Train()
        {
            for (int s = 0; s < steps; s++, step++)
            {
                using var scope = NewDisposeScope();
                var (x, y) = batches[step % batches.Length];
                model.zero_grad(); // set_to_none (Optimizer.zero_grad() in TorchSharp fills zeros instead)
                var loss = GptModel.Loss(model.forward(x), y);
                loss.backward();
                opt.step();
            }
        }
        var seconds = Stats.TimeReps(p.Int("reps"), warmup: 2, Train); // two, as for every training workload

        // Where a step's time goes (one more pass, phases timed apart): forward+loss, backward, optimizer.
        double fwd = 0, bwd = 0, opt_ = 0;
        for (int s = 0; s < steps; s++)
        {
            using var scope = NewDisposeScope();
            var (x, y) = batches[s % batches.Length];
            var sw = System.Diagnostics.Stopwatch.StartNew();
            model.zero_grad(); // set_to_none (Optimizer.zero_grad() in TorchSharp fills zeros instead)
            var loss = GptModel.Loss(model.forward(x), y);
            fwd += sw.Elapsed.TotalMilliseconds; sw.Restart();
            loss.backward();
            bwd += sw.Elapsed.TotalMilliseconds; sw.Restart();
            opt.step();
            opt_ += sw.Elapsed.TotalMilliseconds;
        }
        foreach (var (x, y) in batches) { x.Dispose(); y.Dispose(); }
        return [new Figure("chargpt_train", seconds.Select(t => (double)batch * block * steps / t).ToArray(),
            new JsonObject
            {
                ["parameters"] = model.ParameterCount, ["model"] = "Workbook.Gpt.GptModel",
                ["forward_ms_per_step"] = fwd / steps, ["backward_ms_per_step"] = bwd / steps, ["optimizer_ms_per_step"] = opt_ / steps,
            })];
    }
}

/// <summary>
/// Workload 2: GPT-2 124M (random weights): greedy decoding of 64 tokens after a 16-token prompt with and without the
/// KV cache (tokens/s), the forward latency of a [1, 128] batch, and the memory-bandwidth bound of decoding: every new
/// token reads every weight once, so tokens/s ≤ copy bandwidth ÷ weight bytes (measured here, printed beside).
/// </summary>
public sealed class Gpt2Workload : IWorkload
{
    /// <inheritdoc/>
    public string Name => "gpt2";
    /// <inheritdoc/>
    public string Description => "GPT-2 124M random weights: greedy decode 16+64 with/without KV cache, forward [1,128], bandwidth bound";
    /// <inheritdoc/>
    public IReadOnlyList<RowSpec> Rows { get; } =
    [
        new("gpt2_decode_cache", "tokens/s", true), new("gpt2_decode_nocache", "tokens/s", true),
        new("gpt2_decode_bound", "tokens/s", true, Compare: false), new("gpt2_forward_128", "ms", false),
    ];
    /// <inheritdoc/>
    public bool HasPyTorch => true;

    /// <inheritdoc/>
    public JsonObject Parameters(bool smoke) => smoke
        ? new() { ["vocab"] = 512, ["n_positions"] = 64, ["n_layer"] = 2, ["n_head"] = 4, ["n_embd"] = 64, ["prompt"] = 4, ["new_tokens"] = 8, ["forward_T"] = 16, ["reps"] = 3, ["reps_fast"] = 3, ["copy_numel"] = 1 << 20 }
        : new() { ["vocab"] = 50257, ["n_positions"] = 1024, ["n_layer"] = 12, ["n_head"] = 12, ["n_embd"] = 768, ["prompt"] = 16, ["new_tokens"] = 64, ["forward_T"] = 128, ["reps"] = 3, ["reps_fast"] = 5, ["copy_numel"] = 64 << 20 };

    /// <inheritdoc/>
    public IReadOnlyList<Figure> Run(JsonObject p)
    {
        // reps: the slow no-cache decode; repsFast: the cached decode and the forward, which are quick and noisier.
        int reps = p.Int("reps"), repsFast = p.Int("reps_fast"), newTokens = p.Int("new_tokens");
        torch.manual_seed(0);
        var config = new GptConfig { VocabSize = p.Int("vocab"), MaxLength = p.Int("n_positions"), NumLayers = p.Int("n_layer"), NumHeads = p.Int("n_head"), DModel = p.Int("n_embd") };
        using var model = new GptModel(config);
        model.eval();
        var rng = new Random(0);
        var prompt = Enumerable.Range(0, p.Int("prompt")).Select(_ => rng.Next(config.VocabSize)).ToArray();
        long[] a = [], b = [];
        // Warm-up on a few tokens only (a full no-cache run is the slowest part of the bench).
        GreedyDecode.Run(model, prompt, Math.Min(4, newTokens), useCache: true);
        GreedyDecode.Run(model, prompt, Math.Min(4, newTokens), useCache: false);
        var cached = Stats.TimeReps(repsFast, 1, () => a = GreedyDecode.Run(model, prompt, newTokens, useCache: true)).Select(s => newTokens / s).ToArray();
        // The bound: weights bytes per token (the tied embedding is read once, by the LM head) over copy bandwidth,
        // measured right after the decode because this VM's bandwidth drifts (43–84 GB/s within an hour). Decoding
        // only reads weights, so the read bandwidth (sum) is reported too: on some runs it exceeds the copy figure.
        long weightBytes = model.ParameterCount * sizeof(float);
        var bandwidth = BandwidthWorkload.Copy(p.Int("copy_numel"), 5, 3);
        var readBandwidth = BandwidthWorkload.Read(p.Int("copy_numel"), 5, 3);
        var bound = bandwidth.Select(gbs => gbs * 1e9 / weightBytes).ToArray();
        var recompute = Stats.TimeReps(reps, 0, () => b = GreedyDecode.Run(model, prompt, newTokens, useCache: false)).Select(s => newTokens / s).ToArray();
        using var x = randint(config.VocabSize, [1, p.Int("forward_T")]);
        var forward = Stats.TimeReps(repsFast, 2, () => { using var _ = no_grad(); model.forward(x).Dispose(); }).Select(s => s * 1000).ToArray();

        // The same decode and forward with the library's CPU kernels off (plain F.linear everywhere), for the record:
        // what the MatVec kernel and the oneDNN path buy on this machine.
        InferenceLinear.Enabled = false;
        double[] cachedPlain, forwardPlain;
        try
        {
            cachedPlain = Stats.TimeReps(repsFast, 1, () => GreedyDecode.Run(model, prompt, newTokens, useCache: true)).Select(s => newTokens / s).ToArray();
            forwardPlain = Stats.TimeReps(repsFast, 2, () => { using var _ = no_grad(); model.forward(x).Dispose(); }).Select(s => s * 1000).ToArray();
        }
        finally { InferenceLinear.Enabled = true; }

        double cacheMedian = Stats.Median(cached);
        var extra = new JsonObject
        {
            ["parameters"] = model.ParameterCount, ["weight_bytes_per_token"] = weightBytes,
            ["copy_bandwidth_gbs"] = Stats.Median(bandwidth), ["fraction_of_bound"] = cacheMedian / Stats.Median(bound),
            ["read_bandwidth_gbs"] = Stats.Median(readBandwidth), ["fraction_of_read_bound"] = cacheMedian * weightBytes / (Stats.Median(readBandwidth) * 1e9),
            ["cache_speedup"] = cacheMedian / Stats.Median(recompute),
            ["cache_and_recompute_agree"] = a.SequenceEqual(b), ["decoder"] = "Workbook.Gpt.TextGenerator.GenerateIds (greedy)",
            ["kernels_off_decode_cache_tokens_per_s"] = Stats.Median(cachedPlain), ["kernels_off_forward_128_ms"] = Stats.Median(forwardPlain),
            ["onednn_calibration"] = $"F.linear {InferenceLinear.Calibration.BlasMs:F2} ms, oneDNN 1x1 conv {InferenceLinear.Calibration.OneDnnMs:F2} ms: "
                + (InferenceLinear.Calibration.UseOneDnn ? "many-row products use oneDNN" : "many-row products use the BLAS"),
        };
        return
        [
            new Figure("gpt2_decode_cache", cached, extra), new Figure("gpt2_decode_nocache", recompute),
            new Figure("gpt2_decode_bound", bound), new Figure("gpt2_forward_128", forward),
        ];
    }
}
