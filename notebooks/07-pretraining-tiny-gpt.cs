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
// # 07 · Pretraining a tiny GPT
//
// Notebook 05 generated text with a GPT-2 shipped in `data/gpt2-shakespeare/`. This notebook shows **how that model was made**: the same GPT-2 architecture and tokenizer, trained from scratch on tiny Shakespeare (1.1 MB of plays) on two CPU cores.
//
// 1. data preparation with the GPT-2 BPE tokenizer and the train/validation split;
// 2. a trick that makes the 50,257-token output layer affordable, and the check that it changes nothing;
// 3. the recipe of the shipped model and its recorded loss curves;
// 4. the recipe's first steps run here, with live loss curves over the recorded ones, samples during training and the measured tokens/s;
// 5. the shipped model, evaluated.
//
// The model is trained with the same `Trainer` as notebook 04; the full run is reproducible with `dotnet run -c Release --project tools/Gpt2Shakespeare`.

// %%
#r "nuget: Workbook, 0.1.0"
#r "nuget: TorchSharp-cpu, 0.107.0"
using TorchSharp;
using static TorchSharp.torch;
using Workbook;
using Workbook.Plots;
Notebook.Setup(seed: 42)

// %%
using System.Net;
using System.Text.Json;
using Microsoft.Data.Analysis;
using Workbook.Data;
using Workbook.Gpt;
using Workbook.Text;
using Workbook.Training;

// %% [markdown]
// ## 1. Data: text → token ids
//
// The corpus is the char-rnn "tiny Shakespeare" file. Encoded with GPT-2's byte-level BPE (notebook 05), every token is one of GPT-2's 50,257 ids, so the model we train is a drop-in GPT-2.

// %%
using System.IO;
var tok = Gpt2Tokenizer.Default;
var text = File.ReadAllText(DataPaths.File("tinyshakespeare", "input.txt"));
var ids = tok.Encode(text);
var counts = ids.GroupBy(i => i).Select(g => (Id: g.Key, Count: g.Count())).OrderByDescending(c => c.Count).ToList();
$"{text.Length:N0} characters → {ids.Length:N0} tokens ({(double)text.Length / ids.Length:F2} characters per token); {counts.Count:N0} distinct tokens, {100.0 * counts.Count / tok.VocabSize:F1}% of GPT-2's vocabulary"

// %%
new DataFrame(
    new StringDataFrameColumn("token", counts.Take(12).Select(c => tok.TokenDisplay(c.Id))),
    new Int32DataFrameColumn("id", counts.Take(12).Select(c => c.Id)),
    new Int32DataFrameColumn("count", counts.Take(12).Select(c => c.Count)),
    new DoubleDataFrameColumn("share %", counts.Take(12).Select(c => Math.Round(100.0 * c.Count / ids.Length, 2))))

// %% [markdown]
// Token frequencies follow Zipf's law: on log-log axes, count against rank is close to a straight line. A few tokens (newline, comma, " the") are everywhere; half of the distinct tokens occur only a handful of times.

// %%
var ranks = Enumerable.Range(1, counts.Count).Select(r => (double)r).ToList();
display(Plot.WithLayout(Plot.Line(ranks, counts.Select(c => (double)c.Count).ToList(), "count", title: "Token frequency by rank", xTitle: "rank", yTitle: "count", logY: true),
    ("xaxis", new { type = "log", title = new { text = "rank (log)" } })));
