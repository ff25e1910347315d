using TorchSharp;
using TorchSharp.Modules;
using Workbook.Data;
using Workbook.Training;
using static TorchSharp.torch;

namespace Workbook.Tests.Training;

[Collection(TorchGlobalStateCollection.Name)]
public class TrainingDiagnosticsTests
{
    /// <summary>8 → 16 → 16 → 3 with ReLUs (modules "1" and "3"); <paramref name="deadBias"/> on layer "2" switches "3" off for every input.</summary>
    static Sequential Net(double? deadBias = null)
    {
        manual_seed(5);
        var net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 3));
        if (deadBias is { } b)
            using (no_grad()) ((Linear)net[2]).bias!.fill_(b);
        return net;
    }

    static (Trainer Trainer, TrainingDiagnostics Diagnostics) Run(Sequential net, double lr = 0.1, double? clip = null, int every = 1, bool diagnostics = true)
    {
        using var data = TrainingData.Classification(96, 8, 3, seed: 2);
        var loader = new BatchLoader(data, 32, shuffle: true, seed: 1);
        var d = diagnostics ? new TrainingDiagnostics(net, every) : null;
        var trainer = new Trainer(net, Optimizers.Sgd(net.parameters(), lr: lr), Losses.CrossEntropy) { Epochs = 2, ClipGradNorm = clip };
        if (d is not null) trainer.Callbacks.Add(d);
        trainer.Fit(loader);
        return (trainer, d!);
    }

    [Fact]
    public void FindsTheDeadLayerAndTheWeightsItFreezes()
    {
        var (trainer, d) = Run(Net(deadBias: -100));
        using var _ = d;
        Assert.Equal(["1", "3"], d.Layers);
        Assert.Equal(6, d.RecordedSteps.Count); // 2 epochs × 3 batches, every step
        var dead = d.Activations.Where(a => a.Layer == "3").ToList();
        var alive = d.Activations.Where(a => a.Layer == "1").ToList();
        Assert.Equal(6, dead.Count);
        Assert.All(dead, a => { Assert.Equal(1.0, a.Saturated); Assert.Equal(1.0, a.DeadUnits); Assert.Equal(0.0, a.Std); });
        Assert.All(alive, a => { Assert.InRange(a.Saturated, 0.2, 0.8); Assert.InRange(a.DeadUnits, 0, 0.5); Assert.True(a.Std > 0.05); });
        // Nothing below the dead layer, and not the last layer's weights (its input is all zeros), receives a gradient
        // or moves; only the last bias learns.
        Assert.All(d.Parameters, p => { Assert.Equal(0.0, p.GradNorm); Assert.Equal(0.0, p.UpdateRatio); });
        Assert.Equal(3, d.Parameters.Select(p => p.Name).Distinct().Count());
        Assert.All(d.GradNorms, g => Assert.True(g.Before > 0)); // the last bias's gradient
        Assert.Equal(2, d.Summary(0).Rows.Count); // the two watched layers
    }

    [Fact]
    public void RecordsWhatADirectComputationGivesAndChangesNothing()
    {
        // The layer statistics of step 0 are those of the first batch through the initial weights.
        var reference = Net();
        using var data = TrainingData.Classification(96, 8, 3, seed: 2);
        var first = new BatchLoader(data, 32, shuffle: true, seed: 1).Batches(0).First();
        Tensor relu1;
        using (no_grad()) relu1 = reference[1].call(reference[0].call(first.Input));
        var expected = TrainingDiagnostics.Measure(relu1, Saturation.Relu);

        var (withD, d) = Run(Net(), every: 2);
        using var __ = d;
        var (without, _) = Run(Net(), diagnostics: false);
        var step0 = d.Activations.Single(a => a.Step == 0 && a.Layer == "1");
        Assert.Equal(expected.Mean, step0.Mean, 12);
        Assert.Equal(expected.Std, step0.Std, 12);
        Assert.Equal(expected.Saturated, step0.Saturated, 12);
        Assert.Equal(relu1.numel(), step0.Histogram.Sum());
        Assert.Equal(relu1.max().item<float>(), step0.HistogramEdges[^1], 5);
        Assert.Equal([0L, 2, 4], d.RecordedSteps);

        // Hooks and callbacks only read: the run is bit-identical to one without them.
        Assert.Equal(without.History.StepLosses, withD.History.StepLosses);
        Assert.True(TrainingData.Bytes(without.Model).Zip(TrainingData.Bytes(withD.Model)).All(p => p.First.SequenceEqual(p.Second)));
    }

    [Fact]
    public void GradientNormsAndUpdateRatiosMatchTheStepTaken()
    {
        // With clipping: the norm before equals the Trainer's own (clip_grad_norm_'s return), after is at most the cap.
        var (clipped, d) = Run(Net(), lr: 0.5, clip: 0.05);
        using (d)
        {
            Assert.Equal(clipped.History.Steps.Count, d.GradNorms.Count);
            foreach (var (g, s) in d.GradNorms.Zip(clipped.History.Steps))
            {
                Assert.Equal(s.GradNorm!.Value, g.Before, 4);
                Assert.InRange(g.After, 0, 0.05 + 1e-6);
                Assert.Equal(s.Loss, g.Loss);
            }
            Assert.Contains(d.GradNorms, g => g.Before > 0.06); // the cap was active
        }

        // Plain SGD without clipping: Δw = −lr·g, so update/weight = lr · std(g) / std(w) exactly.
        var (plain, e) = Run(Net(), lr: 0.1);
        using (e)
        {
            Assert.All(e.GradNorms, g => Assert.Equal(g.Before, g.After, 12));
            foreach (var p in e.Parameters)
                Assert.Equal(0.1 * p.GradStd / p.WeightStd, p.UpdateRatio, 4);
            Assert.All(e.Parameters, p => Assert.InRange(p.UpdateRatio, 1e-5, 1));
            var chart = e.Plot();
            Assert.Contains("update/weight", Plotly.NET.GenericChart.toChartHTML(chart));
            Assert.Equal(2, e.Summary().Rows.Count);
            Assert.Equal(3, e.WeightSummary().Rows.Count);
            Assert.NotNull(e.HistogramPlot());
        }
    }

    [Fact]
    public void DisposeRemovesTheHooksAndBadArgumentsAreNamed()
    {
        var net = Net();
        var d = new TrainingDiagnostics(net, every: 1);
        d.Dispose();
        Run(net, diagnostics: false);
        Assert.Empty(d.Activations);
        Assert.Contains("every must be ≥ 1, got 0", Assert.Throws<ArgumentException>(() => new TrainingDiagnostics(net, every: 0)).Message);
        Assert.Contains("pass the layers explicitly", Assert.Throws<ArgumentException>(() => new TrainingDiagnostics(nn.Sequential(nn.Flatten()))).Message);
        Assert.Contains("train first", Assert.Throws<InvalidOperationException>(() => d.Summary()).Message);
        // Only Linear layers: they are watched, with no saturation rule.
        using var linear = new TrainingDiagnostics(nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 1)));
        Assert.Equal(["0", "1"], linear.Layers);
    }
}
