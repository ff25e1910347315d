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
// # 09 · Fine-tuning a pretrained model
//
// Chapter 07 trained a GPT from scratch; chapter 05 only generated with it. Most real projects do neither: they take a **pretrained** model and adapt it. The source articles do this twice, with two recipes that disagree. One fine-tunes GPT-2 with AdamW at 1e-4. The other trains GPT-2's **language-model logits against sentiment labels** with Adam at 1e-3. This chapter does it properly, three ways, and measures everything on two CPU cores:
//
// 1. **Causal-LM fine-tuning** of the shipped Shakespeare GPT on text it has never seen (the Psalms). We compare training from scratch, full fine-tuning and **LoRA** at the same wall-clock budget, measure what the model forgets, and show what a learning rate of 1e-3 does;
// 2. **Sequence classification** with the GPT backbone: a new head on the last real token, against a majority baseline, on a held-out test set. We correct the articles' mixing of LM logits and labels;
// 3. **Transfer learning in vision**: a Fashion-MNIST CNN re-used for MNIST digits, with 100, 1,000 and all training labels.

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
using F = TorchSharp.torch.nn.functional;

// %% [markdown]
// ## 1 · New text for an old model
//
// The shipped model (`data/gpt2-shakespeare`, chapter 07) learned from the first 90% of tiny Shakespeare. Its new text is the **Book of Psalms** in the King James Version (1611), in `data/kjv-psalms/` with its provenance: Debian's `bible-kjv-text` package, public domain. The language is close to Shakespeare's (thou, hath, -eth), but the subject, the names and the verse form are new. We keep the last 10% of the Psalms for validation.
//
// Forgetting is measured on the **original text**: the last 10% of tiny Shakespeare, which the model never trained on (it was its validation split).

// %%
var tok = Gpt2Tokenizer.Default;
var shakespeareIds = tok.Encode(File.ReadAllText(DataPaths.File("tinyshakespeare", "input.txt")));
var psalmIds = tok.Encode(File.ReadAllText(DataPaths.File("kjv-psalms", "psalms.txt")));
var known = shakespeareIds.ToHashSet();
var newTokens = psalmIds.Where(t => !known.Contains(t)).ToList();
var topNew = newTokens.GroupBy(t => t).OrderByDescending(g => g.Count()).Take(8).ToList();
display($"Shakespeare {shakespeareIds.Length:N0} tokens; Psalms {psalmIds.Length:N0} tokens, {psalmIds.Distinct().Count():N0} distinct, of which {newTokens.Distinct().Count()} never occur in Shakespeare ({100.0 * newTokens.Count / psalmIds.Length:F1}% of the Psalms' tokens)");
new DataFrame(
    new StringDataFrameColumn("token new to the model", topNew.Select(g => tok.TokenDisplay(g.Key))),
    new Int32DataFrameColumn("count in the Psalms", topNew.Select(g => g.Count())))

// %% [markdown]
// Shakespeare writes "lord" and "Lord", never " LORD" (the translators' small capitals for the divine name), so the model has never seen that token. Its embedding row is exactly zero (chapter 07: unused tokens get zero rows). The model gives such a token a logit of exactly 0, the same as the 38,000 tokens it does not use. We will see what that costs.
//
// **The same trick as chapter 07.** We train on the K tokens that occur in either text. Every other row of the embedding is zero, so the K-token loss plus one constant logit is exactly the 50,257-way loss. `CompactVocabulary.Compact` cuts the pretrained model down to those rows and checks that every dropped row is zero. The check on a real batch:

// %%
var vocab = CompactVocabulary.FromTokens(shakespeareIds.Concat(psalmIds), tok.VocabSize);
var shippedFolder = Path.GetDirectoryName(DataPaths.File("gpt2-shakespeare", "model.safetensors"))!;
var shipped = GptCheckpoint.Load(shippedFolder);
int blockSize = 64, batchSize = 8;
var psalms = new TokenDataset(vocab.ToCompact(psalmIds), valFraction: 0.1);
var shakespeareVal = new TokenDataset(vocab.ToCompact(shakespeareIds), valFraction: 0.1).Val;
// Evaluation slices: the first tokens of each validation split (Full: 2,048 each; Quick: 512).
int evalTokens = Notebook.Pick(quick: 512, full: 2048);
var psalmsEval = psalms.Val.Take(evalTokens + 1).ToArray();
var shakespeareEval = shakespeareVal.Take(evalTokens + 1).ToArray();
GptModel Pretrained() => vocab.Compact(shipped);
Tensor Window(int[] tokens, int offset, int rows, bool full) =>
    tensor(tokens.Skip(offset).Take(rows * blockSize).Select(i => full ? (long)vocab.ToFull(i) : (long)i).ToArray(), [rows, blockSize]);
double compactLoss, fullLoss;
using (no_grad())
{
    var probe = Pretrained();
    compactLoss = vocab.CrossEntropy(probe.forward(Window(psalmsEval, 0, 2, false)), Window(psalmsEval, 1, 2, false)).item<float>();
    fullLoss = GptModel.Loss(shipped.forward(Window(psalmsEval, 0, 2, true)), Window(psalmsEval, 1, 2, true)).item<float>();
}
display($"K = {vocab.Size:N0} tokens; Psalms: {psalms.Train.Length:N0} training and {psalms.Val.Length:N0} validation tokens; loss on two windows: compact {compactLoss:F5}, full {fullLoss:F5}");
Claim.Close("the compact model's loss is the full 50,257-way loss", compactLoss - fullLoss, 0, 1e-4)

