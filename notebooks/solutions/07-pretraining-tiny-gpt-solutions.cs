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
// # 07 · Solutions: compact head, dropout, learning-rate schedule
//
// Solutions to the exercises of `07-pretraining-tiny-gpt.ipynb`. The runs are short (Quick profile: a few dozen steps); the Full profile trains longer and the differences grow.

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
var ids = tok.Encode(File.ReadAllText(DataPaths.File("tinyshakespeare", "input.txt")));
var vocab = CompactVocabulary.FromTokens(ids, tok.VocabSize);
var data = new TokenDataset(ids, 0.1);
var compactData = new TokenDataset(vocab.ToCompact(ids), 0.1);
var architecture = new GptConfig { NumLayers = 6, NumHeads = 4, DModel = 128, MaxLength = 128, Dropout = 0.2 };
$"{vocab.Size:N0} of {vocab.FullVocabSize:N0} tokens used"

// %% [markdown]
// ## 1. Compact versus full head
//
// Start both from the *same* parameters (without dropout, so both compute the same function): the full model is `Expand` of the compact one (zero rows for unused tokens). With the same seed they draw the same batches (the two splits have the same length), so their first losses must agree; after that the full model also updates the unused rows, so the runs drift apart slightly.

// %%
using Workbook.Training;
int quickSteps = Notebook.Pick(quick: 3, full: 20), quickBatch = Notebook.Pick(quick: 4, full: 8);
// A few steps by the Trainer, evaluating (here: measuring throughput) after every step; no validation source.
TrainingHistory QuickRun(GptModel m, int[] tokens, Func<Tensor, Tensor, Tensor> loss) =>
    new Trainer(m, Optimizers.AdamWMatrixDecay(m, lr: 1e-3, beta2: 0.99), loss)
    {
        MaxSteps = quickSteps, EvalEvery = 1, ClipGradNorm = 1.0, Schedule = LRSchedule.WarmupCosine(1e-3, 2, quickSteps, 1e-4),
    }.Fit(TokenWindows.Random(tokens, quickBatch, 64, batchesPerEpoch: quickSteps, seed: 1337));
Notebook.Reseed(1);
var compact = new GptModel(vocab.CompactConfig(architecture with { Dropout = 0 })); // no dropout: identical first steps
var full = vocab.Expand(compact);
var compactRun = QuickRun(compact, compactData.Train, vocab.CrossEntropy);
var fullRun = QuickRun(full, data.Train, GptModel.Loss);
double Median(IEnumerable<double> xs) { var s = xs.Order().ToList(); return s[s.Count / 2]; }
// Speed, timed fairly: one forward + backward of each model on the same windows, alternated, so that both see the same
// load on the machine (two runs one after the other can differ by more than the head does on a busy machine).
var (tx, ty) = TokenWindows.Random(compactData.Train, quickBatch, 64, batchesPerEpoch: 1, seed: 3).Batches(0).First();
var fullTy = torch.tensor(ty.data<long>().Select(i => (long)vocab.ToFull((int)i)).ToArray()).view(ty.shape);
var fullTx = torch.tensor(tx.data<long>().Select(i => (long)vocab.ToFull((int)i)).ToArray()).view(tx.shape);
double StepSeconds(GptModel m, Tensor x, Tensor y, Func<Tensor, Tensor, Tensor> loss)
{
    using var scope = torch.NewDisposeScope();
    var clock = System.Diagnostics.Stopwatch.StartNew();
    m.zero_grad();
    loss(m.forward(x), y).backward();
    return clock.Elapsed.TotalSeconds;
}
var ratios = new List<double>();
for (int round = 0; round < Notebook.Pick(quick: 3, full: 15); round++)
{
    double c = StepSeconds(compact, tx, ty, vocab.CrossEntropy), f = StepSeconds(full, fullTx, fullTy, GptModel.Loss);
    if (round > 0) ratios.Add(f / c);   // the first round warms both up
}
double tokensPerStep = quickBatch * 64.0, speedRatio = Median(ratios);
double fullSpeed = tokensPerStep / Median(Enumerable.Range(0, 5).Select(_ => StepSeconds(full, fullTx, fullTy, GptModel.Loss))), compactSpeed = fullSpeed * speedRatio;
display(new DataFrame(
    new StringDataFrameColumn("head", ["compact (11,706 + 1)", "full (50,257)"]),
    new DoubleDataFrameColumn("first loss", [Math.Round(compactRun.Steps[0].Loss, 5), Math.Round(fullRun.Steps[0].Loss, 5)]),
    new DoubleDataFrameColumn("tokens/s, forward + backward (median)", [Math.Round(compactSpeed), Math.Round(fullSpeed)])));
