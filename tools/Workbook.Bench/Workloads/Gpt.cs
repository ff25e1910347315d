using Workbook.Gpt;
using Workbook.Data;
using Workbook.Runtime.Kernels;
using Workbook.Quantization;

namespace Workbook.Bench.Workloads;

/// <summary>Greedy decoding through the library's generation path (<see cref="TextGenerator.GenerateIds"/>).</summary>
public static class GreedyDecode
{
    /// <summary>
    /// Appends <paramref name="newTokens"/> greedy tokens to <paramref name="prompt"/> with <see cref="TextGenerator.GenerateIds"/>:
    /// with the KV cache the prompt runs once and each new token costs a one-position forward; without it every step
    /// reruns the whole sequence. No end-of-text stop, so exactly <paramref name="newTokens"/> are produced. Returns their ids.
    /// <paramref name="kernels"/> false keeps the model plain (no CPU accelerator).
    /// </summary>
    public static long[] Run(GptModel model, int[] prompt, int newTokens, bool useCache, bool kernels = true) =>
        TextGenerator.GenerateIds(model, [prompt], GenerationOptions.Greedy with { MaxNewTokens = newTokens, UseKvCache = useCache, StopAtEndOfText = false, CpuKernels = kernels }, eosId: null)
            .Select(step => step.Tokens[0]).ToArray();
}

