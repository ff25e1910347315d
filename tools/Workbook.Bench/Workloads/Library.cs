using System.Text.Json.Nodes;
using TorchSharp;
using Workbook.Gpt;
using static TorchSharp.torch;

namespace Workbook.Bench.Workloads;

/// <summary>
/// The library's own figures that the chapters promise (no PyTorch counterpart): our multi-head attention against
/// TorchSharp's <c>nn.MultiheadAttention</c> with the same weights (issue 3), SimpleCNN inference images/s (issue 5),
/// and generation with and without the KV cache plus prompt processing for the shipped Shakespeare model (issue 7).
/// </summary>
public sealed class LibraryWorkload : IWorkload
{
    /// <inheritdoc/>
    public string Name => "library";
    /// <inheritdoc/>
    public string Description => "library figures: MHA ours vs TorchSharp [8,256,512] h=8 (ms), SimpleCNN inference (images/s), shipped GPT decode/prompt (tokens/s)";
    /// <inheritdoc/>
    public IReadOnlyList<RowSpec> Rows { get; } =
    [
        new("mha_ours", "ms", false, Compare: false), new("mha_torchsharp", "ms", false, Compare: false),
        new("cnn_inference", "images/s", true, Compare: false),
        new("shipped_decode_cache", "tokens/s", true, Compare: false), new("shipped_decode_nocache", "tokens/s", true, Compare: false),
        new("shipped_prompt", "tokens/s", true, Compare: false),
    ];
    /// <inheritdoc/>
    public bool HasPyTorch => false;

    /// <inheritdoc/>
    public JsonObject Parameters(bool smoke) => new()
    {
        ["mha"] = smoke ? new JsonArray(2, 16, 32, 4) : new JsonArray(8, 256, 512, 8),
        ["cnn_batch"] = smoke ? 16 : 256, ["prompt"] = 16, ["new_tokens"] = smoke ? 4 : 64, ["prompt_T"] = smoke ? 16 : 128,
        ["iters"] = smoke ? 1 : 5, ["reps"] = 3,
    };

    /// <inheritdoc/>
    public IReadOnlyList<Figure> Run(JsonObject p)
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

        // The shipped model: greedy decode with and without the cache, and prompt processing.
        var folder = Data.DataPaths.TryFindDataDirectory() is { } d ? Path.Combine(d, "gpt2-shakespeare") : null;
        if (folder is not null && Directory.Exists(folder))
        {
            using var model = GptCheckpoint.Load(folder);
            model.eval();
            int promptLen = p.Int("prompt"), newTokens = p.Int("new_tokens"), promptT = p.Int("prompt_T");
            var prompt = Enumerable.Range(0, promptLen).Select(i => 100 + i * 7).ToArray();
            double[] Tps(bool cache) => Stats.TimeReps(reps, warmup: 1, () => GreedyDecode.Run(model, prompt, newTokens, cache))
                .Select(s => newTokens / s).ToArray();
            figures.Add(new Figure("shipped_decode_cache", Tps(true), new JsonObject { ["model"] = folder }));
            figures.Add(new Figure("shipped_decode_nocache", Tps(false)));
            using var ids = randint(0, 11_000, new long[] { 1, promptT });
            figures.Add(new Figure("shipped_prompt", Stats.TimeReps(reps, warmup: 1, () =>
            {
                for (int i = 0; i < iters; i++) { using var scope = NewDisposeScope(); model.Forward(ids, lastPositionOnly: true); }
            }).Select(s => promptT * iters / s).ToArray()));
        }
        return figures;
    }
}