display(Claim.AtMost("the first losses agree", Math.Abs(compactRun.Steps[0].Loss - fullRun.Steps[0].Loss), full: 1e-4, quick: 1e-4));
Claim.AtLeast("one forward + backward is faster with the compact head (median ratio of alternated timings)", speedRatio, full: 1.1, quick: null)

// %% [markdown]
// ## 2. Dropout and overfitting
//
// Overfitting needs repetition: a model starts to memorise only after it has seen its training tokens several times, and one pass over the 304,222 training tokens takes this small model about two minutes on two cores. To see it within a minute, both models train on the **first 20,000 training tokens only** (the validation split stays the whole last 10 % of the text), for 10 passes over them in Full.

// %%
var subsetTokens = 20_000;
var smallTrain = compactData.Train[..subsetTokens]; // validation: the usual split
display($"training on {smallTrain.Length:N0} tokens, validating on {compactData.Val.Length:N0}");
int batchSize = 8, blockSize = 64;
int steps = Notebook.Pick(quick: 20, full: 400), warmup = Notebook.Pick(quick: 2, full: 20), evalEvery = Notebook.Pick(quick: 10, full: 50);
int probeTokens = Notebook.Pick(quick: 16, full: 128) * blockSize + 1; // the first windows of each split, evaluated whole
var valProbe = TokenWindows.Sequential(compactData.Val[..probeTokens], batchSize, blockSize);
var trainProbe = TokenWindows.Sequential(smallTrain[..probeTokens], batchSize, blockSize);

// The Trainer's training loss is measured with dropout on, while the weights change; overfitting is judged by the
// training loss in eval mode, like the validation loss. A callback measures it at every evaluation.
class TrainLossInEvalMode : TrainerCallback
{
    readonly Workbook.Data.IBatchSource _probe;
    public TrainLossInEvalMode(Workbook.Data.IBatchSource probe) => _probe = probe;
    public List<double> Losses { get; } = new();
    public override void OnEvaluation(Trainer trainer, TrainingRecord record) => Losses.Add(trainer.Evaluate(_probe).Loss);
}
(TrainingHistory History, List<double> TrainLoss) Train(GptConfig config, LRSchedule schedule)
{
    Notebook.Reseed(7); // same initialisation and batches for every variant
    var m = new GptModel(vocab.CompactConfig(config));
    var trainLoss = new TrainLossInEvalMode(trainProbe);
    var trainer = new Trainer(m, Optimizers.AdamWMatrixDecay(m, lr: 1e-3, beta2: 0.99), vocab.CrossEntropy)
    {
        MaxSteps = steps, EvalEvery = evalEvery, Schedule = schedule, ClipGradNorm = 1.0, Callbacks = { trainLoss },
    };
    var history = trainer.Fit(TokenWindows.Random(smallTrain, batchSize, blockSize, batchesPerEpoch: evalEvery, seed: 1337), valProbe);
    return (history, trainLoss.Losses);
}
var cosine = LRSchedule.WarmupCosine(1e-3, warmup, steps, minLr: 1e-4);
var runs = new[] { 0.0, 0.2 }.Select(d => (Dropout: d, Run: Train(architecture with { Dropout = d }, cosine))).ToList();
var evalSeries = runs.SelectMany(r => new[]
{
    ($"dropout {r.Dropout} train", (IReadOnlyList<double>)r.Run.TrainLoss),
    ($"dropout {r.Dropout} val", (IReadOnlyList<double>)r.Run.History.Column("val_loss")),
});
var evalAt = runs[0].Run.History.Evaluations.Select(e => (double)e.Steps).ToList();
Plot.Lines(evalAt, evalSeries, title: "Dropout: train and validation loss", xTitle: "step", yTitle: "loss")

// %%
double GapOf((TrainingHistory History, List<double> TrainLoss) run) => run.History.Evaluations[^1].ValLoss!.Value - run.TrainLoss[^1];
display(new DataFrame(
    new DoubleDataFrameColumn("dropout", runs.Select(r => r.Dropout)),
    new DoubleDataFrameColumn("final train (eval)", runs.Select(r => Math.Round(r.Run.TrainLoss[^1], 3))),
    new DoubleDataFrameColumn("final val", runs.Select(r => Math.Round(r.Run.History.Evaluations[^1].ValLoss!.Value, 3))),
    new DoubleDataFrameColumn("gap", runs.Select(r => Math.Round(GapOf(r.Run), 3)))));
