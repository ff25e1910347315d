using TorchSharp;
using Workbook.Data;
using Workbook.FineTuning;
using Workbook.Gpt;
using Workbook.Tests.Gpt;
using Workbook.Tests.Training;
using Workbook.Training;
using static TorchSharp.torch;

namespace Workbook.Tests.FineTuning;

[Collection(TorchGlobalStateCollection.Name)]
public class FineTuningTrainingTests
{
    static List<TorchSharp.Modules.Parameter> Params(nn.Module m, string prefix) =>
        m.named_parameters().Where(p => p.name.StartsWith(prefix, StringComparison.Ordinal)).Select(p => p.parameter).ToList();

    [Fact]
    public void EachParameterGroupFollowsTheScheduleAtItsOwnRatio()
    {
        manual_seed(1);
        var model = new TinyMlp(4, 5, 3);
        var opt = ParameterGroups.AdamW([new("body", Params(model, "fc1."), 1e-3), new("head", Params(model, "fc2."), 1e-2, WeightDecay: 0)]);
        var schedule = LRSchedule.WarmupCosine(1e-3, warmupSteps: 3, totalSteps: 12);
        var seen = new List<double[]>();
        var trainer = new Trainer(model, opt, Losses.CrossEntropy)
        {
            Epochs = 3, Schedule = schedule,
            OnProgress = p => { if (p.Phase == TrainingPhase.Train) seen.Add(opt.ParamGroups.Select(g => g.LearningRate).ToArray()); },
            ProgressInterval = TimeSpan.Zero,
        };
        trainer.Fit(new BatchLoader(TrainingData.Classification(32, 4, 3, seed: 2), batchSize: 8));
        Assert.Equal(12, trainer.Step);
        for (int t = 0; t < 12; t++)
        {
            Assert.Equal(schedule.LearningRate(t), trainer.History.Steps[t].LearningRate, 12);
            Assert.Equal(schedule.LearningRate(t), seen[t][0], 12);
            Assert.Equal(10 * schedule.LearningRate(t), seen[t][1], 12);
        }
    }

    [Fact]
    public void FrozenParametersStayPutUnderTheTrainerAndGetNoGradient()
    {
        manual_seed(2);
        var model = new TinyMlp(4, 6, 3);
        Assert.Equal(2, Freezing.FreezeAllBut(model, name => name.StartsWith("fc2.", StringComparison.Ordinal)));
        Assert.Equal(6L * 3 + 3, Freezing.TrainableCount(model));
        var before = model.named_parameters().ToDictionary(p => p.name, p => p.parameter.detach().clone());
        var trainer = new Trainer(model, Optimizers.AdamW(Freezing.Trainable(model), 1e-2), Losses.CrossEntropy) { Epochs = 2, ClipGradNorm = 1.0 };
        trainer.Fit(new BatchLoader(TrainingData.Classification(40, 4, 3, seed: 3), batchSize: 10));
        foreach (var (name, p) in model.named_parameters())
        {
            bool same = p.detach().eq(before[name]).all().item<bool>();
            Assert.Equal(name.StartsWith("fc1.", StringComparison.Ordinal), same);
            if (name.StartsWith("fc1.", StringComparison.Ordinal)) Assert.Null(p.grad);
        }
        Assert.Throws<ArgumentException>(() => ParameterGroups.AdamW([new("all", model.parameters().ToList(), 1e-3)])); // frozen ones inside
        Assert.Throws<ArgumentException>(() => ParameterGroups.AdamW([new("a", Params(model, "fc2."), 1e-3), new("b", Params(model, "fc2."), 1e-3)]));
        Assert.Contains("learning rate must be positive", Assert.Throws<ArgumentException>(() => ParameterGroups.AdamW([new("a", Params(model, "fc2."), 0)])).Message);
    }

    /// <summary>A validation source that takes a while, to show that evaluation time does not count.</summary>
    sealed class SlowSource(IBatchSource inner, TimeSpan delay) : IBatchSource
    {
        public int BatchCount => inner.BatchCount;
        public long SampleCount => inner.SampleCount;
        public IEnumerable<Batch> Batches(int epoch)
        {
            foreach (var b in inner.Batches(epoch)) { Thread.Sleep(delay); yield return b; }
        }
    }

