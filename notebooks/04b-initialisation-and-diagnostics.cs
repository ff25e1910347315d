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
// # 04b · Initialisation and training diagnostics
//
// Chapter 04 trained networks that learned. This one is about the networks that do not, and about the numbers that tell you why before you have wasted a day of training. A deep network multiplies its input by one weight matrix per layer; if each multiplication grows or shrinks the signal a little, ten layers grow or shrink it a lot. The same holds for the gradients on the way back.
//
// 1. activations and gradients layer by layer in a 10-layer tanh and ReLU network under **naive N(0, 1)**, **Xavier/Glorot** and **Kaiming/He** initialisation: mean, std, saturated fraction, histograms;
// 2. what **LayerNorm** changes (and what it costs);
// 3. **GPT-2's residual scaling** 1/√(2·n_layer), measured on the residual stream of a 12- and a 48-layer GPT;
// 4. the library's **`TrainingDiagnostics`**, a `Trainer` callback that records these numbers while a model trains, and the **update-to-weight ratio** per layer over training for three learning rates;
// 5. **gradient clipping**: the gradient norm before and after clipping, and what happens without it at a high learning rate.

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
using Workbook.Gpt;
using Workbook.Training;
using F = TorchSharp.torch.nn.functional;

double[] Values(Tensor t) => t.detach().cpu().to(float64).data<double>().ToArray();
(string, IReadOnlyList<double>) Series(string name, IEnumerable<double> ys) => (name, ys.ToArray());

// %% [markdown]
// ## 1. Ten layers, three initialisations
//
// The network: 10 layers of width n = 256, each `z = W a` followed by tanh or ReLU (no biases; they start at 0 anyway), on a batch of 1,000 random inputs x ~ N(0, 1). A pre-activation is a sum of n products, zⱼ = Σᵢ Wⱼᵢ aᵢ, so with independent zero-mean weights
//
// Var(z) = n · Var(W) · E[a²].
//
// * **Naive N(0, 1)**: Var(W) = 1, so Var(z) = 256 · E[a²]: the pre-activations are 16× wider than the inputs.
// * **Xavier/Glorot** (Glorot & Bengio, 2010): Var(W) = 2 / (n_in + n_out), here 1/n. Keeps Var(z) = E[a²], the right scale for an activation that is linear near 0 (tanh), averaged over the forward and the backward pass.
// * **Kaiming/He** (He et al., 2015): Var(W) = 2 / n_in. ReLU zeroes half of its inputs, so E[a²] = Var(z)/2; the factor 2 puts it back.
//
// For the backward pass, the same argument with Wᵀ: the gradient with respect to the activations is multiplied by Wᵀ and by the activation's slope at every layer. We backpropagate an MSE loss against a random target and record, per layer, the output's std and saturated fraction (tanh: |a| ≥ 0.97; ReLU: a ≤ 0, where the slope is 0) with `TrainingDiagnostics.Measure`, and the std of the gradient of each weight matrix.

// %%
const int Width = 256, Depth = 10, ProbeBatch = 1000;
record InitProbe(string Activation, string Init, bool LayerNorm, double[] Std, double[] Mean, double[] Saturated, double[] GradStd, Tensor[] Outputs);

double InitStd(string init) => init switch
{
    "N(0, 1)" => 1.0,
    "Xavier" => Math.Sqrt(2.0 / (Width + Width)),
    "Kaiming" => Math.Sqrt(2.0 / Width),
    _ => throw new ArgumentException($"unknown init '{init}'"),
};

InitProbe Probe(string activation, string init, bool layerNorm = false)
{
    torch.manual_seed(1);   // the same inputs and the same random directions for every variant: only the scale differs
    var x = torch.randn(ProbeBatch, Width);
    var weights = Enumerable.Range(0, Depth).Select(_ => (torch.randn(Width, Width) * InitStd(init)).requires_grad_(true)).ToList();
    var a = x;
    var outputs = new List<Tensor>();
    foreach (var w in weights)
    {
        var z = a.matmul(w.T);
        if (layerNorm) z = F.layer_norm(z, new long[] { Width });
        a = activation == "tanh" ? z.tanh() : F.relu(z);
        outputs.Add(a);
    }
    var target = torch.randn(ProbeBatch, Width);
    Losses.Mse(a, target).backward();
    var rule = activation == "tanh" ? Saturation.Tanh : Saturation.Relu;
    var stats = outputs.Select(o => TrainingDiagnostics.Measure(o, rule)).ToArray();
    return new InitProbe(activation, init, layerNorm, stats.Select(s => s.Std).ToArray(), stats.Select(s => s.Mean).ToArray(),
        stats.Select(s => s.Saturated).ToArray(), weights.Select(w => w.grad!.std().item<float>() * 1.0).ToArray(),
        outputs.Select(o => o.detach()).ToArray());
}