// %% [markdown]
// The pretrained model, before any fine-tuning. Its loss on the Psalms is split by kind of target token: those it knows from Shakespeare, and the new ones.

// %%
var isNewTarget = psalmsEval.Skip(1).Select(t => !known.Contains(vocab.ToFull(t))).ToArray();
(double All, double Known, double New) PsalmLoss(GptModel m)
{
    var losses = GptEvaluation.TokenLosses(m, psalmsEval, blockSize, 16, vocab.TokenCrossEntropy);
    return (losses.Average(), losses.Where((_, i) => !isNewTarget[i]).Average(), losses.Where((_, i) => isNewTarget[i]).Average());
}
double ShakespeareLoss(GptModel m) => GptEvaluation.SplitLoss(m, shakespeareEval, blockSize, 16, vocab.CrossEntropy);
var pre = Pretrained();
var prePsalms = PsalmLoss(pre);
var preShakespeare = ShakespeareLoss(pre);
display($"pretrained: Psalms {prePsalms.All:F3} nats/token (known tokens {prePsalms.Known:F3}, new tokens {prePsalms.New:F3}, {isNewTarget.Count(b => b)} of {isNewTarget.Length}); Shakespeare {preShakespeare:F3}; uniform guessing: ln 50,257 = {Math.Log(50257):F3}");
Claim.AtLeast("on the new tokens the pretrained model does worse than uniform guessing", prePsalms.New - Math.Log(50257), full: 0, quick: 0)

// %% [markdown]
// On the new tokens the model does **worse than uniform guessing**. A zero embedding gives logit 0, and the model has learned to push the tokens it expects far above 0. So a token with logit 0 gets almost no probability.
//
// ## 2 · Three ways to spend the same budget
//
// Each method gets the same **training time** (Full: 10 s, Quick: 2 s). Evaluation does not count, and a minimum number of steps always runs, so that a busy machine still gives sensible numbers. Each trains on random 64-token windows of the Psalms, 8 per step, with gradient clipping at 1:
//
// | method | starts from | trains | optimizer |
// |---|---|---|---|
// | from scratch | random weights | everything | AdamW 1e-3, warm-up 10 steps (chapter 07's recipe) |
// | full fine-tuning | the shipped model | everything | AdamW **1e-4**, warm-up 10 steps (the articles' first recipe) |
// | LoRA | the shipped model | rank-8 adapters only | AdamW 2e-3, warm-up 10 steps |
//
// **LoRA** (Hu et al. 2021) freezes the pretrained weight W₀ of a linear layer and learns a low-rank change:
//
// $$y = W_0 x + b + \frac{\alpha}{r} B A x, \qquad A \in \mathbb{R}^{r \times d_\text{in}},\; B \in \mathbb{R}^{d_\text{out} \times r}.$$
//
// B starts at zero, so the adapted model starts as exactly the pretrained one. A starts random, so B's first gradient is not zero. The update ΔW = (α/r)·BA has rank at most r and costs r·(d_in + d_out) parameters instead of d_in·d_out. The scale α/r keeps the size of the update roughly the same when you change r. We put adapters on all four projections of every block, `attn.c_attn`, `attn.c_proj`, `mlp.c_fc` and `mlp.c_proj`, with r = 8 and α = 16.

// %%
var loraModel = Pretrained();
var loraReport = LoRA.Apply(loraModel, new LoRAOptions { Rank = 8, Alpha = 16 });
var cfg = loraModel.Config;
long expectedAdapters = cfg.NumLayers * 8L * ((cfg.DModel + 3 * cfg.DModel) + (cfg.DModel + cfg.DModel) + (cfg.DModel + cfg.DimFeedforward) + (cfg.DimFeedforward + cfg.DModel));
double initDiff;
using (no_grad()) initDiff = (loraModel.forward(Window(psalmsEval, 0, 1, false)) - pre.forward(Window(psalmsEval, 0, 1, false))).abs().max().item<float>();
display(loraReport.ToString());
display(Claim.Close("LoRA's trainable parameters are r·(d_in + d_out) per adapted projection", loraReport.TrainableParameters, expectedAdapters, 0));
Claim.Close("at initialisation the adapted model computes exactly the pretrained one", initDiff, 0, 0)

// %% [markdown]
// The LM head is tied to the token embedding, which LoRA leaves frozen, so the adapters alone cannot learn embeddings for the new tokens. Keep that in mind for the results.
//
// The training loop is the library `Trainer` (chapter 04). A `TimeBudget` stops it once the training time runs out. After every "epoch" of 10 steps, the progress callback evaluates the model on both texts, and those points make the curves.

// %%
double budgetSeconds = Notebook.Pick(quick: 2.0, full: 10.0);
int minSteps = Notebook.Pick(quick: 3, full: 30);
sealed record LmRun(string Method, long Trainable, long Steps, double Seconds, (double All, double Known, double New) Psalms, double Shakespeare,
    List<(double Seconds, double Psalms, double Shakespeare)> Curve);
