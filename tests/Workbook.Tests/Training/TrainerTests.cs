using System.Diagnostics;
using TorchSharp;
using Workbook.Data;
using Workbook.Plots;
using Workbook.Training;
using static TorchSharp.torch;

namespace Workbook.Tests.Training;

[Collection(TorchGlobalStateCollection.Name)]
public class TrainerTests
{
    static string Temp(string name) => Path.Combine(Path.GetTempPath(), "wb-trainer-" + Guid.NewGuid().ToString("N"), name);

    /// <summary>The full recipe: dropout, AdamW, warmup+cosine, clipping, accumulation, shuffling, validation, metrics.</summary>
    static Trainer Recipe(DropoutMlp model, int epochs, int batchesPerEpoch) => new(model, Optimizers.AdamW(model.parameters(), lr: 3e-3), Losses.CrossEntropy)
    {
        Epochs = epochs,
        Metrics = { Metric.Accuracy },
        Schedule = LRSchedule.WarmupCosine(3e-3, warmupSteps: 5, totalSteps: epochs * (batchesPerEpoch + 1) / 2),
        ClipGradNorm = 0.5,
        AccumulationSteps = 2,
        Seed = 11,
    };

    [Fact]
    public void ResumedRunEqualsUninterruptedRun()
    {
        using var data = TrainingData.Classification(200, 10, 4, seed: 3);
        var (trainSet, valSet) = data.Split(0.2, seed: 4);
        var train = new BatchLoader(trainSet, 16, shuffle: true, seed: 5);
        var val = new BatchLoader(valSet, 64);
        const int epochs = 4;

        // A: four epochs in one go.
        torch.manual_seed(11);
        var modelA = new DropoutMlp(10, 32, 4);
        var a = Recipe(modelA, epochs, train.BatchCount);
        var historyA = a.Fit(train, val);
        Assert.Equal(StopReason.Completed, historyA.StopReason);
        Assert.Equal(epochs, historyA.Epochs.Count);

        // B: the same run, "killed" in the middle of epoch 3; it checkpoints after every epoch.
        torch.manual_seed(11);
        var modelB = new DropoutMlp(10, 32, 4);
        var b = Recipe(modelB, epochs, train.BatchCount);
        var path = Temp("run.safetensors");
        b.CheckpointPath = path;
        b.ProgressInterval = TimeSpan.Zero;
        using var cts = new CancellationTokenSource();
        b.OnProgress = p => { if (p.Phase == TrainingPhase.Train && p.Epoch == 2 && p.Batch == 3) cts.Cancel(); };
        var historyB = b.Fit(train, val, cts.Token);
        Assert.Equal(StopReason.Cancelled, historyB.StopReason);
        Assert.StartsWith("cancelled at step", historyB.StopDetail);
        Assert.Equal(2, historyB.Epochs.Count);

        // C: a new process, in effect: a differently initialised model and a new optimizer, resumed from the file.
        torch.manual_seed(12345);
        var modelC = new DropoutMlp(10, 32, 4);
        var c = Recipe(modelC, epochs, train.BatchCount);
        var info = c.LoadCheckpoint(path);
        Assert.Equal(2, info.Epoch);
        torch.rand(3); // drawing from the RNG between load and Fit would break exactness ... so reload to be sure it is restored by Fit's caller
        c.LoadCheckpoint(path);
        var historyC = c.Fit(train, val);

        Assert.Equal(historyA.Steps.Count, historyC.Steps.Count);
        for (int i = 0; i < historyA.Steps.Count; i++)
        {
            Assert.Equal(historyA.Steps[i].Loss, historyC.Steps[i].Loss); // bit-equal doubles
            Assert.Equal(historyA.Steps[i].LearningRate, historyC.Steps[i].LearningRate);
            Assert.Equal(historyA.Steps[i].GradNorm, historyC.Steps[i].GradNorm);
        }
        Assert.Equal(historyA.Column("val_loss"), historyC.Column("val_loss"));
        Assert.Equal(historyA.Column("train_accuracy"), historyC.Column("train_accuracy"));
        var wa = TrainingData.Bytes(modelA); var wc = TrainingData.Bytes(modelC);
        for (int i = 0; i < wa.Length; i++) Assert.True(wa[i].SequenceEqual(wc[i]), $"parameter {i} differs after resume");
        // And the loss went down: the run learned something.
        Assert.True(historyA.Epochs[^1].ValLoss < historyA.Epochs[0].ValLoss);
    }