string[] inits = { "N(0, 1)", "Xavier", "Kaiming" };
var probes = new List<InitProbe>();
foreach (var act in new[] { "tanh", "ReLU" })
{
    foreach (var init in inits) probes.Add(Probe(act, init));
    probes.Add(Probe(act, "N(0, 1)", layerNorm: true));
}
string Label(InitProbe p) => $"{p.Activation}, {p.Init}{(p.LayerNorm ? " + LayerNorm" : "")}";
InitProbe Find(string act, string init, bool ln = false) => probes.Single(p => p.Activation == act && p.Init == init && p.LayerNorm == ln);
new DataFrame(
    new StringDataFrameColumn("network", probes.Select(Label)),
    new DoubleDataFrameColumn("std, layer 1", probes.Select(p => p.Std[0])),
    new DoubleDataFrameColumn("std, layer 10", probes.Select(p => p.Std[^1])),
    new DoubleDataFrameColumn("saturated, layer 10", probes.Select(p => Math.Round(p.Saturated[^1], 3))),
    new DoubleDataFrameColumn("std(∂L/∂W), layer 1", probes.Select(p => p.GradStd[0])),
    new DoubleDataFrameColumn("std(∂L/∂W), layer 10", probes.Select(p => p.GradStd[^1])))

// %%
var layerAxis = Enumerable.Range(1, Depth).Select(i => (double)i).ToList();
Plot.Grid(new[]
{
    Plot.Lines(layerAxis, probes.Select(p => Series(Label(p), p.Std)), xTitle: "layer", yTitle: "std of the output", logY: true),
    Plot.Lines(layerAxis, probes.Select(p => Series(Label(p) + " ", p.GradStd)), xTitle: "layer", yTitle: "std of ∂L/∂W", logY: true),
}, 1, 2, title: "Output std (left) and weight-gradient std (right) per layer, log scale")

// %% [markdown]
// What the table and the chart show, layer by layer:
//
// * **ReLU, N(0, 1)** explodes: every layer multiplies the scale by √(256/2) ≈ 11.3, so the tenth layer's outputs are around 10¹⁰. The gradients are as absurd.
// * **ReLU, Xavier** fades: Xavier's variance is half of what ReLU needs, so every layer multiplies the std by about 1/√2, and after ten layers the signal is ~30× smaller than at the first.
// * **ReLU, Kaiming** stays put, as designed.
// * **tanh, N(0, 1)** does not explode (tanh is bounded) but **saturates**: with pre-activations of std ≈ 16, almost every unit sits at ±1 where tanh′ ≈ 0. The forward std looks healthy (≈ 0.97), which is exactly why saturation is checked separately. The backward pass is the problem: going down, each layer multiplies the gradient by Wᵀ (×16) and by tanh′ (mostly ≈ 0), so the layers receive gradients that differ by four orders of magnitude from the first layer to the last. No single learning rate suits them all.
// * **tanh, Xavier** shrinks slowly (tanh is below its tangent, so each layer loses a little), **tanh, Kaiming** stays around 0.55 with almost no saturation.
//
// The measured values behind these sentences:

// %%
display(Claim.AtLeast("ReLU with N(0, 1): the output std at layer 10 is above 1e8", Find("ReLU", "N(0, 1)").Std[^1], full: 1e8, quick: 1e8));
display(Claim.AtMost("ReLU with Xavier: the output std at layer 10 is below 0.05", Find("ReLU", "Xavier").Std[^1], full: 0.05, quick: 0.05));
display(Claim.Between("ReLU with Kaiming: the output std at layer 10 stays within [0.4, 1.2]", Find("ReLU", "Kaiming").Std[^1], 0.4, 1.2, quick: (0.4, 1.2)));
display(Claim.AtLeast("tanh with N(0, 1): at least 80% of layer 10's outputs are saturated", Find("tanh", "N(0, 1)").Saturated[^1], full: 0.8, quick: 0.8));
display(Claim.AtLeast("tanh with N(0, 1): layer 1's weight gradient is over 1,000× layer 10's", Find("tanh", "N(0, 1)").GradStd[0] / Find("tanh", "N(0, 1)").GradStd[^1], full: 1000, quick: 1000));
display(Claim.AtMost("tanh with Xavier: the std at layer 10 is less than half of layer 1's", Find("tanh", "Xavier").Std[^1] / Find("tanh", "Xavier").Std[0], full: 0.5, quick: 0.5));
Claim.AtMost("tanh with Kaiming: under 5% of layer 10's outputs are saturated", Find("tanh", "Kaiming").Saturated[^1], full: 0.05, quick: 0.05)

// %% [markdown]
// The histograms of the tanh network's outputs make the saturation visible: under N(0, 1) the mass piles up at −1 and +1 from the first layer on; under Xavier it narrows layer by layer around 0; under Kaiming it keeps its shape.

// %%
(double[] Centers, double[] Fraction) Histogram(Tensor a, double lo, double hi, int bins = 50)
{
    var flat = a.reshape(-1).to(float64);
    var bin = ((flat - lo) / (hi - lo) * bins).floor().clamp(0, bins - 1).to(int64);
    var counts = Values(bin.bincount(null, bins));
    return (Enumerable.Range(0, bins).Select(i => lo + (i + 0.5) * (hi - lo) / bins).ToArray(), counts.Select(c => c / flat.shape[0]).ToArray());
}
int[] shownLayers = { 1, 4, 7, 10 };
Plot.Grid(inits.Select(init =>
{
    var p = Find("tanh", init);
    var hists = shownLayers.Select(l => (Layer: l, H: Histogram(p.Outputs[l - 1], -1, 1))).ToList();
    return Plot.Lines(hists[0].H.Centers, hists.Select(h => Series($"{init}, layer {h.Layer}", h.H.Fraction)), xTitle: $"tanh output ({init})", yTitle: "fraction");
}).ToList(), 1, 3, title: "tanh outputs per layer under N(0, 1), Xavier and Kaiming")

// %% [markdown]
// ## 2. LayerNorm
//
// LayerNorm (Ba et al., 2016) normalises each sample's pre-activations to mean 0 and std 1 (then scales and shifts them by learned parameters, 1 and 0 at the start). Put before every activation, it makes the forward pass **independent of the weights' scale**: LN(c·W a) = LN(W a) for any c > 0. The naive N(0, 1) network with LayerNorm has the same output std at every layer (the "+ LayerNorm" rows above): about 0.63 for tanh, with under 5% saturated, and 0.58 for ReLU.
//
// The catch is in the gradient. Because the output does not change when W is scaled by c, the gradient with respect to W scales by 1/c: with N(0, 1) weights, 11× larger than Kaiming's, the weight gradients are ~10× smaller (the right panel). SGD would learn that much more slowly; Adam, which divides by the gradient's running RMS, does not care. Transformers use LayerNorm *and* a small initialisation (GPT-2: N(0, 0.02²)).

// %%
double Spread(double[] stds) => stds.Max() / stds.Min();
display(Claim.AtMost("with LayerNorm, the output std varies by under 10% over the 10 layers (tanh)", Spread(Find("tanh", "N(0, 1)", true).Std) - 1, full: 0.1, quick: 0.1));
display(Claim.AtMost("with LayerNorm, the output std varies by under 10% over the 10 layers (ReLU)", Spread(Find("ReLU", "N(0, 1)", true).Std) - 1, full: 0.1, quick: 0.1));
display(Claim.AtMost("tanh + LayerNorm: under 5% of layer 10's outputs are saturated", Find("tanh", "N(0, 1)", true).Saturated[^1], full: 0.05, quick: 0.05));
Claim.AtMost("LayerNorm over N(0, 1) weights: layer 1's weight gradient is under 0.2× Kaiming's (tanh)", Find("tanh", "N(0, 1)", true).GradStd[0] / Find("tanh", "Kaiming").GradStd[0], full: 0.2, quick: 0.2)

