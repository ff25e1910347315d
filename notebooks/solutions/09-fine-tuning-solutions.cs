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
// # 09 · Solutions: fine-tuning
//
// Solutions to the exercises of `09-fine-tuning.ipynb`. The setup repeats the chapter's: the Psalms, the compact vocabulary, the evaluation slices and the time-budgeted fine-tuning loop. The Quick profile uses short budgets and small slices; the text discusses the Full profile.

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
using Workbook.FineTuning;
using Workbook.Gpt;
using Workbook.Tabular;
using Workbook.Text;
using Workbook.Training;
using Workbook.Vision;

var tok = Gpt2Tokenizer.Default;
var shakespeareIds = tok.Encode(File.ReadAllText(DataPaths.File("tinyshakespeare", "input.txt")));
var psalmIds = tok.Encode(File.ReadAllText(DataPaths.File("kjv-psalms", "psalms.txt")));
var known = shakespeareIds.ToHashSet();
var vocab = CompactVocabulary.FromTokens(shakespeareIds.Concat(psalmIds), tok.VocabSize);
var shippedFolder = Path.GetDirectoryName(DataPaths.File("gpt2-shakespeare", "model.safetensors"))!;
var shipped = GptCheckpoint.Load(shippedFolder);
int blockSize = 64, batchSize = 8, evalTokens = Notebook.Pick(quick: 1024, full: 2048);
var psalms = new TokenDataset(vocab.ToCompact(psalmIds), valFraction: 0.1);
var psalmsEval = psalms.Val.Take(evalTokens + 1).ToArray();
var shakespeareEval = new TokenDataset(vocab.ToCompact(shakespeareIds), valFraction: 0.1).Val.Take(evalTokens + 1).ToArray();
var isNewTarget = psalmsEval.Skip(1).Select(t => !known.Contains(vocab.ToFull(t))).ToArray();
(double All, double Known, double New) PsalmLoss(GptModel m)
{
    var losses = GptEvaluation.TokenLosses(m, psalmsEval, blockSize, 16, vocab.TokenCrossEntropy);
    return (losses.Average(), losses.Where((_, i) => !isNewTarget[i]).Average(), losses.Where((_, i) => isNewTarget[i]).Average());
}
double ShakespeareLoss(GptModel m) => GptEvaluation.SplitLoss(m, shakespeareEval, blockSize, 16, vocab.CrossEntropy);
var preShakespeare = ShakespeareLoss(vocab.Compact(shipped));
double budgetSeconds = Notebook.Pick(quick: 2.0, full: 12.0);
int minSteps = Notebook.Pick(quick: 4, full: 40);
sealed record LmRun(string Method, long Trainable, long Steps, (double All, double Known, double New) Psalms, double Shakespeare);
LmRun FineTune(string method, GptModel model, optim.Optimizer optimizer, double lr)
{
    Notebook.Reseed(7);
    var trainer = new Trainer(model, optimizer, vocab.CrossEntropy)
        { Epochs = 100_000, ClipGradNorm = 1.0, Schedule = LRSchedule.WarmupCosine(lr, warmupSteps: 10, totalSteps: 1_000_000, minLr: lr) };
    using var budget = new TimeBudget(TimeSpan.FromSeconds(budgetSeconds)) { MinSteps = minSteps };
    trainer.Fit(TokenWindows.Random(psalms.Train, batchSize, blockSize, batchesPerEpoch: 10, seed: 3), null, budget.Attach(trainer));
    return new LmRun(method, Freezing.TrainableCount(model), trainer.Step, PsalmLoss(model), ShakespeareLoss(model));
}
DataFrame Table(IEnumerable<LmRun> runs) => new(
    new StringDataFrameColumn("method", runs.Select(r => r.Method)),
    new Int64DataFrameColumn("trainable", runs.Select(r => r.Trainable)),
    new Int64DataFrameColumn("steps", runs.Select(r => r.Steps)),
    new DoubleDataFrameColumn("Psalms val", runs.Select(r => Math.Round(r.Psalms.All, 3))),
    new DoubleDataFrameColumn("known tokens", runs.Select(r => Math.Round(r.Psalms.Known, 3))),
    new DoubleDataFrameColumn("new tokens", runs.Select(r => Math.Round(r.Psalms.New, 3))),
    new DoubleDataFrameColumn("forgetting", runs.Select(r => Math.Round(r.Shakespeare - preShakespeare, 3))));
$"K = {vocab.Size:N0}; budget {budgetSeconds} s of training per run (at least {minSteps} steps)"

// %% [markdown]
// ## Exercise 1 · LoRA's rank
//
// r = 1, 8 (the chapter's) and 32, with α = 2r so that α/r = 2 throughout, at the same time budget and learning rate.

