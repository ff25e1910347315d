using TorchSharp;
using Workbook.Data;
using Workbook.Training;
using static TorchSharp.torch;

namespace Workbook.Tests.Training;

/// <summary>The Trainer by steps (MaxSteps, EvalEvery), its callbacks and parameter groups.</summary>
[Collection(TorchGlobalStateCollection.Name)]
public class TrainerStepTests
{
    static string Temp(string name) => Path.Combine(Path.GetTempPath(), "wb-trainer-steps-" + Guid.NewGuid().ToString("N"), name);

    [Fact]
    public void EvaluatingEveryEpochsWorthOfStepsEqualsEvaluatingByEpochs()
    {
        using var data = TrainingData.Classification(160, 10, 4, seed: 3);
        var (trainSet, valSet) = data.Split(0.2, seed: 4);
        var train = new BatchLoader(trainSet, 16, shuffle: true, seed: 5); // 8 batches per epoch
        var val = new BatchLoader(valSet, 64);
        Trainer Make(DropoutMlp m) => new(m, Optimizers.AdamW(m.parameters(), lr: 3e-3), Losses.CrossEntropy)
        {
            Metrics = { Metric.Accuracy }, Schedule = LRSchedule.WarmupCosine(3e-3, 4, 24), ClipGradNorm = 1.0, Seed = 1,
        };

        torch.manual_seed(7);
        var byEpochs = Make(new DropoutMlp(10, 16, 4));
        byEpochs.Epochs = 3;
        var a = byEpochs.Fit(train, val);

        torch.manual_seed(7);
        var bySteps = Make(new DropoutMlp(10, 16, 4));
        bySteps.MaxSteps = 24;
        bySteps.EvalEvery = train.BatchCount;
        var b = bySteps.Fit(train, val);

        Assert.Equal(a.StepLosses, b.StepLosses); // bit-equal: the same batches, dropout masks and rates
        Assert.Equal(a.Epochs.Select(e => e.ValLoss), b.Evaluations.Select(e => e.ValLoss));
        Assert.Equal(a.Epochs.Select(e => e.TrainLoss), b.Evaluations.Select(e => e.TrainLoss));
        Assert.Equal(a.Epochs.Select(e => e.Steps), b.Evaluations.Select(e => e.Steps));
        Assert.Equal(a.Column("val_accuracy"), b.Column("val_accuracy"));
        Assert.Equal(3, b.Epochs.Count);
        Assert.All(b.Epochs, e => Assert.Null(e.ValLoss)); // by steps, epochs keep the training side only
        Assert.Equal(StopReason.Completed, b.StopReason);
        Assert.Equal(b.Evaluations, b.Records);
    }

    /// <summary>Adds noise from torch's global RNG to every batch, as a random augmentation does.</summary>
    sealed class NoisySource(BatchLoader inner) : IBatchSource
    {
        public int BatchCount => inner.BatchCount;
        public long SampleCount => inner.SampleCount;
        public IEnumerable<Batch> Batches(int epoch) =>
            inner.Batches(epoch).Select(b => new Batch(b.Input + 0.1 * torch.randn_like(b.Input), b.Target));
    }