// %% [markdown]
// ## 3. GPT-2's residual scaling
//
// A transformer block adds to its input: x ← x + attn(LN(x)), x ← x + mlp(LN(x)). The LayerNorms normalise what goes *into* each branch, but nothing normalises the residual stream x itself: each of the 2·n_layer branches adds its output to it, and if those outputs are roughly independent their variances add up, so Var(x) grows linearly with depth. GPT-2 (Radford et al., 2019) therefore scales the initial weights of the layers that write into the stream, `attn.c_proj` and `mlp.c_proj`, by 1/√(2·n_layer): N(0, (0.02/√(2·n_layer))²) instead of N(0, 0.02²). The 2·n_layer contributions then add up to about as much variance as *one* unscaled contribution, whatever the depth. `GptModel.InitWeights` does this; here we undo it and measure the residual stream's std after each block (`hiddenStates`) for random models of 12 and 48 layers (width 64, random tokens).

// %%
(double[] Stds, double Top) ResidualStream(int layers, bool scaled)
{
    torch.manual_seed(1);
    using var model = new GptModel(new GptConfig { NumLayers = layers, NumHeads = 4, DModel = 64, MaxLength = 64, VocabSize = 512, Dropout = 0 });
    if (!scaled)
        using (torch.no_grad())
            foreach (var (name, p) in model.named_parameters())
                if (name.EndsWith("c_proj.weight")) nn.init.normal_(p, 0, 0.02);   // GPT-2's plain N(0, 0.02²), no 1/√(2L)
    model.eval();
    var tokens = torch.randint(0, 512, new long[] { 8, 64 });
    var states = new List<Tensor>();
    using (torch.no_grad()) model.Forward(tokens, hiddenStates: states);
    // states: the embeddings, then the stream after each block but the last, then ln_f's output (dropped: it is normalised).
    var stds = states.Take(states.Count - 1).Select(s => (double)s.std().item<float>()).ToArray();
    foreach (var s in states) s.Dispose();
    return (stds, stds[^1] / stds[0]);
}
var streams = new[] { (12, true), (12, false), (48, true), (48, false) }
    .Select(c => (Name: $"{c.Item1} layers, {(c.Item2 ? "scaled 1/√(2L)" : "unscaled")}", Layers: c.Item1, Scaled: c.Item2, Result: ResidualStream(c.Item1, c.Item2))).ToList();
display(Plot.Curves(streams.Select(s => Series(s.Name, s.Result.Stds)), title: "Std of the residual stream after each block (random GPT, initialisation)",
    xTitle: "block (0 = embeddings)", yTitle: "std"));
new DataFrame(
    new StringDataFrameColumn("model", streams.Select(s => s.Name)),
    new DoubleDataFrameColumn("std of the embeddings", streams.Select(s => Math.Round(s.Result.Stds[0], 4))),
    new DoubleDataFrameColumn("std after block L−1", streams.Select(s => Math.Round(s.Result.Stds[^1], 4))),
    new DoubleDataFrameColumn("growth", streams.Select(s => Math.Round(s.Result.Top, 2))))

// %% [markdown]
// Unscaled, the stream's std grows with depth (its variance roughly linearly: 48 layers add about four times the variance 12 layers add); scaled, the top of a 48-layer model looks like the top of a 12-layer one. This matters at the start of training: the final LayerNorm rescales whatever arrives, but the relative weight of the embeddings against the blocks' contributions, and the size of every branch's gradient relative to the stream, would otherwise depend on the depth.

// %%
double Growth(int layers, bool scaled) => streams.Single(s => s.Layers == layers && s.Scaled == scaled).Result.Top;
display(Claim.AtMost("scaled: the residual stream grows by under 1.5× over 12 layers", Growth(12, true), full: 1.5, quick: 1.5));
display(Claim.AtMost("scaled: the residual stream grows by under 1.5× over 48 layers", Growth(48, true), full: 1.5, quick: 1.5));
display(Claim.AtLeast("unscaled: it grows by over 5× over 48 layers", Growth(48, false), full: 5, quick: 5));
Claim.Between("unscaled: 48 layers add 3–5.5× the variance 12 layers add", (Math.Pow(Growth(48, false), 2) - 1) / (Math.Pow(Growth(12, false), 2) - 1), 3, 5.5, quick: (3, 5.5))