var shippedMetrics = System.Text.Json.JsonDocument.Parse(File.ReadAllText(DataPaths.File("gpt2-shakespeare", "metrics.json"))).RootElement;
var shippedLast = shippedMetrics.GetProperty("eval_curve").EnumerateArray().Last();
display(Claim.Between("the shipped model (dropout 0.2) reached a gap of about 0.5 after 6.7 epochs", shippedLast.GetProperty("val_loss").GetDouble() - shippedLast.GetProperty("train_loss").GetDouble(), 0.45, 0.6, quick: (0.45, 0.6)));
Claim.AtLeast("in Full the gap opens faster without dropout (gap without − gap with)", GapOf(runs[0].Run) - GapOf(runs[1].Run), full: 0, quick: null)

// %% [markdown]
// The Quick run sees half a pass over the 20,000 tokens, so both models still underfit, the gaps are near zero and dropout makes no visible difference. The shipped model, with dropout 0.2, reached a gap of about 0.5 after 6.7 epochs (notebook 07, checked above from its recorded curve). In the Full profile (10 passes) the gap of the model without dropout opens faster; the table gives both gaps.
//
// ## 3. Warm-up + cosine versus a constant learning rate

// %%
var constant = LRSchedule.Constant(1e-3);
var stepAxis = Enumerable.Range(0, steps).Select(t => (double)t).ToList();
display(Plot.Lines(stepAxis, new (string, IReadOnlyList<double>)[]
{
    ("warm-up + cosine", cosine.Values(steps)),
    ("constant", constant.Values(steps)),
}, title: "Learning-rate schedules", xTitle: "step", yTitle: "learning rate"));
var cosineRun = runs[1].Run.History; // dropout 0.2 with warm-up + cosine, from exercise 2
var constantRun = Train(architecture, constant).History;
Plot.Curves(new (string, IReadOnlyList<double>)[]
{
    ("warm-up + cosine", cosineRun.StepLosses),
    ("constant 1e-3", constantRun.StepLosses),
}, title: "Training loss by schedule", yTitle: "loss")

// %%
display($"final validation loss: warm-up + cosine {cosineRun.Evaluations[^1].ValLoss:F3}, constant {constantRun.Evaluations[^1].ValLoss:F3}");
var curve = shippedMetrics.GetProperty("eval_curve").EnumerateArray().ToList();
var at600 = curve.First(e => e.GetProperty("step").GetInt32() == 600);
display(Claim.Between("the shipped model's validation loss fell by another 0.12 over its last 400 steps", at600.GetProperty("val_loss").GetDouble() - curve[^1].GetProperty("val_loss").GetDouble(), 0.115, 0.125, quick: (0.115, 0.125)));
display(Claim.Between("… while the rate decayed from 4.7e-4", at600.GetProperty("lr").GetDouble(), 4.65e-4, 4.75e-4, quick: (4.65e-4, 4.75e-4)));
display(Claim.Between("… to 1e-4", curve[^1].GetProperty("lr").GetDouble(), 0.99e-4, 1.01e-4, quick: (0.99e-4, 1.01e-4)));
Claim.AtMost("in Full (400 steps) warm-up + cosine ends with the lower validation loss (cosine − constant)", cosineRun.Evaluations[^1].ValLoss!.Value - constantRun.Evaluations[^1].ValLoss!.Value, full: 0, quick: null)

// %% [markdown]
// In the Full profile, 400 steps over the 20,000 tokens, warm-up + cosine ends lower (numbers above). Warm-up costs little: a handful of steps at small rates. The decay is what shows: at the end the cosine run takes small steps and settles, while the constant 1e-3 keeps taking large ones. (A Quick run is too short for this: there the model is still far from converged when the cosine lowers the rate.) The schedule pays off in long runs: warm-up avoids the large, badly scaled first updates of Adam while its second-moment estimates are poor, and the decay lets the loss settle below the noise floor of a constant rate. The shipped model's validation loss fell by another 0.12 over its last 400 steps while the rate decayed from 4.7e-4 to 1e-4 (notebook 07).