    [Fact]
    public void RunResumedFromACheckpointInsideAnEpochEqualsTheUninterruptedRun()
    {
        using var data = TrainingData.Classification(200, 10, 4, seed: 3);
        var (trainSet, valSet) = data.Split(0.2, seed: 4);
        var train = new NoisySource(new BatchLoader(trainSet, 16, shuffle: true, seed: 5)); // 10 batches per epoch
        var val = new BatchLoader(valSet, 64);
        Trainer Make(DropoutMlp m) => new(m, Optimizers.AdamW(m.parameters(), lr: 3e-3), Losses.CrossEntropy)
        {
            MaxSteps = 13, EvalEvery = 3, AccumulationSteps = 2, Metrics = { Metric.Accuracy },
            Schedule = LRSchedule.WarmupCosine(3e-3, 2, 13), ClipGradNorm = 0.5, Seed = 11,
        };

        torch.manual_seed(11);
        var modelA = new DropoutMlp(10, 32, 4);
        var a = Make(modelA).Fit(train, val);
        Assert.Equal(13, a.Steps.Count);
        Assert.Equal([3L, 6, 9, 12, 13], a.Evaluations.Select(e => e.Steps)); // and once more at the end
        Assert.Equal(2, a.Epochs.Count);                                       // 5 steps per epoch: the third is unfinished

        // B: the same run, cancelled at step 8; it checkpointed at the evaluation of step 6, inside epoch 2 (batch 2 of 10).
        torch.manual_seed(11);
        var path = Temp("run.safetensors");
        using var cts = new CancellationTokenSource();
        var b = Make(new DropoutMlp(10, 32, 4));
        b.CheckpointPath = path;
        b.Callbacks.Add(new CancelAt(8, cts));
        var historyB = b.Fit(train, val, cts.Token);
        Assert.Equal(StopReason.Cancelled, historyB.StopReason);

        // C: a fresh model and optimizer, resumed from B's file; drawing random numbers in between changes nothing.
        torch.manual_seed(12345);
        var modelC = new DropoutMlp(10, 32, 4);
        var c = Make(modelC);
        var info = c.LoadCheckpoint(path);
        Assert.Equal(6, info.Step);
        Assert.Equal(1, info.Epoch);
        torch.rand(7);
        var historyC = c.Fit(train, val);

        Assert.Equal(a.StepLosses, historyC.StepLosses);
        Assert.Equal(a.Steps.Select(s => s.GradNorm), historyC.Steps.Select(s => s.GradNorm));
        Assert.Equal(a.Evaluations.Select(e => (e.Steps, e.TrainLoss, e.ValLoss)), historyC.Evaluations.Select(e => (e.Steps, e.TrainLoss, e.ValLoss)));
        Assert.Equal(a.Column("train_accuracy"), historyC.Column("train_accuracy"));
        Assert.Equal(a.Epochs.Select(e => e.TrainLoss), historyC.Epochs.Select(e => e.TrainLoss));
        var wa = TrainingData.Bytes(modelA); var wc = TrainingData.Bytes(modelC);
        for (int i = 0; i < wa.Length; i++) Assert.True(wa[i].SequenceEqual(wc[i]), $"parameter {i} differs after resume");
    }

    sealed class CancelAt(long step, CancellationTokenSource cts) : TrainerCallback
    {
        public override void OnStepEnd(Trainer trainer, StepRecord record)
        {
            if (trainer.Step == step) cts.Cancel();
        }
    }

    [Fact]
    public void MaxStepsByEpochsRecordsThePartialLastEpoch()
    {
        using var data = TrainingData.Classification(64, 5, 3, seed: 2);
        torch.manual_seed(1);
        var model = new TinyMlp(5, 7, 3);
        var trainer = new Trainer(model, Optimizers.Sgd(model.parameters(), lr: 0.1), Losses.CrossEntropy) { Epochs = 100, MaxSteps = 10 };
        var history = trainer.Fit(new BatchLoader(data, 16), new BatchLoader(data, 64)); // 4 steps per epoch
        Assert.Equal(10, trainer.Step);
        Assert.Equal(StopReason.Completed, history.StopReason);
        Assert.Contains("MaxSteps = 10", history.StopDetail);
        Assert.Equal([4L, 8, 10], history.Epochs.Select(e => e.Steps));
        Assert.NotNull(history.Epochs[^1].ValLoss);
        Assert.Empty(history.Evaluations);
        // Fitting again with nothing left to do changes nothing.
        trainer.Fit(new BatchLoader(data, 16));
        Assert.Equal(10, trainer.Step);
    }

