// ---
// jupyter:
//   jupytext:
//     text_representation:
//       extension: .cs
//       format_name: percent
//   kernelspec:
//     display_name: .NET (C#)
//     language: C#
//     name: .net-csharp
// ---

// %% [markdown]
// # 05 · Solutions: beam search, min-p sampling, context length
//
// Solutions to the exercises of `05-gpt2-generation.ipynb`, on the shipped Shakespeare GPT-2.

// %%
#r "nuget: Workbook, 0.1.0"
#r "nuget: TorchSharp-cpu, 0.107.0"
using TorchSharp;
using static TorchSharp.torch;
using Workbook;
using Workbook.Plots;
Notebook.Setup(seed: 42)

// %%
using System.IO;
using Microsoft.Data.Analysis;
using Workbook.Data;
using Workbook.Gpt;
using Workbook.Text;
var tok = Gpt2Tokenizer.Default;
var model = GptHub.FromPretrained(Path.GetDirectoryName(DataPaths.File("gpt2-shakespeare", "model.safetensors"))!);
var generator = new TextGenerator(model, tok);
model.Config

// %% [markdown]
// ## 1. Beam search
//
// Keep the `width` best partial sequences by total log-probability. At each step every beam proposes its `width` most likely next tokens (more could never make it into the top `width`), and the best `width` of all candidates survive. The beams have equal length, so one batched forward pass scores them all.

// %%
(List<int> Ids, double LogProb) BeamSearch(int[] prompt, int width, int steps)
{
    var beams = new List<(List<int> Ids, double LogProb)> { (new List<int>(), 0.0) };
    for (int step = 0; step < steps; step++)
    {
        var candidates = new List<(List<int> Ids, double LogProb)>();
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var batch = tensor(beams.SelectMany(b => prompt.Concat(b.Ids)).Select(i => (long)i).ToArray(), [beams.Count, prompt.Length + step]);
        var logProbs = model.forward(batch).select(1, -1).log_softmax(-1);
        var (values, indexes) = logProbs.topk(width, dim: -1);
        for (int b = 0; b < beams.Count; b++)
            for (int j = 0; j < width; j++)
                candidates.Add((beams[b].Ids.Append((int)indexes[b, j].item<long>()).ToList(), beams[b].LogProb + values[b, j].item<float>()));
        beams = candidates.OrderByDescending(c => c.LogProb).Take(width).ToList();
    }
    return beams[0];
}

double LogProb(int[] prompt, IReadOnlyList<int> continuation) // teacher-forced score of a continuation
{
    using var scope = NewDisposeScope();
    using var _ = no_grad();
    var all = prompt.Concat(continuation).Select(i => (long)i).ToArray();
    var logProbs = model.forward(tensor(all).unsqueeze(0))[0].log_softmax(-1);
    return continuation.Select((id, k) => (double)logProbs[prompt.Length - 1 + k, id].item<float>()).Sum();
}

var prompt = tok.Encode("ROMEO:\n");
int steps = Notebook.Pick(quick: 8, full: 20);
var greedy = generator.Generate("ROMEO:\n", GenerationOptions.Greedy with { MaxNewTokens = steps, StopAtEndOfText = false });
var beam = BeamSearch(prompt, width: 4, steps);
new DataFrame(
    new StringDataFrameColumn("decoder", ["greedy", "beam search (4)"]),
    new DoubleDataFrameColumn("total log-prob", [Math.Round(LogProb(prompt, greedy.TokenIds), 3), Math.Round(beam.LogProb, 3)]),
    new StringDataFrameColumn("text", [greedy.Text.Replace("\n", " ↵ "), tok.Decode(beam.Ids).Replace("\n", " ↵ ")]))

// %% [markdown]
// Beam search finds a sequence at least as likely as greedy's (greedy's path is one of the candidates it could keep). The text is usually *more* repetitive and bland: the most likely sequence of a language model is rarely the most human-like one, which is why open-ended generation samples instead (Holtzman et al. 2019).

// %%
$"beam ≥ greedy: {beam.LogProb >= LogProb(prompt, greedy.TokenIds) - 1e-4}"

// %% [markdown]
// ## 2. Min-p sampling
//
// Keep the tokens whose probability is at least `minP` times the top probability. The threshold scales with the model's confidence: a sure model keeps one or two tokens, an unsure one many.

// %%
Tensor MinP(Tensor logits, double minP)
{
    var p = logits.softmax(-1);
    var threshold = p.max(-1, keepdim: true).values * minP;
    return logits.masked_fill(p.lt(threshold), double.NegativeInfinity);
}
string[] prompts = ["ROMEO:\n", "KING RICHARD III:\nNow is the winter of our", "First Citizen:\nWe are accounted poor", "O", "JULIET:\nWherefore art thou"];
var rows = prompts.Select(p =>
{
    using var _ = no_grad();
    var logits = model.forward(tensor(tok.Encode(p).Select(i => (long)i).ToArray()).unsqueeze(0)).select(1, -1);
    var topProb = logits.softmax(-1).max().item<float>();
    long keptMinP = MinP(logits, 0.1).isfinite().sum().item<long>();
    long keptTopP = Sampling.TopP(logits, 0.9).isfinite().sum().item<long>();
    return (Prompt: p.Replace("\n", " ↵ "), TopProb: Math.Round(topProb, 3), MinP: keptMinP, TopP: keptTopP);
}).ToList();
new DataFrame(
    new StringDataFrameColumn("prompt", rows.Select(r => r.Prompt)),
    new DoubleDataFrameColumn("top probability", rows.Select(r => r.TopProb)),
    new Int64DataFrameColumn("kept by min-p 0.1", rows.Select(r => r.MinP)),
    new Int64DataFrameColumn("kept by top-p 0.9", rows.Select(r => r.TopP)))

// %% [markdown]
// Min-p keeps far fewer tokens than top-p 0.9 on every prompt. This small model spreads much of its probability thinly over thousands of tokens, so top-p must take hundreds or thousands of unlikely tokens from the tail to collect 90% of the mass, while min-p cuts everything below a tenth of the favourite. The difference is largest when the model is confident ("O": a high top probability): min-p keeps one or two tokens, top-p still keeps the long tail.
//
// ## 3. Loss against context length
//
// The same validation tokens, cut into windows of different lengths. A position's prediction can only use the tokens before it in its window, so short windows starve the model of context.

// %%
var text = File.ReadAllText(DataPaths.File("tinyshakespeare", "input.txt"));
var val = new TokenDataset(tok.Encode(text), 0.1).Val.Take(Notebook.Pick(quick: 1024, full: 16384)).ToArray();
int[] windows = [8, 16, 32, 64, 128];
var lossByWindow = windows.Select(w => GptEvaluation.SplitLoss(model, val, w)).ToList();
Plot.Line(windows.Select(w => (double)w).ToList(), lossByWindow, "validation loss", title: "Loss against window length", xTitle: "window (tokens)", yTitle: "nats/token")

// %% [markdown]
// The loss falls with the window because more positions see more of their past (in a window of 8, the average position sees 3.5 earlier tokens). The gains shrink: most of what a small model uses is local (the current line, the speaker), and it was trained with 128-token windows, so it has not learned to exploit longer-range structure.