    [Fact]
    public void GradientAccumulationEqualsOneLargeBatch()
    {
        using var data = TrainingData.Classification(64, 5, 3, seed: 1);
        torch.manual_seed(2);
        var m1 = new TinyMlp(5, 7, 3);
        var m2 = new TinyMlp(5, 7, 3);
        m2.load_state_dict(m1.state_dict());
        var big = new Trainer(m1, Optimizers.Sgd(m1.parameters(), lr: 0.5), Losses.CrossEntropy) { Epochs = 1 };
        big.Fit(new BatchLoader(data, 32));
        var small = new Trainer(m2, Optimizers.Sgd(m2.parameters(), lr: 0.5), Losses.CrossEntropy) { Epochs = 1, AccumulationSteps = 4 };
        small.Fit(new BatchLoader(data, 8));
        Assert.Equal(2, big.Step);
        Assert.Equal(2, small.Step);
        foreach (var ((n, p1), (_, p2)) in m1.named_parameters().Zip(m2.named_parameters()))
            Assert.True((p1 - p2).abs().max().item<float>() < 1e-6, $"{n} differs");
        Assert.Equal(big.History.Steps[1].Loss, small.History.Steps[1].Loss, 6);

        // 5 micro-batches with accumulation 2: steps after batches 2, 4 and the short last group.
        var m3 = new TinyMlp(5, 7, 3);
        var t3 = new Trainer(m3, Optimizers.Sgd(m3.parameters(), lr: 0.1), Losses.CrossEntropy) { Epochs = 1, AccumulationSteps = 2 };
        t3.Fit(new BatchLoader(data.Take(40), 8));
        Assert.Equal(3, t3.Step);
    }

    [Fact]
    public void ClippingScalesTheGradientToTheMaxNorm()
    {
        torch.manual_seed(4);
        using var data = TrainingData.Classification(32, 5, 3, seed: 9);
        var model = new TinyMlp(5, 7, 3);
        var before = model.parameters().Select(p => p.detach().clone()).ToList();
        // The gradient by autograd, outside the trainer.
        var probe = new TinyMlp(5, 7, 3);
        probe.load_state_dict(model.state_dict());
        Losses.CrossEntropy(probe.call(data.Inputs), data.Targets).backward();
        var grads = probe.parameters().Select(p => p.grad!.clone()).ToList();
        double norm = Math.Sqrt(grads.Sum(g => g.pow(2).sum().item<float>()));
        const double maxNorm = 0.05;
        Assert.True(norm > maxNorm * 2, "the test needs a gradient larger than the clip");

        var trainer = new Trainer(model, Optimizers.Sgd(model.parameters(), lr: 1.0), Losses.CrossEntropy) { Epochs = 1, ClipGradNorm = maxNorm };
        trainer.Fit(new BatchLoader(data, 32));
        Assert.Equal(norm, trainer.History.Steps[0].GradNorm!.Value, 4);
        double scale = maxNorm / (norm + 1e-6); // PyTorch's clip coefficient
        var after = model.parameters().ToList();
        for (int i = 0; i < after.Count; i++)
        {
            var expected = before[i] - grads[i] * scale;
            Assert.True((after[i] - expected).abs().max().item<float>() < 1e-6);
        }
    }

    [Fact]
    public void EarlyStoppingStopsAfterPatienceAndRestoresBestWeights()
    {
        torch.manual_seed(5);
        using var data = TrainingData.Classification(64, 5, 3, seed: 2);
        var model = new TinyMlp(5, 7, 3);
        var script = new[] { 1.0, 0.5, 0.6, 0.55, 0.4, 0.3 };
        int evalCalls = 0;
        var score = Metric.Create("score", (o, t) => model.training ? 0 : script[evalCalls++], higherIsBetter: false);
        Dictionary<string, byte[]>? atEpoch2 = null;
        var trainer = new Trainer(model, Optimizers.Sgd(model.parameters(), lr: 0.1), Losses.CrossEntropy)
        {
            Epochs = 6,
            Metrics = { score },
            EarlyStopping = new EarlyStopping("val_score", Patience: 2),
            OnProgress = p =>
            {
                if (p.Phase == TrainingPhase.EpochEnd && p.Epoch == 1)
                    atEpoch2 = model.named_parameters().ToDictionary(np => np.name, np => np.parameter.detach().clone().bytes.ToArray());
            },
        };
        var history = trainer.Fit(new BatchLoader(data, 16), new BatchLoader(data, 64));
        Assert.Equal(4, history.Epochs.Count); // 1.0, 0.5 (best), 0.6, 0.55: two epochs without improvement
        Assert.Equal(1, history.BestEpoch);
        Assert.Equal(StopReason.EarlyStopping, history.StopReason);
        Assert.Contains("early stopping: val_score did not improve for 2 epochs", history.StopDetail);
        foreach (var (name, p) in model.named_parameters())
            Assert.True(atEpoch2![name].SequenceEqual(p.detach().bytes.ToArray()), $"{name} is not the best epoch's");
    }