    [Fact]
    public void EarlyStoppingByStepsCountsEvaluations()
    {
        torch.manual_seed(5);
        using var data = TrainingData.Classification(64, 5, 3, seed: 2);
        var model = new TinyMlp(5, 7, 3);
        var script = new[] { 1.0, 0.5, 0.6, 0.55, 0.4 };
        int evalCalls = 0;
        var score = Metric.Create("score", (o, t) => model.training ? 0 : script[evalCalls++], higherIsBetter: false);
        var trainer = new Trainer(model, Optimizers.Sgd(model.parameters(), lr: 0.1), Losses.CrossEntropy)
        {
            MaxSteps = 100, EvalEvery = 3, Metrics = { score }, EarlyStopping = new EarlyStopping("val_score", Patience: 2),
        };
        var history = trainer.Fit(new BatchLoader(data, 16), new BatchLoader(data, 64));
        Assert.Equal(StopReason.EarlyStopping, history.StopReason);
        Assert.Equal(12, trainer.Step); // evaluations at 3 (1.0), 6 (0.5, best), 9 (0.6), 12 (0.55): stop
        Assert.Equal(6, history.BestStep);
        Assert.Null(history.BestEpoch);
        Assert.Contains("did not improve for 2 evaluations (best 0.5 at step 6)", history.StopDetail);
    }

    sealed class Recorder : TrainerCallback
    {
        public readonly List<string> Events = new();
        public readonly List<bool> GradientsPresent = new();

        public override void OnFitStart(Trainer trainer) => Events.Add("start");

        public override void OnBeforeStep(TrainingStepContext context)
        {
            var trainer = context.Trainer;
            Events.Add($"before {trainer.Step}");
            GradientsPresent.Add(trainer.Model.parameters().All(p => p.grad is { } g && g.abs().sum().item<float>() > 0));
        }

        public override void OnStepEnd(Trainer trainer, StepRecord step) => Events.Add($"step {step.Step}");
        public override void OnEvaluation(Trainer trainer, TrainingRecord record) => Events.Add($"{record.GetType().Name} {record.Steps}");
        public override void OnFitEnd(Trainer trainer, TrainingHistory history) => Events.Add($"end {history.StopReason}");
    }

    [Fact]
    public void CallbacksRunAtTheirPointsInOrder()
    {
        using var data = TrainingData.Classification(32, 5, 3, seed: 2);
        torch.manual_seed(1);
        var model = new TinyMlp(5, 7, 3);
        var recorder = new Recorder();
        var trainer = new Trainer(model, Optimizers.Sgd(model.parameters(), lr: 0.1), Losses.CrossEntropy) { Epochs = 2, Callbacks = { recorder } };
        trainer.Fit(new BatchLoader(data, 16), new BatchLoader(data, 32));
        Assert.Equal(new[] { "start", "before 0", "step 0", "before 1", "step 1", "EpochRecord 2", "before 2", "step 2", "before 3", "step 3",
            "EpochRecord 4", "end Completed" }, recorder.Events);
        Assert.All(recorder.GradientsPresent, Assert.True); // the gradients are there before the update

        recorder.Events.Clear();
        var bySteps = new Trainer(model, Optimizers.Sgd(model.parameters(), lr: 0.1), Losses.CrossEntropy) { MaxSteps = 3, EvalEvery = 2, Callbacks = { recorder } };
        bySteps.Fit(new BatchLoader(data, 16));
        Assert.Equal(new[] { "start", "before 0", "step 0", "before 1", "step 1", "EvaluationRecord 2", "before 2", "step 2",
            "EvaluationRecord 3", "end Completed" }, recorder.Events);
    }