LmRun FineTune(string method, GptModel model, optim.Optimizer optimizer, LRSchedule? schedule)
{
    Notebook.Reseed(7);
    var trainer = new Trainer(model, optimizer, vocab.CrossEntropy) { Epochs = 100_000, Schedule = schedule, ClipGradNorm = 1.0 };
    using var budget = new TimeBudget(TimeSpan.FromSeconds(budgetSeconds)) { MinSteps = minSteps };
    var curve = new List<(double, double, double)> { (0, PsalmLoss(model).All, ShakespeareLoss(model)) };
    trainer.OnProgress = p => { if (p.Phase == TrainingPhase.EpochEnd) curve.Add((budget.Used.TotalSeconds, PsalmLoss(model).All, ShakespeareLoss(model))); };
    trainer.Fit(TokenWindows.Random(psalms.Train, batchSize, blockSize, batchesPerEpoch: 10, seed: 3), null, budget.Attach(trainer));
    var final = PsalmLoss(model);
    double shk = ShakespeareLoss(model);
    curve.Add((budget.Used.TotalSeconds, final.All, shk));
    return new LmRun(method, Freezing.TrainableCount(model), trainer.Step, budget.Used.TotalSeconds, final, shk, curve);
}
LRSchedule Warmup(double lr) => LRSchedule.WarmupCosine(lr, warmupSteps: 10, totalSteps: 1_000_000, minLr: lr); // warm-up, then constant
var runs = new List<LmRun>();
Notebook.Reseed(1);
var scratch = new GptModel(vocab.CompactConfig(shipped.Config));
runs.Add(FineTune("from scratch", scratch, Optimizers.AdamWMatrixDecay(scratch, lr: 1e-3, weightDecay: 0.1, beta2: 0.99), Warmup(1e-3)));
runs.Add(FineTune("LoRA r = 8", loraModel, Optimizers.AdamW(Freezing.Trainable(loraModel), lr: 2e-3, weightDecay: 0), Warmup(2e-3)));
string.Join("; ", runs.Select(r => $"{r.Method}: {r.Steps} steps in {r.Seconds:F1} s"))

// %% [markdown]
// Full fine-tuning with the articles' first recipe, AdamW at 1e-4 after a short warm-up:

// %% tags=["errata-20-correct"]
var fullFt = Pretrained();
runs.Add(FineTune("full fine-tuning, AdamW 1e-4", fullFt, Optimizers.AdamW(fullFt.parameters(), lr: 1e-4), Warmup(1e-4)));
$"{runs[^1].Steps} steps in {runs[^1].Seconds:F1} s: Psalms {runs[^1].Psalms.All:F3}, Shakespeare {runs[^1].Shakespeare:F3}"

// %% [markdown]
// ## 3 · What the articles' learning rate does
//
// The second recipe of the source articles is `Adam(lr=1e-3)` with no warm-up. That is the peak rate at which this model was *pretrained*. The same run with it:

// %% tags=["errata-20-article"]
var hotFt = Pretrained();
runs.Add(FineTune("full fine-tuning, Adam 1e-3 (article)", hotFt, Optimizers.Adam(hotFt.parameters(), lr: 1e-3), null));
$"{runs[^1].Steps} steps in {runs[^1].Seconds:F1} s: Psalms {runs[^1].Psalms.All:F3}, Shakespeare {runs[^1].Shakespeare:F3}"

// %%
new DataFrame(
    new StringDataFrameColumn("method", runs.Select(r => r.Method).Prepend("pretrained, no training")),
    new Int64DataFrameColumn("trainable", runs.Select(r => r.Trainable).Prepend(0L)),
    new Int64DataFrameColumn("steps", runs.Select(r => r.Steps).Prepend(0L)),
    new DoubleDataFrameColumn("train s", runs.Select(r => Math.Round(r.Seconds, 1)).Prepend(0.0)),
    new DoubleDataFrameColumn("Psalms val", runs.Select(r => Math.Round(r.Psalms.All, 3)).Prepend(Math.Round(prePsalms.All, 3))),
    new DoubleDataFrameColumn("  known tokens", runs.Select(r => Math.Round(r.Psalms.Known, 3)).Prepend(Math.Round(prePsalms.Known, 3))),
    new DoubleDataFrameColumn("  new tokens", runs.Select(r => Math.Round(r.Psalms.New, 3)).Prepend(Math.Round(prePsalms.New, 3))),
    new DoubleDataFrameColumn("Shakespeare val", runs.Select(r => Math.Round(r.Shakespeare, 3)).Prepend(Math.Round(preShakespeare, 3))),
    new DoubleDataFrameColumn("forgetting", runs.Select(r => Math.Round(r.Shakespeare - preShakespeare, 3)).Prepend(0.0)))

// %%
var curveChart = (string title, bool onPsalms) => Plot.WithLayout(
    Plotly.NET.GenericChart.combine(runs.Select(r => Plot.Line(r.Curve.Select(c => c.Seconds).ToList(), r.Curve.Select(c => onPsalms ? c.Psalms : c.Shakespeare).ToList(), r.Method))),
    ("title", new { text = title }), ("xaxis", new { title = new { text = "training seconds" } }), ("yaxis", new { title = new { text = "validation loss (nats/token)" } }));