// %% [markdown]
// ## 4. Diagnostics while training: `TrainingDiagnostics`
//
// Section 1 probed a network at initialisation. `TrainingDiagnostics` records the same numbers **while the `Trainer` trains**, as a callback inside each optimizer step (`Trainer.Callbacks`):
//
// * per watched layer (by default every activation module): the output's mean, std, saturated fraction, the fraction of **dead units** (saturated for every sample of the batch) and a histogram, via forward hooks in training mode;
// * per weight matrix: the gradient's norm and std before clipping, and the **update-to-weight ratio** std(w_after − w_before) / std(w_before) of the step actually taken;
// * every step: the total gradient norm **before and after clipping**.
//
// It only reads: a run with it is bit-identical to a run without (the library's tests check that). The update-to-weight ratio is the most useful single number (Karpathy's rule of thumb: around 10⁻³ per step). Much smaller and the layer barely moves; much larger and it is thrashing. We train a 4-layer ReLU MLP (Kaiming init) on Fashion-MNIST for one epoch with Adam at three learning rates and look at the ratio per layer.

// %%
var fashion = Datasets.FashionMnist(train: true, limit: Notebook.Pick(quick: 2000, full: 6000));
var fashionLoader = new BatchLoader(fashion, batchSize: 64, shuffle: true, seed: 2);
nn.Module<Tensor, Tensor> ReluMlp(int hidden = 4, int width = 128)
{
    var layers = new List<nn.Module<Tensor, Tensor>> { nn.Flatten() };
    int inputs = 784;
    for (int i = 0; i < hidden; i++)
    {
        var linear = nn.Linear(inputs, width);
        using (torch.no_grad()) { nn.init.normal_(linear.weight!, 0, Math.Sqrt(2.0 / inputs)); linear.bias!.zero_(); }   // Kaiming
        layers.Add(linear);
        layers.Add(nn.ReLU());
        inputs = width;
    }
    layers.Add(nn.Linear(inputs, 10));
    return nn.Sequential(layers.ToArray());
}
(Trainer Trainer, TrainingDiagnostics Diagnostics) Diagnosed(Func<nn.Module<Tensor, Tensor>> build, Func<IEnumerable<TorchSharp.Modules.Parameter>, torch.optim.Optimizer> optimizer,
    double? clip = null, int every = 5)
{
    Notebook.Reseed(1);
    var model = build();
    var diagnostics = new TrainingDiagnostics(model, every);
    var trainer = new Trainer(model, optimizer(model.parameters()), Losses.CrossEntropy) { Epochs = 1, ClipGradNorm = clip, Callbacks = { diagnostics } };
    trainer.Fit(fashionLoader);
    return (trainer, diagnostics);
}
var lrs = new[] { 1e-4, 1e-3, 1e-2 };
var lrRuns = lrs.Select(lr => (Lr: lr, Run: Diagnosed(() => ReluMlp(), ps => Optimizers.Adam(ps, lr: lr)))).ToList();
var good = lrRuns[1].Run.Diagnostics;
display(good.Plot(title: "Adam, lr 1e-3: output std and saturated fraction per layer (first and last recorded step); log10 update/weight per weight matrix; gradient norm"));
good.Summary()

// %%
good.WeightSummary()

// %% [markdown]
// The median over the run of log₁₀(update/weight), per weight matrix and learning rate, with the loss at the end of the epoch (mean of the last 10 steps):

// %%
double MedianLogRatio(TrainingDiagnostics d, string name)
{
    var ratios = d.Parameters.Where(p => p.Name == name).Select(p => Math.Log10(p.UpdateRatio)).Order().ToList();
    return ratios[ratios.Count / 2];
}
var weightNames = good.Parameters.Select(p => p.Name).Distinct().ToList();
var ratioTable = new DataFrame(new StringDataFrameColumn("weight", weightNames.Append("loss, last 10 steps")));
foreach (var (lr, run) in lrRuns)
    ratioTable.Columns.Add(new DoubleDataFrameColumn($"lr {lr:E0}", weightNames.Select(n => Math.Round(MedianLogRatio(run.Diagnostics, n), 2))
        .Append(Math.Round(run.Trainer.History.StepLosses[^10..].Average(), 3))));