    [Fact]
    public void ScheduleKeepsTheRatioOfParameterGroupsAndFrozenParametersAreLeftOut()
    {
        using var data = TrainingData.Classification(32, 5, 3, seed: 2);
        torch.manual_seed(1);
        var model = new TinyMlp(5, 7, 3);
        var ps = model.named_parameters().ToList();
        var fc1 = ps.Where(p => p.name.StartsWith("fc1")).Select(p => p.parameter).ToList();
        var fc2 = ps.Where(p => p.name.StartsWith("fc2")).Select(p => p.parameter).ToList();
        var optimizer = new TorchSharp.Modules.SGD([new TorchSharp.Modules.SGD.ParamGroup(fc1, new TorchSharp.Modules.SGD.Options { LearningRate = 1e-3 }),
            new TorchSharp.Modules.SGD.ParamGroup(fc2, new TorchSharp.Modules.SGD.Options { LearningRate = 1e-2 })], 1e-2);
        var rates = new List<double[]>();
        var trainer = new Trainer(model, optimizer, Losses.CrossEntropy)
        {
            Epochs = 1, Schedule = LRSchedule.WarmupCosine(0.5, 1, 2), Callbacks = { new RateProbe(rates) },
        };
        trainer.Fit(new BatchLoader(data, 16));
        Assert.Equal(0.5, rates[0][0]);          // step 0: the schedule's rate for the first group ...
        Assert.Equal(5.0, rates[0][1], 15);      // ... and ten times it for the other, as their rates were
        Assert.Equal(0.5, rates[1][0]);
        Assert.Equal(trainer.History.Steps.Select(s => s.LearningRate), rates.Select(r => r[0]));

        // Frozen: fc1 out of the optimizer and of the clipped norm.
        foreach (var p in fc1) p.requires_grad = false;
        var before = fc1.Select(p => p.detach().clone()).ToList();
        var head = new Trainer(model, Optimizers.Sgd(fc2, lr: 0.1), Losses.CrossEntropy) { Epochs = 1, ClipGradNorm = 1e9 };
        head.Fit(new BatchLoader(data, 32));
        for (int i = 0; i < fc1.Count; i++) Assert.Equal(0f, (fc1[i] - before[i]).abs().max().item<float>());
        Assert.True(head.History.Steps[0].GradNorm > 0);

        foreach (var p in fc2) p.requires_grad = false;
        var frozen = new Trainer(model, Optimizers.Sgd(fc2, lr: 0.1), Losses.CrossEntropy) { Epochs = 1 };
        Assert.Contains("frozen", Assert.Throws<InvalidOperationException>(() => frozen.Fit(new BatchLoader(data, 32))).Message);
    }

    sealed class RateProbe(List<double[]> rates) : TrainerCallback
    {
        public override void OnBeforeStep(TrainingStepContext context) => rates.Add(context.Trainer.Optimizer.ParamGroups.Select(g => g.LearningRate).ToArray());
    }

    [Fact]
    public void HistoriesWrittenBeforeTheStopReasonWasAnEnumStillLoad()
    {
        var old = """{"Steps":[],"Epochs":[],"BestEpoch":1,"StopReason":"early stopping: val_loss did not improve for 3 epochs (best 0.5 at epoch 2)"}""";
        var h = TrainingHistory.FromJson(old);
        Assert.Equal(StopReason.EarlyStopping, h.StopReason);
        Assert.StartsWith("early stopping: val_loss", h.StopDetail);
        Assert.Equal(StopReason.Cancelled, TrainingHistory.FromJson("""{"Steps":[],"Epochs":[],"StopReason":"cancelled at step 3"}""").StopReason);
        var back = TrainingHistory.FromJson(h.ToJson());
        Assert.Equal((h.StopReason, h.StopDetail, h.BestEpoch), (back.StopReason, back.StopDetail, back.BestEpoch));
        Assert.Throws<InvalidDataException>(() => TrainingHistory.FromJson("""{"Steps":[],"Epochs":[],"StopReason":"gremlins"}"""));
    }

    [Fact]
    public void ProgressByStepsShowsTheStepBudget()
    {
        using var data = TrainingData.Classification(64, 5, 3, seed: 2);
        torch.manual_seed(1);
        var model = new TinyMlp(5, 7, 3);
        var log = new StringWriter();
        var trainer = new Trainer(model, Optimizers.Sgd(model.parameters(), lr: 0.1), Losses.CrossEntropy)
        {
            MaxSteps = 6, EvalEvery = 3, OnProgress = ConsoleProgress.Bar(log, inPlace: false),
        };
        trainer.Fit(new BatchLoader(data, 16), new BatchLoader(data, 64));
        var lines = log.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        // evaluations at steps 3 and 6, the end of epoch 1 (step 4)
        Assert.Equal(3, lines.Length);
        Assert.StartsWith("step 3/6 [████████████", lines[0]);
        Assert.Contains("val_loss", lines[0]);
        Assert.StartsWith("step 6/6 [████████████████████████]", lines[2]);
    }
}