// Zipf: log count ≈ a − s·log rank. A least-squares line through ranks 10 to 1,000 (the head is a few symbols, the tail is counts of 1 and 2).
var zipf = Enumerable.Range(10, 991).Select(r => (X: Math.Log(r), Y: Math.Log(counts[r - 1].Count))).ToList();
double mx = zipf.Average(p => p.X), my = zipf.Average(p => p.Y);
double slope = zipf.Sum(p => (p.X - mx) * (p.Y - my)) / zipf.Sum(p => (p.X - mx) * (p.X - mx));
double r2 = Math.Pow(zipf.Sum(p => (p.X - mx) * (p.Y - my)), 2) / (zipf.Sum(p => (p.X - mx) * (p.X - mx)) * zipf.Sum(p => (p.Y - my) * (p.Y - my)));
double handful = counts.Count(c => c.Count <= 5) / (double)counts.Count;
display($"slope of log count against log rank (ranks 10–1,000): {slope:F2}, R² = {r2:F3}; distinct tokens seen at most 5 times: {handful:P1}");
display(Claim.AtLeast("count against rank is close to a straight line on log-log axes (R², ranks 10–1,000)", r2, full: 0.95, quick: 0.95));
display(Claim.Close("Shakespeare uses 11,706 distinct tokens", counts.Count, 11_706, 0));
Claim.AtLeast("half of the distinct tokens occur only a handful of times (≤ 5)", handful, full: 0.5, quick: 0.5)

// %% [markdown]
// **Split.** The first 90% of the token stream trains, the last 10% validates (a contiguous split, as in nanoGPT: random windows from one text would put near-copies of validation passages into training). A training example is a random window of `block_size` tokens; the targets are the same window shifted by one, so every position learns to predict its next token:

// %%
var data = new TokenDataset(ids, valFraction: 0.1);
var (xb, yb) = TokenWindows.Random(data.Train, batchSize: 1, blockSize: 12, batchesPerEpoch: 1, seed: 1).Batches(0).First(); // one random window of 12 tokens and the same window shifted by one
display($"train {data.Train.Length:N0} tokens, validation {data.Val.Length:N0} tokens");
new DataFrame(
    new StringDataFrameColumn("input x", xb[0].data<long>().Select(i => tok.TokenDisplay((int)i))),
    new StringDataFrameColumn("target y", yb[0].data<long>().Select(i => tok.TokenDisplay((int)i))))

// %% [markdown]
// ## 2. The output layer is the cost, and a way around it
//
// A small GPT spends most of its compute in the **LM head**: every position multiplies its hidden state by the whole `[n_embd × 50,257]` embedding matrix and normalises over 50,257 logits. But Shakespeare uses only 11,706 distinct tokens. The other 38,551 never appear as inputs or targets.
//
// Give those unused tokens a **zero embedding row** and keep it fixed. Their logit is then exactly $h \cdot 0 = 0$ for every input, so the full softmax's normaliser splits into
//
// $$\sum_{v=1}^{V} e^{z_v} = \sum_{v \in \text{used}} e^{z_v} + (V - K)\,e^{0}.$$
//
// So we can train a model with only the $K$ used tokens and add **one constant logit $\log(V-K)$** standing for "any unused token" before the cross-entropy: that *is* the 50,257-way loss, not an approximation. `CompactVocabulary.Expand` then writes an ordinary full-vocabulary GPT-2 (used rows at their GPT-2 ids, zeros elsewhere). The check on a random model and a real batch:

// %%
var vocab = CompactVocabulary.FromTokens(ids, tok.VocabSize);
var compactData = new TokenDataset(vocab.ToCompact(ids), valFraction: 0.1);
var architecture = new GptConfig { NumLayers = 6, NumHeads = 4, DModel = 128, MaxLength = 128, Dropout = 0.2 };
var probe = new GptModel(vocab.CompactConfig(architecture));
var fullProbe = vocab.Expand(probe);
var (cx, cy) = TokenWindows.Random(compactData.Train, batchSize: 4, blockSize: 64, batchesPerEpoch: 1, seed: 2).Batches(0).First();
var fx = cx.cpu().data<long>().Select(i => (long)vocab.ToFull((int)i)).ToArray();
var fy = cy.cpu().data<long>().Select(i => (long)vocab.ToFull((int)i)).ToArray();
double compactLoss, fullLoss;
using (no_grad())
{
    probe.eval();
    fullProbe.eval(); // no dropout: both must compute the same function
    compactLoss = vocab.CrossEntropy(probe.forward(cx), cy).item<float>();
    fullLoss = GptModel.Loss(fullProbe.forward(tensor(fx, [4, 64])), tensor(fy, [4, 64])).item<float>();
}
display($"K = {vocab.Size:N0} of V = {vocab.FullVocabSize:N0}; compact loss {compactLoss:F6}, full-vocabulary loss {fullLoss:F6} (difference {Math.Abs(compactLoss - fullLoss):E1}); ln V = {Math.Log(vocab.FullVocabSize):F4}; parameters trained {probe.ParameterCount:N0} instead of {fullProbe.ParameterCount:N0}");
display(Claim.Close("the other 38,551 never appear", vocab.FullVocabSize - vocab.Size, 38_551, 0));
display(Claim.AtMost("compact and full-vocabulary losses agree to float32 rounding", Math.Abs(compactLoss - fullLoss), full: 1e-4, quick: 1e-4));
display(Claim.Between("at initialisation both equal ln V ≈ 10.82", fullLoss, Math.Log(vocab.FullVocabSize) - 0.1, Math.Log(vocab.FullVocabSize) + 0.1, quick: (Math.Log(vocab.FullVocabSize) - 0.1, Math.Log(vocab.FullVocabSize) + 0.1)));
Claim.Close("the head shrinks 4.3×", (double)vocab.FullVocabSize / vocab.Size, 4.3, 0.01)

// %% [markdown]
// At initialisation both equal $\ln V \approx 10.82$ (a uniform guess over 50,257 tokens), and they agree to float32 rounding. The head shrinks 4.3×, and one training step becomes several times faster (exercise 1 measures it).
//
// ## 3. The recipe of the shipped model
//
// `tools/Gpt2Shakespeare` trained it and recorded everything in `data/gpt2-shakespeare/metrics.json`:

// %%
var metrics = JsonDocument.Parse(File.ReadAllText(DataPaths.File("gpt2-shakespeare", "metrics.json"))).RootElement;
var recipe = metrics.GetProperty("recipe");
var modelInfo = metrics.GetProperty("model");
string[] recipeKeys = ["BatchSize", "BlockSize", "MaxSteps", "EvalEvery", "LearningRate", "MinLearningRate", "WarmupSteps", "WeightDecay", "Beta2", "GradClip", "Seed"];
string[] modelKeys = ["NumLayers", "NumHeads", "DModel", "MaxLength", "VocabSize", "parameters", "compact_vocab", "compact_parameters", "dropout"];
new DataFrame(
    new StringDataFrameColumn("setting", modelKeys.Concat(recipeKeys).Append("threads")),
    new StringDataFrameColumn("value", modelKeys.Select(k => modelInfo.GetProperty(k).ToString()).Concat(recipeKeys.Select(k => recipe.GetProperty(k).ToString())).Append(metrics.GetProperty("threads").ToString())))

// %% [markdown]
// The `Trainer` of notebook 04 with AdamW (β = 0.9, 0.99; weight decay 0.1 on matrices only), a linear warm-up then cosine decay of the learning rate, gradient clipping at norm 1, dropout 0.2. It trains by steps (`MaxSteps = 1000`): every 100 steps on random windows (`EvalEvery`), the loss on the whole validation split; the weights with the lowest validation loss are kept. The loss curves of that run:

// %%
var perTen = metrics.GetProperty("train_loss_every_10_steps").EnumerateArray().Select(e => e.GetDouble()).ToList();
var evals = metrics.GetProperty("eval_curve").EnumerateArray().ToList();
double EvalStep(JsonElement e) => e.GetProperty("step").GetInt32();
var chart = Plotly.NET.GenericChart.combine(new[]
{
    Plot.Line(perTen.Select((_, i) => 10.0 * (i + 1)).ToList(), perTen, "train (mean of 10 steps)"),
    Plot.Line(evals.Select(EvalStep).ToList(), evals.Select(e => e.GetProperty("train_loss").GetDouble()).ToList(), "train (mean over the 100 steps before each evaluation)"),
    Plot.Line(evals.Select(EvalStep).ToList(), evals.Select(e => e.GetProperty("val_loss").GetDouble()).ToList(), "validation (whole split)"),
});
Plot.WithLayout(chart, ("title", new { text = "Shipped model: loss curves" }), ("xaxis", new { title = new { text = "step" } }), ("yaxis", new { title = new { text = "cross-entropy (nats/token)" } }))