display(ratioTable);
double MeanLogRatio(int i) => weightNames.Average(n => MedianLogRatio(lrRuns[i].Run.Diagnostics, n));
display(Claim.That("the update-to-weight ratio grows with the learning rate, for every layer",
    weightNames.All(n => MedianLogRatio(lrRuns[0].Run.Diagnostics, n) < MedianLogRatio(lrRuns[1].Run.Diagnostics, n) && MedianLogRatio(lrRuns[1].Run.Diagnostics, n) < MedianLogRatio(lrRuns[2].Run.Diagnostics, n)),
    string.Join(" < ", lrs.Select((_, i) => MeanLogRatio(i).ToString("F2")))));
display(Claim.Between("lr 1e-3: the median log10 update/weight is within [−3.5, −1.5]", MeanLogRatio(1), -3.5, -1.5, quick: (-3.5, -1.5)));
Claim.AtLeast("lr 1e-4 ends the epoch with a higher loss than lr 1e-3 (too slow)", lrRuns[0].Run.Trainer.History.StepLosses[^10..].Average() - lrRuns[1].Run.Trainer.History.StepLosses[^10..].Average(), full: 0.2, quick: 0.1)

// %% [markdown]
// At 1e-4 every step moves a weight by about a thousandth of its size, and the epoch ends with a much higher loss; 1e-2 moves them ten times faster than 1e-3 and does not do better. Adam's steps are about lr in size per coordinate whatever the gradient, so the ratio tracks the learning rate closely; with SGD it tracks lr × gradient, and the table would also show which layers get too little gradient.
//
// **A dead layer**, diagnosed. Give one layer's biases a large negative value and its ReLUs never switch on: the summary shows that layer's units (module "6") 100% dead, and the next layer's too, since its input is now all zeros and its biases start at 0; the weight summary shows that no weight matrix receives a gradient, above or below. Only the output layer's bias still learns.

// %%
var (deadTrainer, dead) = Diagnosed(() =>
{
    var m = ReluMlp();
    using (torch.no_grad()) ((TorchSharp.Modules.Linear)((TorchSharp.Modules.Sequential)m)[5]).bias!.fill_(-10);   // layer 3's pre-activations: all far below 0
    return m;
}, ps => Optimizers.Sgd(ps, lr: 0.05), every: 10);
display(dead.Summary(0));
display(dead.WeightSummary(0));
var deadLayer = dead.Activations.Where(a => a.Layer == "6").ToList();
display(Claim.That("the dead layer shows 100% dead units at every recorded step", deadLayer.All(a => a.DeadUnits == 1.0), $"{deadLayer.Count} records, min {deadLayer.Min(a => a.DeadUnits):F3}"));
Claim.That("no weight matrix gets a gradient", dead.Parameters.All(p => p.GradNorm == 0),
    string.Join(", ", dead.Parameters.Where(p => p.Step == 0).Select(p => $"{p.Name} {p.GradNorm:G2}")))

// %% [markdown]
// ## 5. Gradient clipping
//
// Clipping rescales the whole gradient when its norm exceeds a threshold c: g ← g · min(1, c/‖g‖). It changes nothing on ordinary steps and caps the damage of a rare huge gradient, which at a high learning rate would throw the weights far away, where the next gradient is larger still. The experiment: plain SGD at lr 1.0 on a 6-layer ReLU MLP, with and without clipping at 1 (`Trainer.ClipGradNorm`); `TrainingDiagnostics` records the norm before and after clipping at every step.