    [Fact]
    public void EarlyStoppingOnAMissingColumnSaysWhatExists()
    {
        using var data = TrainingData.Classification(32, 5, 3, seed: 2);
        var model = new TinyMlp(5, 7, 3);
        var trainer = new Trainer(model, Optimizers.Sgd(model.parameters(), lr: 0.1), Losses.CrossEntropy)
        { Epochs = 2, EarlyStopping = new EarlyStopping("val_accuracy") };
        var e = Assert.Throws<InvalidOperationException>(() => trainer.Fit(new BatchLoader(data, 16)));
        Assert.Contains("train_loss", e.Message);
        Assert.Contains("pass a validation source", e.Message);
    }

    [Fact]
    public void TrainsInTrainModeAndEvaluatesInEvalModeWithoutGrad()
    {
        using var data = TrainingData.Classification(48, 5, 3, seed: 2);
        var probe = new ModeProbe();
        var trainer = new Trainer(probe, Optimizers.Sgd(probe.parameters(), lr: 0.1), Losses.CrossEntropy) { Epochs = 2 };
        trainer.Fit(new BatchLoader(data, 16), new BatchLoader(data, 24));
        // 2 epochs × (3 training batches + 2 validation batches)
        Assert.Equal(10, probe.Calls.Count);
        Assert.Equal(6, probe.Calls.Count(c => c == (true, true)));
        Assert.Equal(4, probe.Calls.Count(c => c == (false, false)));
        Assert.True(probe.training);
        probe.eval();
        trainer.Evaluate(new BatchLoader(data, 48));
        Assert.False(probe.training); // Evaluate restores the mode it found
    }

    [Fact]
    public void EvaluateAveragesOverSamples()
    {
        using var data = TrainingData.Classification(50, 5, 3, seed: 2);
        torch.manual_seed(1);
        var model = new TinyMlp(5, 7, 3);
        var trainer = new Trainer(model, Optimizers.Sgd(model.parameters(), lr: 0.1), Losses.CrossEntropy) { Metrics = { Metric.Accuracy } };
        var r = trainer.Evaluate(new BatchLoader(data, 16)); // batches 16, 16, 16, 2
        using var noGrad = torch.no_grad();
        var logits = model.call(data.Inputs);
        Assert.Equal(Losses.CrossEntropy(logits, data.Targets).item<float>(), r.Loss, 5);
        Assert.Equal(logits.argmax(1).eq(data.Targets).to(float32).mean().item<float>(), r["accuracy"], 6);
        Assert.Equal(50, r.Samples);
    }

    [Fact]
    public void MemoryStaysFlatOver2000Steps()
    {
        using var data = TrainingData.Classification(1600, 20, 2, seed: 8);
        torch.manual_seed(8);
        var model = new DropoutMlp(20, 64, 2);
        var loader = new BatchLoader(data, 16, shuffle: true, seed: 1); // 100 steps per epoch
        var samples = new List<(int Epoch, long Live, long Rss)>();
        var trainer = new Trainer(model, Optimizers.Adam(model.parameters(), lr: 1e-3), Losses.CrossEntropy)
        {
            Epochs = 20, Metrics = { Metric.Accuracy }, ClipGradNorm = 1.0, Schedule = LRSchedule.Cosine(1e-3, 2000),
            OnProgress = p =>
            {
                if (p.Phase != TrainingPhase.EpochEnd) return;
                GC.Collect();
                GC.WaitForPendingFinalizers();
                samples.Add((p.Epoch, DisposeScopeManager.Statistics.ThreadTotalLiveCount, Process.GetCurrentProcess().WorkingSet64));
            },
        };
        trainer.Fit(loader, new BatchLoader(data.Take(200), 100));
        Assert.Equal(2000, trainer.Step);
        var (_, live2, rss2) = samples[1];
        var (_, live20, rss20) = samples[^1];
        // A leak of one tensor per step would add 1,800 here; the growth must be (near) zero.
        Assert.True(live20 - live2 <= 20, $"live tensors grew from {live2} to {live20} over 1,800 steps");
        Assert.True(rss20 - rss2 < 150L << 20, $"RSS grew by {(rss20 - rss2) >> 20} MiB over 1,800 steps");
    }