// %%
var finalVal = metrics.GetProperty("final_val_loss_full_split").GetDouble();
display($"best step {metrics.GetProperty("best_step")}; validation loss over the whole split {finalVal:F3} nats/token = perplexity {Math.Exp(finalVal):F0} (a uniform guess over GPT-2's vocabulary: perplexity {vocab.FullVocabSize:N0})");
double Gap(JsonElement e) => e.GetProperty("val_loss").GetDouble() - e.GetProperty("train_loss").GetDouble();
var half = evals.First(e => EvalStep(e) >= 500);
double epochsSeen = recipe.GetProperty("MaxSteps").GetInt32() * recipe.GetProperty("BatchSize").GetInt32() * recipe.GetProperty("BlockSize").GetInt32() / (double)metrics.GetProperty("data").GetProperty("train_tokens").GetInt32();
display(Claim.That("both losses are still falling at step 1,000", evals[^1].GetProperty("val_loss").GetDouble() < evals[^2].GetProperty("val_loss").GetDouble()
    && evals[^1].GetProperty("train_loss").GetDouble() < evals[^2].GetProperty("train_loss").GetDouble(), $"validation {evals[^2].GetProperty("val_loss").GetDouble():F4} → {evals[^1].GetProperty("val_loss").GetDouble():F4}"));
display(Claim.AtLeast("but the gap between them widens (gap at step 1,000 − gap at step 500)", Gap(evals[^1]) - Gap(half), full: 0.05, quick: 0.05));
display(Claim.Close("300k training tokens seen 6.7 times", epochsSeen, 6.7, 0.05));
Claim.Close("perplexity ≈ 160", Math.Exp(finalVal), 160, 1)

// %% [markdown]
// Both losses are still falling at step 1,000, but the gap between them widens: with 300k training tokens seen 6.7 times, the model starts to memorise. Perplexity ≈ 160 means the model is, on average, as unsure as a uniform choice among ~160 tokens, which for single tokens of Early Modern English is enough to write recognisable Shakespeare-like text (section 5).
//
// ## 4. Training, live: the recipe's first steps
//
// The same code and the **same recipe** as the shipped model, read from `metrics.json` above (seed, batch, AdamW, clipping, dropout, and the warm-up + cosine schedule over 1,000 steps), run here for its first steps only: the Full profile trains the first 200 of the 1,000 steps and evaluates on the whole validation split, so its curve can be laid over the recorded one; Quick trains 40 small steps to show the mechanics. A `Trainer` over `TokenWindows` (random windows for training, consecutive windows of the validation text for evaluation); its progress callback redraws the curves as it goes and samples from the model at each evaluation. The whole run is `dotnet run -c Release --project tools/Gpt2Shakespeare` (10.6 minutes on two cores, see `data/gpt2-shakespeare/README.md`).