// %%
var noClip = Diagnosed(() => ReluMlp(hidden: 6), ps => Optimizers.Sgd(ps, lr: 1.0), clip: null, every: 1000);
var withClip = Diagnosed(() => ReluMlp(hidden: 6), ps => Optimizers.Sgd(ps, lr: 1.0), clip: 1.0, every: 1000);
display(Plot.Grid(new[]
{
    Plot.Curves(new[] { Series("no clipping", noClip.Trainer.History.StepLosses), Series("clip at 1", withClip.Trainer.History.StepLosses) }, yTitle: "loss (log)", logY: true),
    Plot.Curves(new[]
    {
        Series("no clipping: ‖g‖", noClip.Diagnostics.GradNorms.Select(g => g.Before)),
        Series("clip at 1: ‖g‖ before", withClip.Diagnostics.GradNorms.Select(g => g.Before)),
        Series("clip at 1: ‖g‖ after", withClip.Diagnostics.GradNorms.Select(g => g.After)),
    }, yTitle: "gradient norm (log)", logY: true),
}, 1, 2, title: "SGD at lr 1.0: training loss (left) and gradient norm (right), with and without clipping"));
var clippedSteps = withClip.Diagnostics.GradNorms.Count(g => g.Before > 1.0);
$"without clipping: {(noClip.Trainer.History.StopReason == StopReason.Completed ? "ran to the end" : noClip.Trainer.History.StopDetail)}; largest gradient norm {noClip.Diagnostics.GradNorms.Max(g => g.Before):E1}. " +
$"With clipping: {withClip.Trainer.History.Steps.Count} steps, {clippedSteps} of them clipped (median norm before clipping {withClip.Diagnostics.GradNorms.Select(g => g.Before).Order().ElementAt(withClip.Diagnostics.GradNorms.Count / 2):F2}), loss {withClip.Trainer.History.StepLosses[0]:F3} → {withClip.Trainer.History.StepLosses[^5..].Average():F3} (mean of the last 5 steps)"

// %%
display(Claim.That("without clipping, the loss becomes non-finite and the Trainer stops", noClip.Trainer.History.StopReason == StopReason.NonFiniteLoss, noClip.Trainer.History.StopDetail ?? "no stop"));
display(Claim.AtMost("with clipping, the norm after clipping never exceeds 1", withClip.Diagnostics.GradNorms.Max(g => g.After), full: 1 + 1e-4, quick: 1 + 1e-4));
Claim.AtLeast("with clipping, the same lr trains: the loss falls by over 0.5", withClip.Trainer.History.StepLosses[0] - withClip.Trainer.History.StepLosses[^5..].Average(), full: 0.5, quick: 0.3)

// %% [markdown]
// Without clipping the gradient norm climbs within a few steps from about 1 to astronomically large and the loss becomes NaN (the `Trainer` stops and says so); with clipping the same learning rate trains, and most steps are clipped: at this learning rate the clip is doing much of the work of a smaller learning rate. Clipping is a safety net, not a substitute for a sensible learning rate: the GPT-2 recipe in chapter 07 clips at 1 and logs the norm, and a run whose norm is clipped at every step usually wants a lower rate.
//
// ## What to take away
//
// * Initialisation sets the scale of every layer's signal. With Var(z) = n · Var(W) · E[a²], Xavier (Var(W) = 1/n) suits tanh-like activations, Kaiming (2/n) suits ReLU; N(0, 1) explodes a ReLU network and saturates a tanh one.
// * Look at saturation and at the gradients, not only at the forward std: a saturated tanh network has a healthy-looking output std and gradients spread over four orders of magnitude.
// * LayerNorm makes the forward pass independent of the weights' scale, and the gradient inversely proportional to it.
// * Residual streams add up their branches' variance; GPT-2 scales the branch outputs' initial weights by 1/√(2·n_layer) so the depth does not change the stream's scale.
// * While training, watch the update-to-weight ratio (about 1e-3) and the gradient norm before clipping. `TrainingDiagnostics` records both, plus the layers' saturation and dead units.
//
// ## Exercises
//
// 1. **PyTorch's default.** `nn.Linear` initialises its weights with `kaiming_uniform_(a = √5)`, which is U(−1/√n_in, 1/√n_in), std 1/√(3·n_in). Compute the 10-layer output std for tanh and ReLU under it (as in section 1) and compare it with Xavier and Kaiming. What does it mean for a deep ReLU network built from plain `nn.Linear` layers?
// 2. **The tanh gain.** PyTorch recommends Xavier with gain 5/3 for tanh (`nn.init.calculate_gain("tanh")`). Measure the output std and saturated fraction per layer of the tanh network under Xavier × 5/3 and compare with Xavier and Kaiming.
// 3. **Does the initialisation still matter after training starts?** Train a 6-layer tanh MLP on the Fashion-MNIST subset for one epoch with Adam (lr 1e-3) under N(0, 1), Xavier and Kaiming, with `TrainingDiagnostics`. Compare the loss at the end, the saturated fraction of the last hidden layer at the first and the last recorded step, and the update-to-weight ratios.
//
// Solutions: [`solutions/04b-initialisation-and-diagnostics-solutions.ipynb`](solutions/04b-initialisation-and-diagnostics-solutions.ipynb).