/// <summary>
/// Workload 1: character-level GPT training with nanoGPT's CPU config (shakespeare_char on a laptop: 4 layers, 4 heads,
/// n_embd 128, block 64, batch 12, dropout 0, AdamW lr 1e-3 betas (0.9, 0.99) weight decay 0.1): tokens/s. The model is
/// the library's <see cref="GptModel"/>; the data are random ids over a 65-character vocabulary (the cost does not depend on them).
/// </summary>
public sealed class CharGptTrainWorkload() : Workload("chargpt",
    "char-level GPT training, nanoGPT CPU config (4L 4H 128, block 64, batch 12, AdamW): tokens/s",
    [new("chargpt_train", "tokens/s", true)])
{

    /// <inheritdoc/>
    public override JsonObject Parameters(bool smoke) => new()
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
    public override IReadOnlyList<Figure> Run(JsonObject p)
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
/// Workload 2: cached greedy decoding and prompt processing of a GPT-2, at two shapes: GPT-2 124M with random weights
/// (<see cref="Gpt2Workload"/>) and the shipped 6-layer/128 Shakespeare model (<see cref="ShippedWorkload"/>), each
/// plain (<c>F.linear</c> everywhere), with the library's CPU accelerator (the generator's default: the kernels only
/// where they measured faster), and with weight-only bfloat16 and int8 linear layers. The PyTorch side runs the same
/// model in float32; its bf16 row is <c>model.bfloat16()</c> and its int8 row <c>quantize_dynamic</c> (PyTorch's own CPU
/// int8 path: int8 activations too). The bound: every new token reads every float32 weight once, so tokens/s ≤ copy
/// bandwidth ÷ weight bytes (measured right after the decode, printed beside).
/// </summary>
/// <param name="name">Row prefix and --only name.</param>
/// <param name="description">One line saying what is measured.</param>
public abstract class DecodeWorkload(string name, string description) : Workload(name, description, RowsOf(name))
{
    static RowSpec[] RowsOf(string name) => [
        new($"{name}_decode_cache", "tokens/s", true), new($"{name}_decode_plain", "tokens/s", true),
        new($"{name}_decode_bf16", "tokens/s", true), new($"{name}_decode_int8", "tokens/s", true),
        new($"{name}_decode_nocache", "tokens/s", true), new($"{name}_decode_bound", "tokens/s", true, Compare: false),
        new($"{name}_forward_128", "ms", false), new($"{name}_forward_128_plain", "ms", false), new($"{name}_prefill_128", "ms", false),
    ];

    /// <summary>The model's shape, and the same decode/forward lengths for both models.</summary>
    public override JsonObject Parameters(bool smoke)
    {
        var (vocab, positions, layers, heads, embd) = Shape(smoke);
        return new()
        {
            ["vocab"] = vocab, ["n_positions"] = positions, ["n_layer"] = layers, ["n_head"] = heads, ["n_embd"] = embd,
            ["prompt"] = smoke ? 4 : 16, ["new_tokens"] = smoke ? 8 : 64, ["forward_T"] = smoke ? 16 : 128,
            ["reps"] = 3, ["reps_fast"] = smoke ? 3 : 5, ["copy_numel"] = smoke ? 1 << 20 : 64 << 20,
        };
    }

    /// <summary>vocabulary, context, layers, heads, width (smoke mode: what runs in seconds).</summary>
    protected abstract (int Vocab, int Positions, int Layers, int Heads, int Embd) Shape(bool smoke);

    /// <summary>The model to measure (the shipped one loads its checkpoint; GPT-2 124M is random).</summary>
    protected abstract GptModel Build(GptConfig config, out string weights);

    /// <inheritdoc/>
    public override IReadOnlyList<Figure> Run(JsonObject p)
    {
        // reps: the slow no-cache decode; repsFast: the cached decodes and the forwards, which are quick and noisier.
        int reps = p.Int("reps"), repsFast = p.Int("reps_fast"), newTokens = p.Int("new_tokens"), forwardT = p.Int("forward_T");
        torch.manual_seed(0);
        var config = new GptConfig { VocabSize = p.Int("vocab"), MaxLength = p.Int("n_positions"), NumLayers = p.Int("n_layer"), NumHeads = p.Int("n_head"), DModel = p.Int("n_embd") };
        using var model = Build(config, out var weights);
        model.eval();
        var rng = new Random(0);
        var prompt = Enumerable.Range(0, p.Int("prompt")).Select(_ => rng.Next(config.VocabSize)).ToArray();
        double[] Decode(GptModel m, bool kernels, out long[] tokens)
        {
            long[] last = [];
            GreedyDecode.Run(m, prompt, Math.Min(4, newTokens), useCache: true, kernels); // warm-up (and the accelerator's measurements)
            var tps = Stats.TimeReps(repsFast, 1, () => last = GreedyDecode.Run(m, prompt, newTokens, useCache: true, kernels)).Select(s => newTokens / s).ToArray();
            tokens = last;
            return tps;
        }
        // Plain and accelerated interleaved per repetition would be fairer still; measured back to back here, with the
        // plain run first and last so that a drift in the machine's load shows in the two plain figures.
        var plainA = Decode(model, false, out var plainTokens);
        var cached = Decode(model, true, out var a);
        // The bound: weight bytes per token (the tied embedding is read once, by the LM head) over copy bandwidth,
        // measured right after the decode because a VM's bandwidth drifts. Decoding only reads weights, so the read
        // bandwidth (sum) is reported too.
        long weightBytes = model.ParameterCount * sizeof(float);
        var bandwidth = BandwidthWorkload.Copy(p.Int("copy_numel"), 5, 3);
        var readBandwidth = BandwidthWorkload.Read(p.Int("copy_numel"), 5, 3);
        var bound = bandwidth.Select(gbs => gbs * 1e9 / weightBytes).ToArray();
        long[] b = [];
        GreedyDecode.Run(model, prompt, Math.Min(4, newTokens), useCache: false, kernels: true);
        var recompute = Stats.TimeReps(reps, 0, () => b = GreedyDecode.Run(model, prompt, newTokens, useCache: false, kernels: true)).Select(s => newTokens / s).ToArray();
        using var x = randint(config.VocabSize, [1, forwardT]);
        double[] Forward(bool lastOnly) => Stats.TimeReps(repsFast, 2, () => { using var _ = no_grad(); model.Forward(x, lastPositionOnly: lastOnly).Dispose(); }).Select(s => s * 1000).ToArray();
        var forwardPlain = Forward(false);
        double[] forward, prefill;
        string choices;
        using (var session = model.ForCpuInference())
        {
            forward = Forward(false);
            prefill = Forward(true);
            choices = string.Join("; ", InferenceLinear.Choices.Select(c => c.ToString()));
        }
        var plainB = Decode(model, false, out _);

        // Weight-only bf16 and int8 copies of the same model.
        double[] Quantized(WeightFormat format, out long[] tokens, out long bytes)
        {
            using var q = Build(config, out _);
            q.load_state_dict(model.state_dict());
            q.eval();
            q.QuantizeWeights(format);
            bytes = q.modules().OfType<QuantizedLinear>().Sum(l => l.Weight.numel() * l.Weight.ElementSize + (l.Scale?.numel() ?? 0) * 4);
            return Decode(q, true, out tokens);
        }
        var bf16 = Quantized(WeightFormat.BFloat16, out var bf16Tokens, out var bf16Bytes);
        var int8 = Quantized(WeightFormat.Int8, out var int8Tokens, out var int8Bytes);

        var plain = plainA.Concat(plainB).ToArray();
        double cacheMedian = Stats.Median(cached), plainMedian = Stats.Median(plain);
        var extra = new JsonObject
        {
            ["weights"] = weights, ["parameters"] = model.ParameterCount, ["weight_bytes_per_token"] = weightBytes,
            ["copy_bandwidth_gbs"] = Stats.Median(bandwidth), ["fraction_of_bound"] = cacheMedian / Stats.Median(bound),
            ["read_bandwidth_gbs"] = Stats.Median(readBandwidth), ["fraction_of_read_bound"] = cacheMedian * weightBytes / (Stats.Median(readBandwidth) * 1e9),
            ["cache_speedup"] = cacheMedian / Stats.Median(recompute),
            ["cache_and_recompute_agree"] = a.SequenceEqual(b), ["plain_and_accelerated_agree"] = a.SequenceEqual(plainTokens),
            ["decoder"] = "Workbook.Gpt.TextGenerator.GenerateIds (greedy); accelerated = GenerationOptions.CpuKernels (default), plain = CpuKernels false",
            ["accelerator_speedup_over_plain"] = cacheMedian / plainMedian,
            ["plain_first_and_last_runs"] = $"{Stats.Median(plainA):F1} / {Stats.Median(plainB):F1} tokens/s",
            ["accelerator_choices"] = choices,
            ["bf16_speedup_over_accelerated_fp32"] = Stats.Median(bf16) / cacheMedian, ["int8_speedup_over_accelerated_fp32"] = Stats.Median(int8) / cacheMedian,
            ["int8_speedup_over_plain_fp32"] = Stats.Median(int8) / plainMedian,
            ["bf16_linear_weight_bytes"] = bf16Bytes, ["int8_linear_weight_bytes"] = int8Bytes,
            ["bf16_greedy_tokens_equal_fp32"] = bf16Tokens.Zip(a).TakeWhile(t => t.First == t.Second).Count() + $" of {a.Length}",
            ["int8_greedy_tokens_equal_fp32"] = int8Tokens.Zip(a).TakeWhile(t => t.First == t.Second).Count() + $" of {a.Length}",
        };
        return
        [
            new Figure($"{Name}_decode_cache", cached, extra), new Figure($"{Name}_decode_plain", plain),
            new Figure($"{Name}_decode_bf16", bf16), new Figure($"{Name}_decode_int8", int8),
            new Figure($"{Name}_decode_nocache", recompute), new Figure($"{Name}_decode_bound", bound),
            new Figure($"{Name}_forward_128", forward), new Figure($"{Name}_forward_128_plain", forwardPlain), new Figure($"{Name}_prefill_128", prefill),
        ];
    }
}

/// <summary>GPT-2 124M, random weights: greedy decode 16+64, forward [1,128] (see <see cref="DecodeWorkload"/>).</summary>
public sealed class Gpt2Workload() : DecodeWorkload("gpt2",
    "GPT-2 124M random weights: greedy decode 16+64 plain / accelerated / bf16 / int8, no cache, forward [1,128] (full and last-position logits), bandwidth bound")
{
    /// <inheritdoc/>
    protected override (int Vocab, int Positions, int Layers, int Heads, int Embd) Shape(bool smoke) => smoke ? (512, 64, 2, 4, 64) : (50257, 1024, 12, 12, 768);

    /// <inheritdoc/>
    protected override GptModel Build(GptConfig config, out string weights)
    {
        weights = "random (seed 0)";
        torch.manual_seed(0);
        return new GptModel(config);
    }
}

/// <summary>
/// The shipped model's shape (6 layers, 4 heads, width 128, context 128, GPT-2's vocabulary), with its real weights on
/// our side (<c>data/gpt2-shakespeare</c>) and random weights of the same shape in PyTorch (the cost does not depend on
/// the values): greedy decode 16+64, forward [1,128]. The shape chapter 05 measures and readers run.
/// </summary>
public sealed class ShippedWorkload() : DecodeWorkload("shipped",
    "shipped 6-layer/128 GPT-2 (data/gpt2-shakespeare): greedy decode 16+64 plain / accelerated / bf16 / int8, no cache, forward [1,128], bandwidth bound")
{
    /// <inheritdoc/>
    protected override (int Vocab, int Positions, int Layers, int Heads, int Embd) Shape(bool smoke) => (50257, 128, 6, 4, 128);   // the same in smoke mode

    /// <inheritdoc/>
    protected override GptModel Build(GptConfig config, out string weights)
    {
        var folder = DataPaths.TryFindDataDirectory() is { } d ? Path.Combine(d, "gpt2-shakespeare") : null;
        if (folder is not null && File.Exists(Path.Combine(folder, "model.safetensors")))
        {
            weights = folder;
            return GptCheckpoint.Load(folder);
        }
        weights = "random (data/gpt2-shakespeare not found)";
        torch.manual_seed(0);
        return new GptModel(config);
    }
}