// %%
var rankRuns = new List<LmRun>();
foreach (var r in new[] { 1, 8, 32 })
{
    var m = vocab.Compact(shipped);
    LoRA.Apply(m, new LoRAOptions { Rank = r, Alpha = 2 * r });
    rankRuns.Add(FineTune($"LoRA r = {r}", m, Optimizers.AdamW(Freezing.Trainable(m), 2e-3, weightDecay: 0), 2e-3));
}
display(Table(rankRuns));
Claim.Close("trainable parameters grow linearly with r (r = 32 has 32× r = 1)", (double)rankRuns[2].Trainable / rankRuns[0].Trainable, 32, 1e-9)

// %% [markdown]
// The parameter count is exactly linear in r. The loss is not: in a short budget, a larger rank buys little. The update ΔW = BA starts at zero and grows only as fast as the optimizer moves B. What limits a short run is the number of steps, not the rank. This matches what Hu et al. report: very small ranks already capture most of the gain. A larger rank also costs a little more time per step, so it gets fewer steps in the same budget.
//
// ## Exercise 2 · New tokens
//
// LoRA with the token embedding (and so the tied LM head) trainable as well: `FreezeAllBut` keeps the adapters and `wte.weight`.

// %%
var embedModel = vocab.Compact(shipped);
LoRA.Apply(embedModel, new LoRAOptions { Rank = 8, Alpha = 16 });
Freezing.FreezeAllBut(embedModel, name => name.Contains(".lora_") || name == "wte.weight");
var embedOpt = ParameterGroups.AdamW([
    new("adapters", embedModel.named_parameters().Where(p => p.name.Contains(".lora_")).Select(p => p.parameter).ToList(), 2e-3, WeightDecay: 0),
    new("embedding", embedModel.named_parameters().Where(p => p.name == "wte.weight").Select(p => p.parameter).ToList(), 1e-3, WeightDecay: 0)]);
var embedRun = FineTune("LoRA r = 8 + embedding", embedModel, embedOpt, 2e-3);
display(Table([rankRuns[1], embedRun]));
Claim.AtLeast("a trainable embedding lowers the loss on the new tokens (nats/token)", rankRuns[1].Psalms.New - embedRun.Psalms.New, full: 0.3)

// %% [markdown]
// With the embedding trainable, the new tokens get their own rows and their loss falls; the known tokens gain a little too, because the tied head can now move. The price: the embedding is `K × 128` parameters, far more than the adapters, and changing rows that Shakespeare uses costs some forgetting. PEFT's answer is to train only the rows of the new tokens, or to add new tokens with their own small embedding.
//
// ## Exercise 3 · Mean pooling for the probe
//
// The chapter's speaker task and split, with two frozen-backbone features: the last real token's hidden state, and the mean over all real tokens.

// %%
string[] speakers = ["DUKE VINCENTIO", "MENENIUS", "ROMEO", "PETRUCHIO"];
var speeches = new List<(string Text, long Label)>();
foreach (var block in File.ReadAllText(DataPaths.File("tinyshakespeare", "input.txt")).Split("\n\n"))
{
    var lines = block.Trim('\n').Split('\n');
    int who = lines.Length > 1 && lines[0].EndsWith(':') ? Array.IndexOf(speakers, lines[0].TrimEnd(':')) : -1;
    if (who >= 0) speeches.Add((string.Join("\n", lines.Skip(1)), who));
}
var labels = speeches.Select(s => s.Label).ToArray();
var outer = Splits.StratifiedSplit(labels, testFraction: 0.2, seed: 1);
var inner = Splits.StratifiedSplit(outer.Train.Select(i => labels[i]).ToArray(), testFraction: 0.25, seed: 2);
long[] trainIdx = inner.Train.Select(i => outer.Train[i]).ToArray(), valIdx = inner.Test.Select(i => outer.Train[i]).ToArray();
var encoded = speeches.Select(s => (IReadOnlyList<int>)tok.Encode(s.Text)).ToList();
var clf = new GptSequenceClassifier(GptCheckpoint.Load(shippedFolder), speakers.Length, Gpt2Tokenizer.EndOfTextId);
Freezing.Freeze(clf.Backbone);
(Tensor Last, Tensor Mean) Features(long[] idx)
{
    using var _ = no_grad();
    var ids = GptSequenceClassifier.PadRight(idx.Select(i => encoded[(int)i]), 48, Gpt2Tokenizer.EndOfTextId);
    var hidden = clf.Backbone.HiddenStates(ids);                         // [B, T, E]
    var mask = ids.ne(Gpt2Tokenizer.EndOfTextId).unsqueeze(2).to_type(ScalarType.Float32);
    return (clf.Features(ids), (hidden * mask).sum(1) / mask.sum(1));
}
var (trainLast, trainMean) = Features(trainIdx);
var (valLast, valMean) = Features(valIdx);
double Probe(Tensor train, Tensor val)
{
    Notebook.Reseed(3);
    var head = nn.Linear(train.shape[1], speakers.Length);
    var t = new Trainer(head, Optimizers.AdamW(head.parameters(), 1e-2), Losses.CrossEntropy)
        { Epochs = 60, Metrics = { Metric.Accuracy }, EarlyStopping = new EarlyStopping("val_accuracy", Patience: 60) };
    t.Fit(new BatchLoader(new InMemoryDataset(train, tensor(trainIdx.Select(i => labels[i]).ToArray())), 16, shuffle: true, seed: 4),
          new BatchLoader(new InMemoryDataset(val, tensor(valIdx.Select(i => labels[i]).ToArray())), 256));
    return t.History.Epochs.Max(e => e.ValMetrics["accuracy"]);
}
double lastAcc = Probe(trainLast, valLast), meanAcc = Probe(trainMean, valMean);
$"validation accuracy of the linear probe: last token {100 * lastAcc:F1}%, mean over the real tokens {100 * meanAcc:F1}%"