display(curveChart("New text: Psalms", true));
curveChart("Original text: Shakespeare (forgetting)", false)

// %%
var byMethod = runs.ToDictionary(r => r.Method);
var scratchRun = byMethod["from scratch"];
var ftRun = byMethod["full fine-tuning, AdamW 1e-4"];
var loraRun = byMethod["LoRA r = 8"];
var hotRun = byMethod["full fine-tuning, Adam 1e-3 (article)"];
display(Claim.AtLeast("fine-tuning beats training from scratch on the new text by at least 0.5 nats/token", scratchRun.Psalms.All - ftRun.Psalms.All, full: 0.5, quick: 0.5));
display(Claim.AtLeast("the article's lr 1e-3 raises the loss on the original text by at least 0.5 nats/token", hotRun.Shakespeare - preShakespeare, full: 0.5));
display(Claim.AtLeast("… at least twice as much as AdamW 1e-4 does", (hotRun.Shakespeare - preShakespeare) / Math.Max(1e-6, ftRun.Shakespeare - preShakespeare), full: 2.0));
Claim.AtMost("LoRA trains less than 5% of the parameters", loraReport.TrainableShare, full: 0.05, quick: 0.05)

// %% [markdown]
// What the table says (the numbers are the table's, from this run):
//
// - **Pretraining is worth a lot.** In the same time, the model trained from scratch stays far behind even the pretrained model *before* any fine-tuning. It has to learn spelling, layout and the frequent words from the Psalms alone.
// - **Full fine-tuning at 1e-4** learns the Psalms and forgets some Shakespeare. Every weight moves, including the embedding rows it shares with Shakespeare.
// - **LoRA** trains 3.4% of the parameters. On this tiny model it learns less in the same time. The "new tokens" column shows one reason: about 4.5% of the Psalms' tokens (" LORD", "Israel", "salvation") have a zero, frozen embedding, and no adapter can give them one. For a model pretrained on much more text, almost no token is new. Exercise 2 unfreezes the embedding.
// - **Adam at 1e-3** (the article's rate) lowers the Psalms loss fastest, and pays for it on Shakespeare: the loss on the original text rises several times more than with 1e-4. A pretrained model sits in a good region of weight space. Adam's first steps move *every* weight by about the learning rate, whatever the size of its gradient. At 1e-3 that is a large step for weights whose typical size is 0.02 to 0.1. Warm-up and a 10× smaller rate keep most of what the model knew.
//
// A sample from the fully fine-tuned model, with the prompt a psalm begins with:

// %%
string Sample(GptModel m, string prompt, int tokens)
{
    var ids = vocab.ToCompact(tok.Encode(prompt));
    var steps = TextGenerator.GenerateIds(m, [ids], new GenerationOptions { MaxNewTokens = tokens, Temperature = 0.8, TopK = 40, Seed = 3 });
    return prompt + tok.Decode(steps.Select(s => vocab.ToFull((int)s.Tokens[0])));
}
int sampleTokens = Notebook.Pick(quick: 20, full: 60);
new DataFrame(
    new StringDataFrameColumn("model", ["pretrained", "full fine-tuning, AdamW 1e-4"]),
    new StringDataFrameColumn("sample", new[] { Sample(pre, "Psalm 100\n\nO", sampleTokens), Sample(fullFt, "Psalm 100\n\nO", sampleTokens) }.Select(s => s.Replace("\n", " ↵ "))))

// %% [markdown]
// ## 4 · Merging the adapters
//
// After training, ΔW = (α/r)·BA can be **added into W₀**. The merged layer is an ordinary linear layer: inference costs nothing extra, and the model can be saved as a plain GPT-2 that any loader opens. The merged model computes the same function, up to float rounding:

// %%
var loraLoss = PsalmLoss(loraModel).All;
int merged = LoRA.Merge(loraModel);
var mergedLoss = PsalmLoss(loraModel).All;
LoRA.MergeAndUnload(loraModel);                  // the wrappers replaced by plain Linear layers holding W₀ + ΔW
var saveDir = Path.Combine(Path.GetTempPath(), "workbook-09-lora-merged");
GptCheckpoint.Save(vocab.Expand(loraModel), saveDir);
var reloaded = GptCheckpoint.Load(saveDir);
double reloadedDiff;
using (no_grad())
    reloadedDiff = GptModel.Loss(reloaded.forward(Window(psalmsEval, 0, 4, true)), Window(psalmsEval, 1, 4, true)).item<float>()
                 - vocab.CrossEntropy(loraModel.forward(Window(psalmsEval, 0, 4, false)), Window(psalmsEval, 1, 4, false)).item<float>();
display($"{merged} adapters merged; Psalms loss unmerged {loraLoss:F5}, merged {mergedLoss:F5}; saved as a plain GPT-2 with {reloaded.ParameterCount:N0} parameters in {saveDir}");
display(Claim.Close("the merged model has the unmerged model's loss", mergedLoss - loraLoss, 0, 1e-4));
Claim.Close("the saved full-vocabulary model has the compact merged model's loss", reloadedDiff, 0, 1e-4)