// %%
int RecipeInt(string key) => recipe.GetProperty(key).GetInt32();
double RecipeDouble(string key) => recipe.GetProperty(key).GetDouble();
int steps = Notebook.Pick(quick: 40, full: 200), evalEvery = Notebook.Pick(quick: 20, full: RecipeInt("EvalEvery"));
int batchSize = Notebook.Pick(quick: 8, full: RecipeInt("BatchSize")), blockSize = Notebook.Pick(quick: 64, full: RecipeInt("BlockSize"));
string Sample(GptModel m, int tokens) // generate with the compact model, map its ids back to GPT-2's to decode
{
    var prompt = vocab.ToCompact(tok.Encode("ROMEO:\n"));
    var generated = TextGenerator.GenerateIds(m, [prompt], new GenerationOptions { MaxNewTokens = tokens, TopK = 40, Seed = 1 });
    return tok.Decode(generated.Select(s => vocab.ToFull((int)s.Tokens[0])));
}
torch.manual_seed(RecipeInt("Seed")); // as tools/Gpt2Shakespeare does: the same initialisation and dropout draws
var student = new GptModel(vocab.CompactConfig(architecture));
var trainer = new Trainer(student, Optimizers.AdamWMatrixDecay(student, RecipeDouble("LearningRate"), RecipeDouble("WeightDecay"), beta2: RecipeDouble("Beta2")), vocab.CrossEntropy)
{
    MaxSteps = steps, EvalEvery = evalEvery,
    // The recipe's schedule over all 1,000 steps, stopped early: the rate at each step is the recorded run's.
    Schedule = LRSchedule.WarmupCosine(RecipeDouble("LearningRate"), RecipeInt("WarmupSteps"), RecipeInt("MaxSteps"), RecipeDouble("MinLearningRate")),
    ClipGradNorm = RecipeDouble("GradClip"),
    Seed = RecipeInt("Seed"),
};
var samples = new List<(long Step, double Val, string Text)>();
var recordedTrain = Plot.Line(perTen.Select((_, i) => 10.0 * (i + 1)).ToList(), perTen, "recorded run: train (mean of 10 steps)");
var recordedVal = Plot.Line(evals.Select(EvalStep).ToList(), evals.Select(e => e.GetProperty("val_loss").GetDouble()).ToList(), "recorded run: validation");
var live = Notebook.Display("starting…");
trainer.OnProgress = p =>
{
    if (p.Phase == TrainingPhase.Evaluation) samples.Add((p.Step, p.History.Last!.ValLoss!.Value, Sample(student, 30)));
    var stepLosses = p.History.StepLosses;
    live.Update(Plot.WithLayout(Plotly.NET.GenericChart.combine(new[]
    {
        recordedTrain, recordedVal,
        Plot.Line(stepLosses.Select((_, i) => (double)(i + 1)).ToList(), stepLosses, "this run: train (per step)"),
        Plot.Line(p.History.Evaluations.Select(e => (double)e.Steps).ToList(), p.History.Evaluations.Select(e => e.ValLoss ?? double.NaN).ToList(), "this run: validation"),
    }), ("title", new { text = "This run over the recorded 1,000-step run" }), ("xaxis", new { title = new { text = "step" } }), ("yaxis", new { title = new { text = "cross-entropy (nats/token)" } })));
};
var valText = compactData.Val.Take(Notebook.Pick(quick: 16 * blockSize + 1, full: compactData.Val.Length)).ToArray();
var history = trainer.Fit(TokenWindows.Random(compactData.Train, batchSize, blockSize, batchesPerEpoch: evalEvery, seed: RecipeInt("Seed")),
                          TokenWindows.Sequential(valText, 16, blockSize));
var tokensPerSecond = history.Evaluations.Average(e => e.SamplesPerSecond) * blockSize;
$"{history.Steps.Count} steps of {batchSize}×{blockSize} tokens: {tokensPerSecond:F0} tokens/s measured on {torch.get_num_threads()} thread(s); loss {history.Steps[0].Loss:F2} → {history.Steps[^1].Loss:F2}, validation {history.Last!.ValLoss:F2}"

// %% [markdown]
// In Full the run *is* the recorded run's beginning (same seed, data order and schedule; only the floating-point summation order of this machine's BLAS differs), so at each evaluation its validation loss should sit on the recorded curve:

// %%
var recordedAt = evals.Where(e => EvalStep(e) == history.Steps.Count).Select(e => e.GetProperty("val_loss").GetDouble()).ToList();
Claim.AtMost($"validation loss at step {history.Steps.Count} equals the recorded run's {(recordedAt.Count > 0 ? recordedAt[0].ToString("F3") : "(none at this step)")} (|difference|)",
    recordedAt.Count > 0 ? Math.Abs(history.Last!.ValLoss!.Value - recordedAt[0]) : double.NaN, full: 0.1)

// %% [markdown]
// Samples from the model in training (top-k 40, same seed each time). The Quick run stops while they are still frequent tokens and punctuation; longer runs (Full profile) move on to Shakespeare's shape, names followed by a colon and line breaks, then words. Section 5 shows where the full 1,000 steps lead.

// %%
new DataFrame(
    new Int64DataFrameColumn("step", samples.Select(s => s.Step)),
    new DoubleDataFrameColumn("val loss", samples.Select(s => Math.Round(s.Val, 3))),
    new StringDataFrameColumn("sample", samples.Select(s => s.Text.Replace("\n", " ↵ "))))

// %% [markdown]
// Saving works like any GPT-2: expand to the full vocabulary and write the Hugging Face layout (float16 halves the file), which `GptCheckpoint.Load` and `GptHub.FromPretrained` open; so would Python's `transformers`.

// %%
var saveDir = Path.Combine(Path.GetTempPath(), "workbook-07-tiny-gpt");
GptCheckpoint.Save(vocab.Expand(student), saveDir, ScalarType.Float16);
var reloaded = GptCheckpoint.Load(saveDir);
$"saved {string.Join(", ", Directory.GetFiles(saveDir).Select(Path.GetFileName))} ({new FileInfo(Path.Combine(saveDir, "model.safetensors")).Length / 1e6:F1} MB); reloaded: {reloaded.Config}"

// %% [markdown]
// ## 5. The shipped model
//
// Loaded like any checkpoint. Its validation loss, recomputed here with the **full 50,257-way softmax** (no compact trick): in Quick on the first 4,096 validation tokens, in Full on the whole split, where it reproduces the recorded value.

// %%
var shipped = GptHub.FromPretrained(Path.GetDirectoryName(DataPaths.File("gpt2-shakespeare", "model.safetensors"))!);
var evalTokens = Notebook.Pick(quick: 4096, full: data.Val.Length);
var valLoss = GptEvaluation.SplitLoss(shipped, data.Val.Take(evalTokens).ToArray(), blockSize: 128);
display($"validation loss on {evalTokens:N0} tokens: {valLoss:F3} (recorded over the whole split: {finalVal:F3})");
Claim.Between("in Full, on the whole split, it reproduces the recorded value (difference)", valLoss - finalVal, -0.005, 0.005, quick: null)

// %%
var writer = new TextGenerator(shipped, tok);
var sample = writer.Generate("KING RICHARD III:\n", new GenerationOptions { MaxNewTokens = Notebook.Pick(quick: 80, full: 250), Temperature = 0.8, TopK = 40, Seed = 5 });
HTML($"<pre>KING RICHARD III:\n{WebUtility.HtmlEncode(sample.Text)}</pre>")

// %% [markdown]
// ## Exercises
//
// 1. **The compact vocabulary, measured.** Train the same architecture for 5 steps with the full 50,257-token head (`new GptModel(architecture)` on `data`, default loss) and with the compact head. Compare tokens/s and check that the first losses agree.
// 2. **Dropout and overfitting.** Train two models for the same number of steps, one with `Dropout = 0` and one with `Dropout = 0.2`, and plot the train and validation losses of both. Which has the larger gap, and which the lower validation loss?
// 3. **The schedule.** Compare warm-up + cosine decay (`LRSchedule.WarmupCosine`) with a constant learning rate of 1e-3 (`LRSchedule.Constant`) over the same steps. Plot both schedules (`schedule.Values(steps)`) and the resulting losses.
//
// Solutions: `solutions/07-pretraining-tiny-gpt-solutions.ipynb`.
