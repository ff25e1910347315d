using TorchSharp;
using Workbook.Data;
using Workbook.Gpt;
using Workbook.Text;
using static TorchSharp.torch;

namespace Workbook.Tests.Gpt;

public class PretrainingTests
{
    [Fact]
    public void CompactLossEqualsTheFullVocabularyLossOfTheExpandedModel()
    {
        var random = new Random(1);
        var tokens = Enumerable.Range(0, 3000).Select(_ => random.Next(200) * 7).ToArray(); // 200 used ids out of 1500
        var vocab = CompactVocabulary.FromTokens(tokens, 1500);
        Assert.Equal(200, vocab.Size);
        torch.manual_seed(3);
        var compact = new GptModel(new GptConfig { VocabSize = vocab.Size, DModel = 32, NumHeads = 2, NumLayers = 2, MaxLength = 32 });
        using (no_grad()) foreach (var p in compact.parameters()) p.add_(randn_like(p) * 0.05); // not just the init
        var full = vocab.Expand(compact);
        var data = new TokenDataset(vocab.ToCompact(tokens));
        var (x, y) = data.Batch(false, 4, 32, new Random(2));
        var fx = tensor(x.data<long>().Select(i => (long)vocab.ToFull((int)i)).ToArray(), [4, 32]);
        var fy = tensor(y.data<long>().Select(i => (long)vocab.ToFull((int)i)).ToArray(), [4, 32]);
        using var _ = no_grad();
        double compactLoss = vocab.CrossEntropy(compact.forward(x), y).item<float>();
        double fullLoss = GptModel.Loss(full.forward(fx), fy).item<float>();
        Assert.Equal(fullLoss, compactLoss, 4);
        // the unused tokens' logits are exactly zero
        var logits = full.forward(fx);
        var unused = Enumerable.Range(0, 1500).Where(i => i % 7 != 0).Select(i => (long)i).ToArray();
        Assert.Equal(0f, logits.index_select(2, tensor(unused)).abs().max().item<float>());
    }

    [Fact]
    public void TrainingLowersTheLossAndBatchesAreShiftedByOne()
    {
        var pattern = Enumerable.Range(0, 400).Select(i => (i * i + 3 * i) % 17).ToArray(); // a learnable sequence over 17 tokens
        var data = new TokenDataset(pattern, 0.2);
        var (x, y) = data.Batch(false, 3, 10, new Random(5));
        Assert.Equal(x[.., 1..].data<long>().ToArray(), y[.., ..^1].data<long>().ToArray());
        torch.manual_seed(0);
        var model = new GptModel(new GptConfig { VocabSize = 17, DModel = 32, NumHeads = 2, NumLayers = 2, MaxLength = 32 });
        var options = new PretrainingOptions { BatchSize = 8, BlockSize = 32, MaxSteps = 60, WarmupSteps = 5, LearningRate = 3e-3, EvalInterval = 30, EvalBatches = 4 };
        var steps = GptPretraining.Run(model, data, options).ToList();
        Assert.Equal(60, steps.Count);
        Assert.InRange(steps[0].TrainLoss, Math.Log(17) - 0.3, Math.Log(17) + 0.3);
        Assert.True(steps[^1].ValLoss < 1.0, $"validation loss {steps[^1].ValLoss}");
        Assert.Equal(2, steps.Count(s => s.ValLoss is not null));
        Assert.All(steps, s => Assert.True(s.TokensPerSecond > 0));
    }

    [Fact]
    public void TokenWindowsFeedTheTrainer()
    {
        var tokens = Enumerable.Range(0, 1001).Select(i => (i * i + 3 * i) % 17).ToArray();
        var sequential = TokenWindows.Sequential(tokens, batchSize: 3, blockSize: 10);
        var batches = sequential.Batches(0).ToList();
        Assert.Equal(100, sequential.SampleCount);                     // 1000 next-token pairs in windows of 10
        Assert.Equal(34, batches.Count);                                // 33 full batches of 3, then 1 window
        Assert.Equal(tokens[..1000].Select(t => (long)t), batches.SelectMany(b => b.Input.data<long>().ToArray()));
        Assert.Equal(tokens[1..1001].Select(t => (long)t), batches.SelectMany(b => b.Target.data<long>().ToArray()));
        var random = TokenWindows.Random(tokens, 4, 16, batchesPerEpoch: 5, seed: 9);
        Assert.Equal(random.Batches(2).Select(b => b.Input.data<long>().ToArray()), random.Batches(2).Select(b => b.Input.data<long>().ToArray()));
        Assert.NotEqual(random.Batches(2).First().Input.data<long>().ToArray(), random.Batches(3).First().Input.data<long>().ToArray());

        torch.manual_seed(0);
        var model = new GptModel(new GptConfig { VocabSize = 17, DModel = 32, NumHeads = 2, NumLayers = 2, MaxLength = 32 });
        var options = new PretrainingOptions { LearningRate = 3e-3 };
        var trainer = new Workbook.Training.Trainer(model, GptPretraining.CreateOptimizer(model, options), GptModel.Loss) { Epochs = 3, ClipGradNorm = 1.0 };
        var history = trainer.Fit(TokenWindows.Random(tokens[..800], 8, 32, 20), TokenWindows.Sequential(tokens[800..], 8, 32));
        Assert.Equal(60, history.Steps.Count);
        Assert.True(history.Epochs[^1].ValLoss < history.Epochs[0].ValLoss);
        Assert.True(history.Epochs[^1].ValLoss < 1.5, $"validation loss {history.Epochs[^1].ValLoss}");
    }

    [Fact]
    public void ScheduleWarmsUpThenDecaysToTheMinimum()
    {
        var o = new PretrainingOptions { LearningRate = 1e-3, MinLearningRate = 1e-4, WarmupSteps = 10, MaxSteps = 110 };
        Assert.Equal(1e-4, o.LearningRateAt(0), 12);
        Assert.Equal(1e-3, o.LearningRateAt(9), 12);
        Assert.Equal(0.55e-3, o.LearningRateAt(60), 12); // halfway through the cosine
        Assert.Equal(1e-4, o.LearningRateAt(110), 12);
        for (int s = 10; s < 110; s++) Assert.True(o.LearningRateAt(s + 1) <= o.LearningRateAt(s));
    }

    [Fact]
    public void ShippedShakespeareModelLoadsAndPredictsHeldOutText()
    {
        var folder = Path.GetDirectoryName(DataPaths.File("gpt2-shakespeare", "model.safetensors"))!;
        using var model = GptCheckpoint.Load(folder);
        Assert.Equal(50257, model.Config.VocabSize);
        var tok = Gpt2Tokenizer.Default;
        var ids = tok.Encode(File.ReadAllText(DataPaths.File("tinyshakespeare", "input.txt")));
        var val = new TokenDataset(ids, 0.1).Val;
        double loss = GptEvaluation.SplitLoss(model, val.Take(2048).ToArray(), 128);
        Assert.True(loss < 5.6, $"held-out loss {loss:F3}"); // uniform guessing: ln 50257 = 10.8
        var text = new TextGenerator(model, tok).Generate("ROMEO:\n", GenerationOptions.Greedy with { MaxNewTokens = 20 }).Text;
        Assert.Matches("[a-z]{3,}", text);
    }
}