// %% [markdown]
// ## 5 · Sequence classification with the GPT backbone
//
// **The task.** Who is speaking? We take every speech of the four most frequent speakers of tiny Shakespeare who each belong to one play: Duke Vincentio (*Measure for Measure*), Menenius (*Coriolanus*), Romeo and Petruchio (*The Taming of the Shrew*). Gloucester is more frequent, but that name belongs to characters in two plays. A speech is the text under the speaker's name, cut to 48 tokens. We split the speeches into train, validation and test sets (60/20/20, stratified). Settings are chosen on validation, and the **test set is used once**, at the end.

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
long[] trainIdx = inner.Train.Select(i => outer.Train[i]).ToArray(), valIdx = inner.Test.Select(i => outer.Train[i]).ToArray(), testIdx = outer.Test;
if (Notebook.Profile == RunProfile.Quick) { trainIdx = trainIdx.Take(120).ToArray(); valIdx = valIdx.Take(60).ToArray(); }
int maxTokens = 48;
var encoded = speeches.Select(s => (IReadOnlyList<int>)tok.Encode(s.Text)).ToList();
new DataFrame(
    new StringDataFrameColumn("speaker", speakers),
    new Int64DataFrameColumn("train", speakers.Select((_, c) => (long)trainIdx.Count(i => labels[i] == c))),
    new Int64DataFrameColumn("validation", speakers.Select((_, c) => (long)valIdx.Count(i => labels[i] == c))),
    new Int64DataFrameColumn("test", speakers.Select((_, c) => (long)testIdx.Count(i => labels[i] == c))))

// %% [markdown]
// **The majority baseline** always answers the most frequent class of the training set. Any model must beat it.

// %%
long majority = Enumerable.Range(0, speakers.Length).MaxBy(c => trainIdx.Count(i => labels[i] == c));
double Majority(long[] idx) => idx.Count(i => labels[i] == majority) / (double)idx.Length;
$"majority class: {speakers[majority]}; accuracy {100 * Majority(valIdx):F1}% on validation, {100 * Majority(testIdx):F1}% on test"

// %% [markdown]
// **What the article computes.** Its fine-tuning loop runs `CrossEntropyLoss(outputs.logits.view(-1, V), batch.label)`: the LM head's logits, flattened over positions, against the sentiment labels. First, this does not run. There are B·T rows of logits and only B labels:

// %% tags=["errata-20-article"]
var demoIds = GptSequenceClassifier.PadRight(trainIdx.Take(8).Select(i => encoded[(int)i]), maxTokens, Gpt2Tokenizer.EndOfTextId);
var demoLabels = tensor(trainIdx.Take(8).Select(i => labels[i]).ToArray());
string articleError;
using (no_grad())
{
    var lmLogits = shipped.forward(demoIds);                                  // [B, T, V]
    try { articleError = $"loss = {F.cross_entropy(lmLogits.view(-1, lmLogits.shape[^1]), demoLabels).item<float>()}"; }
    catch (Exception e) { articleError = e.Message.Split('\n')[0]; }
}
$"logits.view(-1, V) is [{demoIds.shape[0] * demoIds.shape[1]}, {tok.VocabSize}], the labels are [{demoLabels.shape[0]}]: {articleError}"

// %% [markdown]
// Suppose you "fix" the shapes by taking the logits of one position per text, as many copies of this code end up doing. Then the loss reads label c as **token id c**, and trains the model to predict that token next. For four classes those tokens are:

// %% tags=["errata-20-article"]
var labelTokens = Enumerable.Range(0, speakers.Length).Select(c => tok.TokenDisplay(c)).ToList();
double articleLoss, articleHits;
int zeroRows;
using (no_grad())
{
    var lmLogits = shipped.forward(demoIds);
    var last = new GptSequenceClassifier(shipped, speakers.Length, Gpt2Tokenizer.EndOfTextId).LastTokenIndex(demoIds);
    var atLast = lmLogits.gather(1, last.view(-1, 1, 1).expand(-1, 1, lmLogits.shape[2])).squeeze(1);  // [B, V]
    articleLoss = F.cross_entropy(atLast, demoLabels).item<float>();
    articleHits = atLast.argmax(1).lt(speakers.Length).to_type(ScalarType.Float32).mean().item<float>();
    zeroRows = Enumerable.Range(0, speakers.Length).Count(c => shipped.TokenEmbedding[c].abs().sum().item<float>() == 0);
}
display($"class c = token c: {string.Join(", ", labelTokens.Select((t, c) => $"{c} → '{t}'"))}. {zeroRows} of these {speakers.Length} embedding rows are zero (the tokens never occur in Shakespeare), so those classes get logit exactly 0 whatever the text.");
display($"Loss on the batch {articleLoss:F2} nats (a fresh 4-class head starts near ln 4 = {Math.Log(4):F2}); the arg-max over the 50,257 logits is one of the 4 'classes' for {100 * articleHits:F0}% of the texts.");
Claim.AtLeast("the article's loss starts far above chance level ln 4", articleLoss - Math.Log(4), full: 3.0, quick: 3.0)

// %% [markdown]
// So the "classifier" is the LM head restricted to the embeddings of `!`, `"`, `#` and `$`. It learns by distorting the language model. Pick one task. For classification, put a **new head** on the hidden state of the **last real token**, the only position whose causal attention has read the whole text, and train it with the labels.