// %% [markdown]
// The mean pools evidence from every token, while the last token carries whatever the causal model kept about the whole text. For a model that was never trained to summarise a speech into its last position, the mean is often the better *frozen* feature. When the backbone is fine-tuned, the last token learns to gather the information, which is why GPT-2's classification head reads it. With about 130 validation speeches, differences of 2 to 3 points are within noise.
//
// ## Exercise 4 · Unfreezing gradually
//
// 1,000 MNIST labels; the Fashion-MNIST `SimpleCNN` with (a) only the head trained, (b) `conv2` and the head, (c) everything.

// %%
var fashion = Datasets.FashionMnist(train: true, limit: Notebook.Pick<int?>(quick: 6000, full: null));
Notebook.Reseed(11);
var fashionCnn = new SimpleCNN();
new Trainer(fashionCnn, Optimizers.Adam(fashionCnn.parameters(), 2e-3), Losses.CrossEntropy) { Epochs = Notebook.Pick(quick: 1, full: 2) }.Fit(new BatchLoader(fashion, 128, shuffle: true, seed: 1));
var mnist = Datasets.Mnist(train: false);
var order = BatchLoader.Permutation(mnist.Count, seed: 5, epoch: 0);
var train1000 = mnist.Subset(order.Take(1000).ToArray());
var mnistVal = mnist.Subset(order.Skip(6000).Take(2000).ToArray());
double Unfreeze(string[] trainable)
{
    Notebook.Reseed(21);
    var m = new SimpleCNN();
    using (no_grad())
        foreach (var (name, p) in m.named_parameters().Where(p => !p.name.StartsWith("fc.")))
            p.copy_(fashionCnn.named_parameters().First(q => q.name == name).parameter);
    Freezing.FreezeAllBut(m, name => trainable.Any(t => name.StartsWith(t)));
    var head = m.named_parameters().Where(p => p.name.StartsWith("fc.")).Select(p => p.parameter).ToList();
    var body = m.named_parameters().Where(p => !p.name.StartsWith("fc.") && p.parameter.requires_grad).Select(p => p.parameter).ToList();
    var opt = ParameterGroups.AdamW([new("head", head, 1e-3), new("body", body, 3e-4)]);
    new Trainer(m, opt, Losses.CrossEntropy) { Epochs = Notebook.Pick(quick: 2, full: 15) }.Fit(new BatchLoader(train1000, 50, shuffle: true, seed: 6));
    return Evaluation.Accuracy(Evaluation.Predict(m, mnistVal.Inputs).argmax(1), mnistVal.Targets);
}
var unfreezing = new[] { ("head only", new[] { "fc." }), ("conv2 + head", new[] { "fc.", "conv2." }), ("everything", new[] { "fc.", "conv2.", "conv1." }) }
    .Select(u => (u.Item1, Acc: Unfreeze(u.Item2))).ToList();
new DataFrame(new StringDataFrameColumn("trained", unfreezing.Select(u => u.Item1)), new DoubleDataFrameColumn("validation %", unfreezing.Select(u => Math.Round(100 * u.Acc, 1))))

// %% [markdown]
// Unfreezing `conv2` gives most of the gain of full fine-tuning. The first layer's filters (edges at a few orientations) are generic and transfer as they are. The second layer combines them into parts of clothes, which is what the digits need changed. This is the usual pattern: early layers transfer, late layers adapt.
