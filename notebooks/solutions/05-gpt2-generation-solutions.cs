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

// %% [markdown]
// ## 4. One layer is not enough
//
// The chapter's copier, its data and its scores again, trained with one layer and with two for the same 400 steps:

// %%
using Workbook.Training;

sealed class RepeatedTokens(int vocab, int copy, int batchSize, int batches, int seed) : IBatchSource
{
    public int BatchCount => batches;
    public long SampleCount => (long)batches * batchSize;
    public IEnumerable<Batch> Batches(int epoch)
    {
        var random = new Random(seed * 7919 + epoch);
        for (int b = 0; b < batches; b++)
        {
            int T = 2 * copy - 1;
            var x = new long[batchSize * T]; var y = new long[batchSize * T];
            for (int r = 0; r < batchSize; r++)
            {
                var seq = Enumerable.Range(0, copy).Select(_ => (long)random.Next(vocab)).ToArray();
                var full = seq.Concat(seq).ToArray();
                for (int t = 0; t < T; t++) { x[r * T + t] = full[t]; y[r * T + t] = full[t + 1]; }
            }
            yield return new Batch(tensor(x, new long[] { batchSize, T }), tensor(y, new long[] { batchSize, T }));
        }
    }
}
const int ToyVocab = 64, ToyCopy = 16;
GptModel TrainCopier(int layers, int steps)
{
    Notebook.Reseed(3);
    var toy = new GptModel(new GptConfig { NLayer = layers, NHead = 2, NEmbd = 64, NPositions = 2 * ToyCopy, VocabSize = ToyVocab, Dropout = 0 });
    new Trainer(toy, Optimizers.AdamW(toy.parameters(), lr: 1e-3, weightDecay: 0), GptModel.Loss)
    {
        Epochs = 1, Schedule = LRSchedule.WarmupCosine(1e-3, warmupSteps: 20, totalSteps: steps, minLr: 1e-4), ClipGradNorm = 1.0,
    }.Fit(new RepeatedTokens(ToyVocab, ToyCopy, batchSize: 32, batches: steps, seed: 1));
    toy.eval();
    return toy;
}
var random = new Random(11);
var seqs = tensor(Enumerable.Range(0, 64).SelectMany(_ => { var s = Enumerable.Range(0, ToyCopy).Select(_ => (long)random.Next(ToyVocab)).ToArray(); return s.Concat(s); }).ToArray(), new long[] { 64, 2 * ToyCopy });
(double First, double Second, double Induction) Measure(GptModel m)
{
    using var _ = no_grad();
    var (logits, attention) = m.ForwardWithAttention(seqs);
    var nll = -logits.log_softmax(-1)[.., ..^1].gather(2, seqs[.., 1..].unsqueeze(2)).squeeze(2);
    double induction = attention.SelectMany(a => Enumerable.Range(0, (int)a.shape[1]).Select(h => (double)a[.., h].diagonal(-(ToyCopy - 1), 1, 2)[.., 1..].mean().item<float>())).Max();
    return (nll[.., ..(ToyCopy - 1)].mean().item<float>(), nll[.., ToyCopy..].mean().item<float>(), induction);
}
var steps = Notebook.Pick(quick: 300, full: 400);
var results = new[] { 1, 2 }.Select(layers => (Layers: layers, R: Measure(TrainCopier(layers, steps)))).ToList();
display(new DataFrame(
    new Int32DataFrameColumn("layers", results.Select(r => r.Layers)),
    new DoubleDataFrameColumn("best induction score", results.Select(r => Math.Round(r.R.Induction, 3))),
    new DoubleDataFrameColumn("loss, first copy", results.Select(r => Math.Round(r.R.First, 3))),
    new DoubleDataFrameColumn("loss, second copy", results.Select(r => Math.Round(r.R.Second, 3)))));
display(Claim.AtLeast("one layer: the second copy stays above 2 nats", results[0].R.Second, full: 2, quick: 2));
Claim.AtLeast("two layers copy: at least 2 nats lower on the second copy than one layer", results[0].R.Second - results[1].R.Second, full: 2, quick: 2)

// %% [markdown]
// To copy, a head at position i must find the position j whose *previous* token equals token i, and read token j. Attention scores compare a query at i with a key at j, and a key in the first layer can only contain what is at j itself (its token and position), not what was at j − 1. So one layer can at best attend to earlier occurrences of the *same* token, which tells it nothing about the next one. Two layers split the job: layer 0's previous-token head writes "my predecessor was X" into each position, and layer 1's induction head matches its query "I am X" against that key (K-composition, Elhage et al. 2021). The one-layer model learns the unigram statistics of the first copy and nothing more: both copies stay near ln 64 = 4.16 nats.