// %% tags=["errata-20-correct"]
Notebook.Reseed(3);
var probeClf = new GptSequenceClassifier(GptCheckpoint.Load(shippedFolder), speakers.Length, Gpt2Tokenizer.EndOfTextId);
double initLoss;
using (no_grad()) initLoss = F.cross_entropy(probeClf.forward(demoIds), demoLabels).item<float>();
display($"new head {probeClf.Head.weight!.shape[0]}×{probeClf.Head.weight!.shape[1]} on ln_f(h) of the last non-pad token; initial loss {initLoss:F3} (ln 4 = {Math.Log(4):F3})");
Claim.Between("a fresh head starts near chance, ln 4", initLoss, Math.Log(4) - 0.25, Math.Log(4) + 0.25, quick: (Math.Log(4) - 0.25, Math.Log(4) + 0.25))

// %% [markdown]
// Three ways to train it:
//
// - **linear probe**: backbone frozen, only the head (4×128 weights) trains. The backbone's features are computed once and cached;
// - **full fine-tuning**: everything trains, the backbone at 1e-4 and the new head at 1e-3 (two parameter groups; the schedule keeps their ratio);
// - **LoRA**: rank-8 adapters plus the head, at 1e-3.
//
// Each keeps the epoch with the best validation accuracy (early stopping restores the best weights).

// %%
InMemoryDataset Speeches(long[] idx) => new(GptSequenceClassifier.PadRight(idx.Select(i => encoded[(int)i]), maxTokens, Gpt2Tokenizer.EndOfTextId), tensor(idx.Select(i => labels[i]).ToArray()));
var (trainSet, valSet, testSet) = (Speeches(trainIdx), Speeches(valIdx), Speeches(testIdx));
sealed record ClfRun(string Method, long Trainable, double Seconds, double ValAccuracy, nn.Module<Tensor, Tensor> Model);
var clfRuns = new List<ClfRun>();
int clfEpochs = Notebook.Pick(quick: 1, full: 4);
ClfRun TrainClassifier(string method, nn.Module<Tensor, Tensor> model, optim.Optimizer opt, InMemoryDataset train, InMemoryDataset val, int epochs, double lr)
{
    var trainer = new Trainer(model, opt, Losses.CrossEntropy)
    {
        Epochs = epochs, Metrics = { Metric.Accuracy }, ClipGradNorm = 1.0,
        Schedule = LRSchedule.WarmupCosine(lr, warmupSteps: 5, totalSteps: epochs * (int)Math.Ceiling(train.Count / 16.0)),
        EarlyStopping = new EarlyStopping("val_accuracy", Patience: epochs, RestoreBest: true),
    };
    var clock = System.Diagnostics.Stopwatch.StartNew();
    trainer.Fit(new BatchLoader(train, 16, shuffle: true, seed: 4), new BatchLoader(val, 64));
    return new ClfRun(method, Freezing.TrainableCount(model), clock.Elapsed.TotalSeconds, trainer.History.Epochs.Max(e => e.ValMetrics["accuracy"]), model);
}

// Linear probe: the frozen backbone's features, once; then the head alone, for many cheap epochs.
Freezing.Freeze(probeClf.Backbone);
Tensor Features(InMemoryDataset d) { using var _ = no_grad(); return probeClf.Features(d.Inputs); }
var probeClock = System.Diagnostics.Stopwatch.StartNew();
var trainFeatures = new InMemoryDataset(Features(trainSet), trainSet.Targets);
var valFeatures = new InMemoryDataset(Features(valSet), valSet.Targets);
var probeRun = TrainClassifier("linear probe", probeClf.Head, Optimizers.AdamW(probeClf.Head.parameters(), 1e-2), trainFeatures, valFeatures, epochs: 60, lr: 1e-2);
clfRuns.Add(probeRun with { Model = probeClf, Seconds = probeClock.Elapsed.TotalSeconds, Trainable = Freezing.TrainableCount(probeClf) });

Notebook.Reseed(3);
var fullClf = new GptSequenceClassifier(GptCheckpoint.Load(shippedFolder), speakers.Length, Gpt2Tokenizer.EndOfTextId);
var groups = ParameterGroups.AdamW([new("backbone", fullClf.Backbone.parameters().ToList(), 1e-4), new("head", fullClf.Head.parameters().ToList(), 1e-3, WeightDecay: 0)]);
clfRuns.Add(TrainClassifier("full fine-tuning", fullClf, groups, trainSet, valSet, clfEpochs, 1e-4));

Notebook.Reseed(3);
var loraClf = new GptSequenceClassifier(GptCheckpoint.Load(shippedFolder), speakers.Length, Gpt2Tokenizer.EndOfTextId);
LoRA.Apply(loraClf.Backbone, new LoRAOptions { Rank = 8, Alpha = 16 });
clfRuns.Add(TrainClassifier("LoRA r = 8 + head", loraClf, Optimizers.AdamW(Freezing.Trainable(loraClf), 1e-3, weightDecay: 0), trainSet, valSet, clfEpochs, 1e-3));
string.Join("; ", clfRuns.Select(r => $"{r.Method}: validation {100 * r.ValAccuracy:F1}% ({r.Trainable:N0} trainable, {r.Seconds:F0} s)"))

// %% [markdown]
// Now, once, the test set:

// %%
double TestAccuracy(nn.Module<Tensor, Tensor> m) => Evaluation.Accuracy(Evaluation.Predict(m, testSet.Inputs, batchSize: 64).argmax(1), testSet.Targets);
var testAcc = clfRuns.Select(r => TestAccuracy(r.Model)).ToList();
display(new DataFrame(
    new StringDataFrameColumn("method", clfRuns.Select(r => r.Method).Prepend("majority class")),
    new Int64DataFrameColumn("trainable", clfRuns.Select(r => r.Trainable).Prepend(0L)),
    new DoubleDataFrameColumn("train s", clfRuns.Select(r => Math.Round(r.Seconds, 1)).Prepend(0.0)),
    new DoubleDataFrameColumn("validation %", clfRuns.Select(r => Math.Round(100 * r.ValAccuracy, 1)).Prepend(Math.Round(100 * Majority(valIdx), 1))),
    new DoubleDataFrameColumn("test %", testAcc.Select(a => Math.Round(100 * a, 1)).Prepend(Math.Round(100 * Majority(testIdx), 1)))));
double standardError = Math.Sqrt(testAcc.Average() * (1 - testAcc.Average()) / testIdx.Length);
display($"{testIdx.Length} test speeches: one speech is {100.0 / testIdx.Length:F2} points; the standard error of an accuracy near {100 * testAcc.Average():F0}% is {100 * standardError:F1} points");
display(Claim.AtLeast("every classifier beats the majority baseline on the test set (points, worst of the three)", testAcc.Min() - Majority(testIdx), full: 0.03));
Claim.AtMost("… but by less than 15 points: the margin is small (points, best of the three)", testAcc.Max() - Majority(testIdx), full: 0.15)

// %% [markdown]
// All three beat the baseline, but not by much: a few points to about ten, one to two standard errors (numbers above). Forty-eight tokens of a speech, seen by a 7.6M-parameter model that read only these plays, carry some of what separates the speakers (names, vocabulary, the plays' subjects) and not most of it; the differences between the three methods are within noise. Full fine-tuning and LoRA can reshape the backbone's features for the task; the probe cannot, but it costs a fraction of a second once the features are cached. Longer excerpts, a pooled feature (exercise 3) or a backbone that read more English are what could move these numbers.
//
// ## 6 · Transfer learning in vision
//
// The same idea for images. A CNN trained on **Fashion-MNIST** (clothes) learns edge and stroke detectors in its convolutions. We re-use them for **MNIST** digits. We only have the 10,000 MNIST test images, so we split them ourselves into 6,000 train, 2,000 validation and 2,000 test images. Three ways, each with 100, 1,000 or all 6,000 training labels:
//
// - **from scratch**: a fresh `SimpleCNN` (chapter 06);
// - **frozen features**: the Fashion-MNIST convolutions frozen, a new linear head trained;
// - **full fine-tuning**: the pretrained convolutions at 3e-4 and the new head at 1e-3.
//
// Every run takes the same number of optimizer steps. First the pretraining, on Fashion-MNIST:

// %%
var fashion = Datasets.FashionMnist(train: true, limit: Notebook.Pick<int?>(quick: 3000, full: null));
Notebook.Reseed(11);
var fashionCnn = new SimpleCNN();
var fashionTrainer = new Trainer(fashionCnn, Optimizers.Adam(fashionCnn.parameters(), 2e-3), Losses.CrossEntropy) { Epochs = Notebook.Pick(quick: 1, full: 2) };
fashionTrainer.Fit(new BatchLoader(fashion, 128, shuffle: true, seed: 1));
var fashionTest = Datasets.FashionMnist(train: false, limit: 2000);
$"SimpleCNN on Fashion-MNIST: {fashionCnn.parameters().Sum(p => p.numel()):N0} parameters, accuracy {100 * Evaluation.Accuracy(Evaluation.Predict(fashionCnn, fashionTest.Inputs).argmax(1), fashionTest.Targets):F1}% on the first 2,000 test images"

