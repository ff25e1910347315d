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
// # 04b · Initialisation and training diagnostics — solutions
//
// Worked solutions to the exercises of [04b · Initialisation and training diagnostics](../04b-initialisation-and-diagnostics.ipynb). Each solution checks its own claim.

// %%
#r "nuget: Workbook, 0.1.0"
#r "nuget: TorchSharp-cpu, 0.107.0"
using TorchSharp;
using static TorchSharp.torch;
using Workbook;
using Workbook.Plots;
Notebook.Setup(seed: 42)

// %%
using Microsoft.Data.Analysis;
using Workbook.Data;
using Workbook.Training;
using F = TorchSharp.torch.nn.functional;

(string, IReadOnlyList<double>) Series(string name, IEnumerable<double> ys) => (name, ys.ToArray());

// The chapter's probe: 10 layers of width 256 on 1,000 random inputs, with the weights' std given.
const int Width = 256, Depth = 10;
(double[] Std, double[] Saturated) Probe(string activation, Func<Tensor> weight)
{
    torch.manual_seed(1);
    var a = torch.randn(1000, Width);
    var std = new double[Depth]; var saturated = new double[Depth];
    using var _ = torch.no_grad();
    for (int l = 0; l < Depth; l++)
    {
        var z = a.matmul(weight().T);
        a = activation == "tanh" ? z.tanh() : F.relu(z);
        var m = TrainingDiagnostics.Measure(a, activation == "tanh" ? Saturation.Tanh : Saturation.Relu);
        std[l] = m.Std; saturated[l] = m.Saturated;
    }
    return (std, saturated);
}
Func<Tensor> Normal(double std) => () => torch.randn(Width, Width) * std;
double xavier = Math.Sqrt(1.0 / Width), kaiming = Math.Sqrt(2.0 / Width);

// %% [markdown]
// ## Exercise 1 · PyTorch's default
//
// U(−b, b) has variance b²/3, so b = 1/√n gives std 1/√(3n): a factor 1/√3 ≈ 0.58 below Xavier's 1/√n for square layers and 1/√6 ≈ 0.41 below Kaiming's √(2/n). It is *below* both. `nn.Linear`'s own weights, 10 of them:

// %%
Func<Tensor> PyTorchDefault() => () => nn.Linear(Width, Width, hasBias: false).weight!.detach();
var defaults = new[] { "tanh", "ReLU" }.Select(act => (Act: act,
    Default: Probe(act, PyTorchDefault()), Xavier: Probe(act, Normal(xavier)), Kaiming: Probe(act, Normal(kaiming)))).ToList();
display(new DataFrame(
    new StringDataFrameColumn("activation", defaults.Select(d => d.Act)),
    new DoubleDataFrameColumn("std at layer 10: nn.Linear default", defaults.Select(d => d.Default.Std[^1])),
    new DoubleDataFrameColumn("Xavier", defaults.Select(d => d.Xavier.Std[^1])),
    new DoubleDataFrameColumn("Kaiming", defaults.Select(d => d.Kaiming.Std[^1]))));
var measuredStd = nn.Linear(Width, Width).weight!.std().item<float>();
display(Claim.Close("nn.Linear's weight std is 1/√(3·n_in)", measuredStd, 1 / Math.Sqrt(3.0 * Width), 0.002));
var relu = defaults[1];
Claim.AtMost("a 10-layer ReLU stack of default nn.Linear layers shrinks its signal by over 100×", relu.Default.Std[^1] / relu.Default.Std[0], full: 0.01, quick: 0.01)

// %% [markdown]
// Each ReLU layer with PyTorch's default multiplies the std by about √(n · Var(W) / 2) = √(1/6) ≈ 0.41, so ten layers shrink it by ~10⁴. PyTorch's default was chosen for shallow networks and for compatibility (it reproduces Torch7's old default); deep ReLU networks should initialise with `nn.init.kaiming_normal_` (or rely on normalisation layers), as chapter 04b's MLPs do.
//
// ## Exercise 2 · The tanh gain
//
// Near 0, tanh(z) ≈ z − z³/3 loses a little of the variance at every layer; the gain 5/3 over-scales the weights to compensate, at the price of some saturation:

// %%
var gains = new (string Name, Func<Tensor> W)[] { ("Xavier", Normal(xavier)), ("Xavier × 5/3", Normal(xavier * 5 / 3)), ("Kaiming", Normal(kaiming)) };
var gainProbes = gains.Select(g => (g.Name, Result: Probe("tanh", g.W))).ToList();
var layerAxis = Enumerable.Range(1, Depth).Select(i => (double)i).ToList();
display(Plot.Grid(new[]
{
    Plot.Lines(layerAxis, gainProbes.Select(g => Series(g.Name, g.Result.Std)), xTitle: "layer", yTitle: "std"),
    Plot.Lines(layerAxis, gainProbes.Select(g => Series(g.Name + " ", g.Result.Saturated)), xTitle: "layer", yTitle: "saturated fraction"),
}, 1, 2, title: "tanh network: output std (left) and saturated fraction (right)"));
var gained = gainProbes[1].Result;
display(Claim.AtMost("Xavier × 5/3 keeps the std within 15% from layer 3 to layer 10", gained.Std.Skip(2).Max() / gained.Std.Skip(2).Min() - 1, full: 0.15, quick: 0.15));
display(Claim.Between("with the gain, the std settles between 0.5 and 0.8", gained.Std[^1], 0.5, 0.8, quick: (0.5, 0.8)));
Claim.Between("with the gain, a few to 20% of the outputs saturate at layer 10", gained.Saturated[^1], 0.01, 0.2, quick: (0.01, 0.2))

// %% [markdown]
// With gain 5/3 the std settles at a fixed point (between 0.5 and 0.8, measured above) instead of decaying, at a saturated fraction of a few percent; Kaiming's √2 ≈ 1.41 is a slightly smaller gain with the same effect. Xavier with gain 1 keeps shrinking.
//
// ## Exercise 3 · Does the initialisation still matter after training starts?

// %%
var fashion = Datasets.FashionMnist(train: true, limit: Notebook.Pick(quick: 2000, full: 6000));
var loader = new BatchLoader(fashion, batchSize: 64, shuffle: true, seed: 2);
nn.Module<Tensor, Tensor> TanhMlp(Func<int, double> initStd)
{
    var layers = new List<nn.Module<Tensor, Tensor>> { nn.Flatten() };
    int inputs = 784;
    for (int i = 0; i < 6; i++)
    {
        var linear = nn.Linear(inputs, 128);
        using (torch.no_grad()) { nn.init.normal_(linear.weight!, 0, initStd(inputs)); linear.bias!.zero_(); }
        layers.Add(linear);
        layers.Add(nn.Tanh());
        inputs = 128;
    }
    layers.Add(nn.Linear(inputs, 10));
    return nn.Sequential(layers.ToArray());
}
var schemes = new (string Name, Func<int, double> Std)[]
{
    ("N(0, 1)", _ => 1.0), ("Xavier", n => Math.Sqrt(2.0 / (n + 128))), ("Kaiming", n => Math.Sqrt(2.0 / n)),
};
var runs = schemes.Select(s =>
{
    Notebook.Reseed(1);
    var model = TanhMlp(s.Std);
    var d = new TrainingDiagnostics(model, every: 5);
    var trainer = new Trainer(model, Optimizers.Adam(model.parameters(), lr: 1e-3), Losses.CrossEntropy) { Epochs = 1, Callbacks = { d } };
    trainer.Fit(loader);
    var last = d.Layers[^1];
    var records = d.Activations.Where(a => a.Layer == last).OrderBy(a => a.Step).ToList();
    double medianLog = d.Parameters.Select(p => Math.Log10(p.UpdateRatio)).Order().ElementAt(d.Parameters.Count / 2);
    return (s.Name, Loss: trainer.History.StepLosses[^10..].Average(), SatFirst: records[0].Saturated, SatLast: records[^1].Saturated, MedianLog: medianLog, Losses: trainer.History.StepLosses);
}).ToList();
display(Plot.Curves(runs.Select(r => Series(r.Name, TrainingHistory.MovingAverage(r.Losses, 5))), title: "6-layer tanh MLP, Adam 1e-3: training loss (moving average of 5)", yTitle: "loss"));
display(new DataFrame(
    new StringDataFrameColumn("init", runs.Select(r => r.Name)),
    new DoubleDataFrameColumn("loss, last 10 steps", runs.Select(r => Math.Round(r.Loss, 3))),
    new DoubleDataFrameColumn("saturated, last layer, step 0", runs.Select(r => Math.Round(r.SatFirst, 3))),
    new DoubleDataFrameColumn("saturated, last layer, end", runs.Select(r => Math.Round(r.SatLast, 3))),
    new DoubleDataFrameColumn("median log10 update/weight", runs.Select(r => Math.Round(r.MedianLog, 2)))));
display(Claim.AtLeast("N(0, 1) starts with most of the last layer saturated", runs[0].SatFirst, full: 0.5, quick: 0.5));
Claim.AtLeast("after one epoch N(0, 1) is still behind Kaiming by over 0.1 in loss", runs[0].Loss - runs[2].Loss, full: 0.1, quick: 0.1)

// %% [markdown]
// The saturated network does learn (Adam rescales the tiny gradients), but it starts from saturated units, and its update-to-weight ratios are much smaller because its weights are ~10× larger while Adam's steps are about lr in size: the same learning rate is effectively a much smaller one. One epoch later it is still clearly behind the well-initialised networks. Initialisation is not only about the first step.
