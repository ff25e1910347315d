// Trains the small GPT-2 shipped in data/gpt2-shakespeare: GPT-2's architecture and tokenizer, trained from scratch on
// tiny Shakespeare with the project's Trainer (Workbook.Training). Writes the best-validation checkpoint (Hugging Face layout,
// float16) plus metrics.json with the recipe and the loss curve. Usage:
//   dotnet run -c Release --project tools/Gpt2Shakespeare -- [--steps 2000] [--out data/gpt2-shakespeare] [--work DIR]
using System.Globalization;
using System.Text.Json;
using TorchSharp;
using Workbook.Data;
using Workbook.Gpt;
using Workbook.Text;
using Workbook.Training;
using static TorchSharp.torch;

Workbook.Runtime.TorchRuntime.EnsureLoaded();
string Arg(string name, string fallback) { int i = Array.IndexOf(args, name); return i >= 0 && i + 1 < args.Length ? args[i + 1] : fallback; }
var outDir = Path.GetFullPath(Arg("--out", Path.Combine(DataPaths.DataDirectory, "gpt2-shakespeare")));
var workDir = Path.GetFullPath(Arg("--work", Path.Combine(Path.GetTempPath(), "gpt2-shakespeare-work")));
int threads = int.Parse(Arg("--threads", "2"), CultureInfo.InvariantCulture);
torch.set_num_threads(threads);

var options = new PretrainingOptions
{
    BatchSize = 16, BlockSize = 128, MaxSteps = int.Parse(Arg("--steps", "1000"), CultureInfo.InvariantCulture),
    LearningRate = 1e-3, MinLearningRate = 1e-4, WarmupSteps = 100, WeightDecay = 0.1, Beta2 = 0.99, GradClip = 1.0,
    EvalInterval = 100, Seed = 1337,
};
var architecture = new GptConfig { NumLayers = 6, NumHeads = 4, DModel = 128, MaxLength = 128, Dropout = 0.2 };

// Data: GPT-2 BPE over the whole text, first 90% train, last 10% validation.
var tokenizer = Gpt2Tokenizer.Default;
var text = File.ReadAllText(DataPaths.File("tinyshakespeare", "input.txt"));
var ids = tokenizer.Encode(text);
var vocab = CompactVocabulary.FromTokens(ids, tokenizer.VocabSize);
var data = new TokenDataset(vocab.ToCompact(ids), valFraction: 0.1);
Console.WriteLine($"{ids.Length:N0} tokens ({data.Train.Length:N0} train, {data.Val.Length:N0} val), {vocab.Size:N0} of {tokenizer.VocabSize:N0} GPT-2 tokens used");

torch.manual_seed(options.Seed);
var compactConfig = vocab.CompactConfig(architecture);
var model = new GptModel(compactConfig);
var full = architecture with { VocabSize = tokenizer.VocabSize };
Console.WriteLine($"{full}; trained as a {vocab.Size}-token compact model with {model.ParameterCount:N0} parameters; {threads} threads");

