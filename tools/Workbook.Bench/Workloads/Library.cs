using Workbook.Gpt;
using Workbook.Quantization;

namespace Workbook.Bench.Workloads;

/// <summary>
/// The library's own figures that the chapters promise (no PyTorch counterpart): our multi-head attention against
/// TorchSharp's <c>nn.MultiheadAttention</c> with the same weights (issue 3), SimpleCNN inference images/s (issue 5),
/// and the shipped Shakespeare model's validation loss in float32 and with weight-only bf16 and int8 weights (issue 18).
/// </summary>
public sealed class LibraryWorkload() : Workload("library",
    "library figures: MHA ours vs TorchSharp [8,256,512] h=8 (ms), SimpleCNN inference (images/s), shipped GPT validation loss fp32 / bf16 / int8",
    [
        new("mha_ours", "ms", false, Compare: false), new("mha_torchsharp", "ms", false, Compare: false),
        new("cnn_inference", "images/s", true, Compare: false),
        new("shipped_val_loss_fp32", "nats/token", false, Compare: false), new("shipped_val_loss_bf16", "nats/token", false, Compare: false),
        new("shipped_val_loss_int8", "nats/token", false, Compare: false),
    ])
{
    /// <inheritdoc/>
    public override bool HasPyTorch => false;

    /// <inheritdoc/>
    public override JsonObject Parameters(bool smoke) => new()
    {
        ["mha"] = smoke ? new JsonArray(2, 16, 32, 4) : new JsonArray(8, 256, 512, 8),
        ["cnn_batch"] = smoke ? 16 : 256, ["val_tokens"] = smoke ? 300 : 1_000_000,
        ["iters"] = smoke ? 1 : 5, ["reps"] = 3,
    };

    /// <inheritdoc/>
    public override IReadOnlyList<Figure> Run(JsonObject p)
    {
        int iters = p.Int("iters"), reps = p.Int("reps");
        torch.manual_seed(0);
        using var _ = no_grad();
        var figures = new List<Figure>();

        // Multi-head attention, self-attention, no mask, same packed weights in both modules.
        var m = p.Longs("mha");
        long B = m[0], T = m[1], E = m[2], H = m[3];
        using var ours = new Attention.MultiheadAttention(E, H);
        using var theirs = nn.MultiheadAttention(E, H);
        theirs.load_state_dict(ours.state_dict()); // same PyTorch parameter layout
        ours.eval(); theirs.eval();
        using var x = randn(B, T, E);
        using var xt = x.transpose(0, 1).contiguous(); // TorchSharp's module is sequence-first [T, B, E]
        double[] Ms(Action f) => Stats.TimeReps(reps, warmup: 1, () =>
        {
            for (int i = 0; i < iters; i++) { using var scope = NewDisposeScope(); f(); }
        }).Select(s => s * 1000 / iters).ToArray();
        var oursMs = Ms(() => ours.forward(x, x, x, needWeights: false));
        var theirsMs = Ms(() => theirs.call(xt, xt, xt, null, false, null));
        using var a = ours.forward(x, x, x, needWeights: false).Output;
        using var b = theirs.call(xt, xt, xt, null, false, null).Item1.transpose(0, 1);
        using var diff = (a - b).abs().max();
        figures.Add(new Figure("mha_ours", oursMs, new JsonObject { ["max_abs_diff_vs_torchsharp"] = diff.item<float>() }));
        figures.Add(new Figure("mha_torchsharp", theirsMs));

        // SimpleCNN inference on 28×28 images, eval mode.
        int cb = p.Int("cnn_batch");
        using var cnn = new Vision.SimpleCNN();
        cnn.eval();
        using var images = randn(cb, 1, 28, 28);
        figures.Add(new Figure("cnn_inference", Stats.TimeReps(reps, warmup: 1, () =>
        {
            for (int i = 0; i < iters; i++) { using var scope = NewDisposeScope(); cnn.forward(images); }
        }).Select(s => cb * iters / s).ToArray()));

        // The shipped model's validation loss on the whole validation split of tiny Shakespeare (the last 10 % of the
        // GPT-2 tokens), in float32 and with weight-only bf16 and int8 linear layers: what quantization costs in quality.
        var folder = Data.DataPaths.TryFindDataDirectory() is { } d ? Path.Combine(d, "gpt2-shakespeare") : null;
        if (folder is not null && Directory.Exists(folder))
        {
            var tokens = Text.Gpt2Tokenizer.Default.Encode(File.ReadAllText(Data.DataPaths.File("tinyshakespeare", "input.txt")));
            var val = new TokenDataset(tokens, valFraction: 0.1).Val.Take(p.Int("val_tokens")).ToArray();
            var losses = new JsonObject();
            foreach (var (row, format) in new (string, WeightFormat?)[] { ("shipped_val_loss_fp32", null), ("shipped_val_loss_bf16", WeightFormat.BFloat16), ("shipped_val_loss_int8", WeightFormat.Int8) })
            {
                using var model = GptCheckpoint.Load(folder);
                if (format is { } f) model.QuantizeWeights(f);
                var sw = System.Diagnostics.Stopwatch.StartNew();
                double loss = GptEvaluation.SplitLoss(model, val, blockSize: 128);
                losses[row] = loss;
                figures.Add(new Figure(row, [loss, loss, loss], new JsonObject
                {
                    ["perplexity"] = Math.Exp(loss), ["tokens"] = val.Length, ["seconds"] = sw.Elapsed.TotalSeconds,
                    ["note"] = "deterministic: the same value three times (the figure is a loss, not a timing)",
                }));
            }
            double fp32 = losses["shipped_val_loss_fp32"]!.GetValue<double>();
            foreach (var fig in figures.Where(f => f.Name.StartsWith("shipped_val_loss_", StringComparison.Ordinal)))
                fig.Extra!["perplexity_increase_pct"] = (Math.Exp(fig.Median - fp32) - 1) * 100;
        }
        return figures;
    }
}