    [Fact]
    public void HistoryAsDataFrameChartAndProgressText()
    {
        using var data = TrainingData.Classification(96, 5, 3, seed: 2);
        torch.manual_seed(6);
        var model = new TinyMlp(5, 7, 3);
        var log = new StringWriter();
        var reports = new List<TrainingPhase>();
        var bar = ConsoleProgress.Bar(log, inPlace: false);
        var trainer = new Trainer(model, Optimizers.Adam(model.parameters(), lr: 1e-2), Losses.CrossEntropy)
        {
            Epochs = 3, Metrics = { Metric.Accuracy },
            OnProgress = p => { reports.Add(p.Phase); bar(p); },
        };
        var history = trainer.Fit(new BatchLoader(data, 32), new BatchLoader(data, 96));
        Assert.Equal(3, reports.Count(r => r == TrainingPhase.EpochEnd));
        Assert.Equal(TrainingPhase.Done, reports[^1]);
        var lines = log.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(3, lines.Length);
        Assert.StartsWith("epoch 3/3 [", lines[2]);
        Assert.Contains("val_accuracy", lines[2]);

        var df = history.ToDataFrame();
        Assert.Equal(3, df.Rows.Count);
        Assert.Equal(new[] { "epoch", "steps", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr", "seconds", "samples_per_s" },
            df.Columns.Select(c => c.Name));
        Assert.Equal(history.Epochs[2].ValLoss, (double?)df["val_loss"][2]);
        var html = PlotlyHtml.ToHtml(history.Plot());
        Assert.Contains("val loss", html);
        Assert.Contains("val accuracy", html);
        Assert.Equal(9, history.StepsToDataFrame().Rows.Count);

        var json = history.ToJson();
        var back = TrainingHistory.FromJson(json);
        Assert.Equal(history.StepLosses, back.StepLosses);
        Assert.Equal(history.Column("val_accuracy"), back.Column("val_accuracy"));
    }

    [Fact]
    public void NonFiniteLossStopsWithAReason()
    {
        using var data = TrainingData.Classification(64, 5, 3, seed: 2);
        torch.manual_seed(6);
        var model = new TinyMlp(5, 7, 3);
        var trainer = new Trainer(model, Optimizers.Sgd(model.parameters(), lr: 1e6), Losses.Mse) { Epochs = 50 };
        var targets = new InMemoryDataset(data.Inputs.clone(), data.Inputs[.., ..3] * 1e3);
        var history = trainer.Fit(new BatchLoader(targets, 16));
        Assert.Equal(StopReason.NonFiniteLoss, history.StopReason);
        Assert.Contains("the training loss became", history.StopDetail);
        Assert.True(history.Epochs.Count < 50);
    }

    [Fact]
    public void ACustomSourceThatEndsEarlyStillStepsAndLeavesNoGradient()
    {
        using var data = TrainingData.Classification(48, 5, 3, seed: 2);
        torch.manual_seed(6);
        var model = new TinyMlp(5, 7, 3);
        var trainer = new Trainer(model, Optimizers.Sgd(model.parameters(), lr: 0.1), Losses.CrossEntropy) { Epochs = 2, AccumulationSteps = 2 };
        trainer.Fit(new ShortSource(new BatchLoader(data, 16)));
        // Per epoch: batches 1+2 make a step; batch 3 starts a group of 2 the source never finishes: stepped at the epoch's end.
        Assert.Equal(4, trainer.Step);
        Assert.All(model.parameters(), p => Assert.Equal(0f, p.grad!.abs().max().item<float>()));
        Assert.Equal(new[] { 0, 0, 1, 1 }, trainer.History.Steps.Select(s => s.Epoch));
    }

    /// <summary>Claims one batch more than it yields (a streaming source that ran dry).</summary>
    sealed class ShortSource(BatchLoader inner) : IBatchSource
    {
        public int BatchCount => inner.BatchCount + 1;
        public long SampleCount => inner.SampleCount;
        public IEnumerable<Batch> Batches(int epoch) => inner.Batches(epoch);
    }

    /// <summary>Records (training, grad enabled) at every forward.</summary>
    sealed class ModeProbe : nn.Module<Tensor, Tensor>
    {
        readonly TorchSharp.Modules.Linear fc = nn.Linear(5, 3);
        public readonly List<(bool Training, bool Grad)> Calls = new();
        public ModeProbe() : base(nameof(ModeProbe)) => RegisterComponents();

        public override Tensor forward(Tensor x)
        {
            Calls.Add((training, torch.is_grad_enabled()));
            return fc.call(x);
        }
    }
}