Directory.CreateDirectory(workDir);
bool exportOnly = args.Contains("--export-only"); // redo the export from a finished run in --work
// Training: the project's Trainer (Workbook.Training). One "epoch" = EvalInterval optimizer steps on random windows,
// followed by an evaluation on the whole validation split; early stopping (never triggered: patience > epochs)
// keeps the weights of the best validation loss.
var trainer = new Trainer(model, GptPretraining.CreateOptimizer(model, options), vocab.CrossEntropy)
{
    Epochs = options.MaxSteps / options.EvalInterval,
    Schedule = LRSchedule.WarmupCosine(options.LearningRate, options.WarmupSteps, options.MaxSteps, options.MinLearningRate),
    ClipGradNorm = options.GradClip,
    EarlyStopping = new EarlyStopping("val_loss", Patience: 1000, RestoreBest: true),
    CheckpointPath = Path.Combine(workDir, "trainer-checkpoint.safetensors"),
    Seed = options.Seed,
    ProgressInterval = TimeSpan.FromSeconds(30),
    OnProgress = p => Console.WriteLine(p.ToText()),
};
var trainWindows = TokenWindows.Random(data.Train, options.BatchSize, options.BlockSize, options.EvalInterval, options.Seed);
var valWindows = TokenWindows.Sequential(data.Val, 16, options.BlockSize);
if (File.Exists(trainer.CheckpointPath) && !args.Contains("--fresh")) trainer.LoadCheckpoint(trainer.CheckpointPath); // resume
if (!exportOnly)
{
    trainer.Fit(trainWindows, valWindows);
    GptCheckpoint.Save(model, Path.Combine(workDir, "best")); // the Trainer restored the weights of the best validation loss
}
var history = trainer.History;
File.WriteAllText(Path.Combine(workDir, "history.json"), history.ToJson());
int bestStep = (int)history.Epochs[history.BestEpoch ?? history.Epochs.Count - 1].Steps;
double bestVal = history.Epochs.Min(e => e.ValLoss ?? double.PositiveInfinity);
var curve = history.Epochs.Select(e => (object)new { step = e.Steps, train_loss = Math.Round(e.TrainLoss, 4), val_loss = Math.Round(e.ValLoss ?? double.NaN, 4), lr = e.LearningRate, seconds = Math.Round(e.Seconds, 1), tokens_per_second = Math.Round(e.SamplesPerSecond * options.BlockSize) }).ToList();
var stepLosses = history.StepLosses.ToList();

// Export the best compact model as a standard full-vocabulary GPT-2 in float16, and check it on the whole validation split.
var best = GptCheckpoint.Load(Path.Combine(workDir, "best"));
var compactVal = GptEvaluation.SplitLoss(best, data.Val, options.BlockSize, loss: vocab.CrossEntropy);
using (var fullModel = vocab.Expand(best))
    GptCheckpoint.Save(fullModel, outDir, ScalarType.Float16, new Dictionary<string, string> { ["trained_on"] = "tinyshakespeare", ["best_step"] = bestStep.ToString(CultureInfo.InvariantCulture) });
var shipped = GptCheckpoint.Load(outDir);
var fullVal = GptEvaluation.SplitLoss(shipped, new TokenDataset(ids, 0.1).Val, options.BlockSize);
Console.WriteLine(FormattableString.Invariant($"best step {bestStep}: val {bestVal:F4}; whole val split: compact float32 {compactVal:F4}, shipped float16 full-vocabulary {fullVal:F4}"));

var metrics = new
{
    model = new { full.NumLayers, full.NumHeads, full.DModel, full.MaxLength, full.VocabSize, parameters = full.ParameterCount, compact_vocab = vocab.Size, compact_parameters = best.ParameterCount, dropout = architecture.Dropout },
    recipe = new { options.BatchSize, options.BlockSize, options.MaxSteps, options.LearningRate, options.MinLearningRate, options.WarmupSteps,
        options.WeightDecay, options.Beta2, options.GradClip, options.EvalInterval, options.Seed, schedule = trainer.Schedule!.ToString() },
    data = new { tokens = ids.Length, train_tokens = data.Train.Length, val_tokens = data.Val.Length, split = "first 90% train, last 10% val" },
    threads,
    best_step = bestStep,
    best_val_loss_during_training = Math.Round(bestVal, 4),
    training_seconds = Math.Round(history.Epochs.Sum(e => e.Seconds), 1),
    trainer = "Workbook.Training.Trainer, one epoch = 100 random batches, validation = the whole validation split",
    final_val_loss_full_split = Math.Round(fullVal, 4),
    final_val_loss_compact_float32 = Math.Round(compactVal, 4),
    eval_curve = curve,
    train_loss_every_10_steps = stepLosses.Chunk(10).Select(c => Math.Round(c.Average(), 4)).ToArray(),
};
File.WriteAllText(Path.Combine(outDir, "metrics.json"), JsonSerializer.Serialize(metrics, new JsonSerializerOptions { WriteIndented = true }) + "\n");
Console.WriteLine($"wrote {outDir}");
