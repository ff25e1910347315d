// Trains the small GPT-2 shipped in data/gpt2-shakespeare: GPT-2's architecture and tokenizer, trained from scratch on
// tiny Shakespeare with Workbook.Gpt.GptPretraining. Writes the best-validation checkpoint (Hugging Face layout,
// float16) plus metrics.json with the recipe and the loss curve. Usage:
//   dotnet run -c Release --project tools/Gpt2Shakespeare -- [--steps 2000] [--out data/gpt2-shakespeare] [--work DIR]
using System.Globalization;
using System.Text.Json;
using TorchSharp;
using Workbook.Data;
using Workbook.Gpt;
using Workbook.Text;
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
    EvalInterval = 100, EvalBatches = 10, Seed = 1337,
};
var architecture = new GptConfig { NLayer = 6, NHead = 4, NEmbd = 128, NPositions = 128, Dropout = 0.2 };

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
var curve = new List<object>();
var stepLosses = new List<double>();
double bestVal = double.PositiveInfinity;
int bestStep = 0;
bool exportOnly = args.Contains("--export-only"); // redo the export from a finished run in --work
if (exportOnly)
{
    var saved = JsonSerializer.Deserialize<JsonElement>(File.ReadAllText(Path.Combine(workDir, "state.json")));
    bestStep = saved.GetProperty("best_step").GetInt32();
    bestVal = saved.GetProperty("best_val").GetDouble();
    stepLosses = saved.GetProperty("step_losses").EnumerateArray().Select(e => e.GetDouble()).ToList();
    curve = saved.GetProperty("curve").EnumerateArray().Select(e => (object)e).ToList();
}
var log = new StreamWriter(Path.Combine(workDir, "train.log"), append: exportOnly) { AutoFlush = true };
foreach (var s in exportOnly ? [] : GptPretraining.Run(model, data, options, vocab.CrossEntropy))
{
    stepLosses.Add(s.TrainLoss);
    if (s.Step % 10 == 0)
        Console.WriteLine(FormattableString.Invariant($"step {s.Step,5} loss {s.TrainLoss:F3} lr {s.LearningRate:E2} {s.TokensPerSecond,6:F0} tok/s {s.Elapsed.TotalMinutes:F1} min"));
    if (s.ValLoss is double val)
    {
        curve.Add(new { step = s.Step, train_loss = Math.Round(s.EvalTrainLoss!.Value, 4), val_loss = Math.Round(val, 4), lr = s.LearningRate, elapsed_s = Math.Round(s.Elapsed.TotalSeconds, 1) });
        var line = FormattableString.Invariant($"eval step {s.Step} train {s.EvalTrainLoss:F4} val {val:F4} elapsed {s.Elapsed.TotalMinutes:F1} min");
        Console.WriteLine(line);
        log.WriteLine(line);
        if (val < bestVal)
        {
            bestVal = val;
            bestStep = s.Step;
            GptCheckpoint.Save(model, Path.Combine(workDir, "best"));
        }
        File.WriteAllText(Path.Combine(workDir, "state.json"), JsonSerializer.Serialize(new { best_step = bestStep, best_val = bestVal, step_losses = stepLosses, curve }));
    }
}

// Export the best compact model as a standard full-vocabulary GPT-2 in float16, and check it on the whole validation split.
var best = GptCheckpoint.Load(Path.Combine(workDir, "best"));
var compactVal = GptEvaluation.SplitLoss(best, data.Val, options.BlockSize, loss: vocab.CrossEntropy);
using (var fullModel = vocab.Expand(best))
    GptCheckpoint.Save(fullModel, outDir, ScalarType.Float16, new Dictionary<string, string> { ["trained_on"] = "tinyshakespeare", ["best_step"] = bestStep.ToString(CultureInfo.InvariantCulture) });
var shipped = GptCheckpoint.Load(outDir);
var fullVal = GptEvaluation.SplitLoss(shipped, new TokenDataset(ids, 0.1).Val, options.BlockSize);
Console.WriteLine(FormattableString.Invariant($"best step {bestStep}: sampled val {bestVal:F4}; whole val split: compact float32 {compactVal:F4}, shipped float16 full-vocabulary {fullVal:F4}"));

var metrics = new
{
    model = new { full.NLayer, full.NHead, full.NEmbd, full.NPositions, full.VocabSize, parameters = full.ParameterCount, compact_vocab = vocab.Size, compact_parameters = best.ParameterCount, dropout = architecture.Dropout },
    recipe = options,
    data = new { tokens = ids.Length, train_tokens = data.Train.Length, val_tokens = data.Val.Length, split = "first 90% train, last 10% val" },
    threads,
    best_step = bestStep,
    best_sampled_val_loss = Math.Round(bestVal, 4),
    final_val_loss_full_split = Math.Round(fullVal, 4),
    final_val_loss_compact_float32 = Math.Round(compactVal, 4),
    eval_curve = curve,
    train_loss_every_10_steps = stepLosses.Chunk(10).Select(c => Math.Round(c.Average(), 4)).ToArray(),
};
File.WriteAllText(Path.Combine(outDir, "metrics.json"), JsonSerializer.Serialize(metrics, new JsonSerializerOptions { WriteIndented = true }) + "\n");
Console.WriteLine($"wrote {outDir}");