// %%
var mnist = Datasets.Mnist(train: false);
var order = BatchLoader.Permutation(mnist.Count, seed: 5, epoch: 0);
var mnistTrainPool = mnist.Subset(order.Take(6000).ToArray());
var mnistVal = mnist.Subset(order.Skip(6000).Take(2000).ToArray());
var mnistTest = mnist.Subset(order.Skip(8000).ToArray());
int[] labelCounts = Notebook.Pick(quick: new[] { 100, 1000 }, full: new[] { 100, 1000, 6000 });
int visionSteps = Notebook.Pick(quick: 25, full: 300);
string[] visionMethods = ["from scratch", "frozen features", "full fine-tuning"];
SimpleCNN Transfer(bool pretrained)
{
    var m = new SimpleCNN();                  // its fc layer is the new head, freshly initialised
    if (pretrained)
        using (no_grad())
            foreach (var (name, p) in m.named_parameters().Where(p => !p.name.StartsWith("fc.")))
                p.copy_(fashionCnn.named_parameters().First(q => q.name == name).parameter);
    return m;
}
optim.Optimizer VisionOptimizer(string method, SimpleCNN m)
{
    var head = m.named_parameters().Where(p => p.name.StartsWith("fc.")).Select(p => p.parameter).ToList();
    var convolutions = m.named_parameters().Where(p => !p.name.StartsWith("fc.")).Select(p => p.parameter).ToList();
    if (method == "frozen features")
    {
        Freezing.FreezeAllBut(m, name => name.StartsWith("fc."));
        return Optimizers.Adam(head, 1e-3);
    }
    if (method == "full fine-tuning") return ParameterGroups.AdamW([new("head", head, 1e-3), new("convolutions", convolutions, 3e-4)]);
    return Optimizers.Adam(m.parameters(), 1e-3);
}
var vision = new List<(string Method, int Labels, double Val, SimpleCNN Model)>();
foreach (var n in labelCounts)
    foreach (var method in visionMethods)
    {
        Notebook.Reseed(21);
        var m = Transfer(pretrained: method != "from scratch");
        var opt = VisionOptimizer(method, m);
        int batch = Math.Min(50, n), perEpoch = (int)Math.Ceiling(n / (double)batch);
        new Trainer(m, opt, Losses.CrossEntropy) { Epochs = Math.Max(1, visionSteps / perEpoch) }.Fit(new BatchLoader(mnistTrainPool.Take(n), batch, shuffle: true, seed: 6));
        vision.Add((method, n, Evaluation.Accuracy(Evaluation.Predict(m, mnistVal.Inputs).argmax(1), mnistVal.Targets), m));
    }
Plot.WithLayout(Plotly.NET.GenericChart.combine(visionMethods.Select(method => Plot.Line(labelCounts.Select(n => (double)n).ToList(), labelCounts.Select(n => 100 * vision.First(v => v.Method == method && v.Labels == n).Val).ToList(), method))),
    ("title", new { text = "MNIST validation accuracy against the number of training labels" }), ("xaxis", new { type = "log", title = new { text = "training labels (log)" } }), ("yaxis", new { title = new { text = "accuracy %" } }))

// %% [markdown]
// The test set, once, for the same models:

// %%
var visionTest = vision.Select(v => (v.Method, v.Labels, Test: Evaluation.Accuracy(Evaluation.Predict(v.Model, mnistTest.Inputs).argmax(1), mnistTest.Targets))).ToList();
double Acc(string method, int n) => visionTest.First(v => v.Method == method && v.Labels == n).Test;
display(new DataFrame(
    new Int32DataFrameColumn("labels", labelCounts),
    new DoubleDataFrameColumn("from scratch %", labelCounts.Select(n => Math.Round(100 * Acc("from scratch", n), 1))),
    new DoubleDataFrameColumn("frozen features %", labelCounts.Select(n => Math.Round(100 * Acc("frozen features", n), 1))),
    new DoubleDataFrameColumn("full fine-tuning %", labelCounts.Select(n => Math.Round(100 * Acc("full fine-tuning", n), 1)))));
double transferGap = labelCounts.SelectMany(n => new[] { "frozen features", "full fine-tuning" }.Select(m => Math.Abs(Acc(m, n) - Acc("from scratch", n)))).Max();
double labelGain = visionMethods.Min(m => Acc(m, labelCounts[1]) - Acc(m, labelCounts[0]));
display(Claim.AtLeast("from scratch, 100 labelled digits already get most test digits right", Acc("from scratch", labelCounts[0]), full: 0.5));
display(Claim.AtMost("pretraining on Fashion-MNIST moves the MNIST test accuracy by at most 3 points at every label count (largest |difference| from scratch)", transferGap, full: 0.03));
Claim.AtLeast("going from 100 to 1,000 labels lifts every method by at least 10 points (smallest gain)", labelGain, full: 0.10)

// %% [markdown]
// Measured, the folklore does not hold here: pretraining on clothes moves the digits' test accuracy by about a point at any number of labels, while ten times more labels lift every method by more than ten points. Two reasons. MNIST is easy for a CNN: 300 steps on 100 digits already get most test digits right, so a network trained from scratch learns usable stroke filters from the digits themselves. And this CNN's Fashion-MNIST filters are few (8 and 16 channels) and generic (edges, blobs, bars): the digits teach the same ones. Transfer pays when the features took far more data to learn than the new task has labels, as with the GPT above: it read all of tiny Shakespeare (1.1 MB) and then had seconds of training on the Psalms. Frozen features keep what the clothes taught; full fine-tuning may move them, which at this budget changes little.
//
// ## Exercises
//
// 1. **LoRA's rank.** Train LoRA with r = 1, 4 and 32 (α = 2r) at the same time budget. Tabulate the trainable parameters and the Psalms and Shakespeare losses. Does a larger rank learn more in the same time?
// 2. **New tokens.** Repeat the LoRA run with the token embedding trainable as well (`Freezing.FreezeAllBut` on `lora_` and `wte.`). How do the known-token and new-token losses change, and what does it cost in trainable parameters and forgetting?
// 3. **Mean pooling.** Replace the last-token feature of the linear probe by the mean of the hidden states over the real tokens (`Backbone.HiddenStates` and a mask). Which separates the speakers better on validation?
// 4. **Unfreeze gradually.** In the vision transfer with 1,000 labels, unfreeze only `conv2` and the head. Compare it with the frozen and the fully fine-tuned models.
//
// Solutions: `solutions/09-fine-tuning-solutions.ipynb`.