    [Fact]
    public void ATimeBudgetStopsTrainingAndDoesNotCountEvaluation()
    {
        manual_seed(3);
        var model = new TinyMlp(4, 8, 3);
        var data = TrainingData.Classification(64, 4, 3, seed: 4);
        var trainer = new Trainer(model, Optimizers.AdamW(model.parameters(), 1e-3), Losses.CrossEntropy) { Epochs = 1 };
        trainer.Fit(new BatchLoader(data, 16)); // warm-up (first calls are slow), outside the budget
        trainer.Epochs = 1_000_000;
        int reports = 0;
        trainer.OnProgress = _ => reports++;
        using var budget = new TimeBudget(TimeSpan.FromSeconds(1.5));
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var history = trainer.Fit(new BatchLoader(data, 32), new SlowSource(new BatchLoader(data, 64), TimeSpan.FromMilliseconds(100)), budget.Attach(trainer));
        clock.Stop();
        Assert.True(budget.Exhausted, $"not exhausted: used {budget.Used}, stop: {history.StopReason}");
        Assert.Equal(StopReason.Cancelled, history.StopReason);
        Assert.True(budget.Used >= budget.Budget, $"used {budget.Used}");
        // Every completed epoch evaluated (100 ms each), and none of that is in Used.
        int evaluated = history.Epochs.Count - 1;
        Assert.True(evaluated >= 1, "no epoch completed within the budget");
        Assert.True(clock.Elapsed - budget.Used >= TimeSpan.FromMilliseconds(100 * evaluated) - TimeSpan.FromMilliseconds(5),
            $"wall {clock.Elapsed}, used {budget.Used}, {evaluated} evaluations");
        Assert.Equal(evaluated, budget.EpochEnds.Count);
        Assert.True(budget.EpochEnds.Zip(budget.EpochEnds.Skip(1)).All(p => p.Second > p.First), string.Join(", ", budget.EpochEnds));
        Assert.True(reports > 0); // the trainer's own callback still runs
        Assert.Throws<ArgumentOutOfRangeException>(() => new TimeBudget(TimeSpan.Zero));
    }

    [Fact]
    public void TokenLossesAreThePerPositionLossesWhoseMeanIsTheSplitLoss()
    {
        using var model = Golden.Model();
        var g = new Generator(3);
        var tokens = Enumerable.Range(0, 150).Select(_ => (int)randint(0, 512, [1], generator: g).item<long>()).ToArray();
        var losses = GptEvaluation.TokenLosses(model, tokens, blockSize: 64, batchSize: 2); // windows of 64, 64 and 21 positions
        Assert.Equal(149, losses.Length);
        Assert.Equal(GptEvaluation.SplitLoss(model, tokens, 64, 2), losses.Average(), 4);
        // Position 70 is the 7th of the second window: predicting token 71 from tokens 64..70.
        using var _ = no_grad();
        var logits = model.forward(tensor(tokens.Skip(64).Take(7).Select(t => (long)t).ToArray(), [1, 7]));
        double expected = nn.functional.cross_entropy(logits[0, 6].unsqueeze(0), tensor(new long[] { tokens[71] })).item<float>();
        Assert.Equal(expected, losses[70], 4);
        Assert.Throws<ArgumentException>(() => GptEvaluation.TokenLosses(model, [1], 64));
    }

    [Fact]
    public void CompactingAPretrainedModelKeepsItsFullVocabularyLoss()
    {
        using var full = Golden.Model();
        // Zero the rows of the tokens the "corpus" never uses, as a model trained on that corpus has them.
        var used = Enumerable.Range(0, 200).Select(i => i * 2).ToArray(); // even ids < 400
        using (no_grad())
        {
            var keep = zeros(512, 1);
            foreach (var id in used) keep[id, 0] = tensor(1f);
            full.TokenEmbedding.mul_(keep);
        }
        var vocab = CompactVocabulary.FromTokens(used, 512);
        using var compact = vocab.Compact(full);
        Assert.Equal(200, compact.Config.VocabSize);
        var g = new Generator(7);
        var ids = tensor(Enumerable.Range(0, 2 * 20).Select(_ => (long)used[(int)randint(0, 200, [1], generator: g).item<long>()]).ToArray(), [2, 20]);
        var compactIds = tensor(vocab.ToCompact(ids.data<long>().Select(v => (int)v)).Select(v => (long)v).ToArray(), [2, 20]);
        using var _ = no_grad();
        double fullLoss = GptModel.Loss(full.forward(ids[.., ..^1].contiguous()), ids[.., 1..].contiguous()).item<float>();
        double compactLoss = vocab.CrossEntropy(compact.forward(compactIds[.., ..^1].contiguous()), compactIds[.., 1..].contiguous()).item<float>();
        Assert.Equal(fullLoss, compactLoss, 4);
        using var back = vocab.Expand(compact);
        Assert.True(Golden.MaxDiff(back.TokenEmbedding, full.TokenEmbedding) == 0);

        using var dense = Golden.Model(); // every row non-zero: compacting would change the loss
        Assert.Contains("312 tokens outside the compact vocabulary have non-zero embeddings", Assert.Throws<ArgumentException>(() => { vocab.Compact(dense); }).Message);
    }
}
