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
// # 04 · The training loop — solutions
//
// Worked solutions to the exercises of [04 · The training loop](../04-training-loop.ipynb). Each solution checks its own claim.

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

double[] Values(Tensor t) => t.detach().cpu().to(float64).data<double>().ToArray();
(string, IReadOnlyList<double>) Series(string name, IEnumerable<double> ys) => (name, ys.ToArray());

// %% [markdown]
// ## Exercise 1 · Nesterov momentum
//
// PyTorch's Nesterov form keeps the same velocity b ← μ b + g, but steps along the *look-ahead* direction g + μ b instead of b. The chapter's scratch optimizer base class, momentum, and the step-for-step harness again:

// %%
abstract class ScratchOptimizer
{
    protected readonly Tensor[] Params;
    protected int T;
    protected ScratchOptimizer(IEnumerable<Tensor> parameters) => Params = parameters.ToArray();
    public void ZeroGrad() { foreach (var p in Params) p.grad?.zero_(); }
    public void Step()
    {
        T++;
        using var noGrad = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        for (int i = 0; i < Params.Length; i++) Update(i, Params[i], Params[i].grad!);
    }
    protected abstract void Update(int i, Tensor p, Tensor g);
}

class ScratchMomentum : ScratchOptimizer
{
    readonly double _lr, _mu;
    readonly Tensor[] _velocity;
    public ScratchMomentum(IEnumerable<Tensor> ps, double lr, double mu) : base(ps)
    {
        (_lr, _mu) = (lr, mu);
        _velocity = Params.Select(p => torch.zeros_like(p)).ToArray();
    }
    protected override void Update(int i, Tensor p, Tensor g)
    {
        if (T == 1) _velocity[i].copy_(g); else _velocity[i].mul_(_mu).add_(g);
        p.sub_(_lr * _velocity[i]);
    }
}

class ScratchNesterov : ScratchOptimizer
{
    readonly double _lr, _mu;
    readonly Tensor[] _velocity;
    public ScratchNesterov(IEnumerable<Tensor> ps, double lr, double mu) : base(ps)
    {
        (_lr, _mu) = (lr, mu);
        _velocity = Params.Select(p => torch.zeros_like(p)).ToArray();
    }
    protected override void Update(int i, Tensor p, Tensor g)
    {
        if (T == 1) _velocity[i].copy_(g); else _velocity[i].mul_(_mu).add_(g);   // b = μ b + g
        p.sub_(_lr * (g + _mu * _velocity[i]));                                   // p = p − η (g + μ b)
    }
}

var xo = torch.randn(new long[] { 64, 4 }, dtype: float64);
var yo = (xo[.., 0].sin() + xo[.., 1] * xo[.., 2] - 0.5 * xo[.., 3]).unsqueeze(1);
nn.Module<Tensor, Tensor> SmallNet()
{
    torch.manual_seed(0);
    var net = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 1));
    net.to(float64);
    return net;
}
double MaxDifference(nn.Module a, nn.Module b) => a.parameters().Zip(b.parameters()).Max(p => (p.First - p.Second).abs().max().item<double>());

(double Worst, List<double> Losses) StepForStep(Func<IEnumerable<Tensor>, ScratchOptimizer> ours,
    Func<IEnumerable<TorchSharp.Modules.Parameter>, torch.optim.Optimizer> theirs, int steps)
{
    var a = SmallNet(); var b = SmallNet();
    var optA = ours(a.parameters()); var optB = theirs(b.parameters());
    double worst = 0;
    var losses = new List<double>();
    for (int t = 0; t < steps; t++)
    {
        using var scope = torch.NewDisposeScope();
        optA.ZeroGrad(); optB.zero_grad();
        var loss = Losses.Mse(a.call(xo), yo);
        losses.Add(loss.item<double>());
        loss.backward();
        Losses.Mse(b.call(xo), yo).backward();
        optA.Step(); optB.step();
        worst = Math.Max(worst, MaxDifference(a, b));
    }
    return (worst, losses);
}

// %%
// Step for step over 25 steps (as in the chapter), then a longer race of the two scratch optimizers.
var nesterovCheck = StepForStep(ps => new ScratchNesterov(ps, 0.1, 0.9), ps => Optimizers.Sgd(ps, lr: 0.1, momentum: 0.9, nesterov: true), steps: 25);
var momentumCheck = StepForStep(ps => new ScratchMomentum(ps, 0.1, 0.9), ps => Optimizers.Sgd(ps, lr: 0.1, momentum: 0.9), steps: 25);
display(new DataFrame(new StringDataFrameColumn("optimizer", new[] { "momentum", "Nesterov" }),
    new DoubleDataFrameColumn("max |weight difference| over 25 steps", new[] { momentumCheck.Worst, nesterovCheck.Worst })));
display(Claim.AtMost("the scratch Nesterov matches TorchSharp's to float64 rounding", Math.Max(momentumCheck.Worst, nesterovCheck.Worst), full: 1e-12, quick: 1e-12));

List<double> Race(Func<IEnumerable<Tensor>, ScratchOptimizer> make, int steps)
{
    var net = SmallNet();
    var opt = make(net.parameters());
    var losses = new List<double>();
    for (int t = 0; t < steps; t++)
    {
        using var scope = torch.NewDisposeScope();
        opt.ZeroGrad();
        var loss = Losses.Mse(net.call(xo), yo);
        losses.Add(loss.item<double>());
        loss.backward();
        opt.Step();
    }
    return losses;
}
int raceSteps = Notebook.Pick(quick: 150, full: 300);
var momentumRace = Race(ps => new ScratchMomentum(ps, 0.1, 0.9), raceSteps);
var nesterovRace = Race(ps => new ScratchNesterov(ps, 0.1, 0.9), raceSteps);
display(Plot.Curves(new[] { Series("momentum", momentumRace), Series("Nesterov", nesterovRace) },
    title: "Momentum versus Nesterov momentum (η = 0.1, μ = 0.9)", yTitle: "MSE (log scale)", logY: true));
$"loss after 50 steps: momentum {momentumRace[49]:F4}, Nesterov {nesterovRace[49]:F4}; after {raceSteps}: momentum {momentumRace[^1]:F5}, Nesterov {nesterovRace[^1]:F5}"

// %% [markdown]
// The scratch version matches TorchSharp's to float64 rounding. (Compare over a few dozen steps: on a non-convex loss, rounding differences of 1e-16 grow exponentially over hundreds of steps, even between two correct implementations.) The look-ahead term damps the overshoot of plain momentum, so the curve oscillates less; whether that ends lower after a fixed budget depends on the problem, as the numbers above show.
//
// ## Exercise 2 · A learning-rate range test
//
// One pass over a subset while the learning rate grows exponentially from 1e-5 to 1: lr(t) = 1e-5 · (1 / 1e-5)^(t / (T − 1)). Plotting the (smoothed) loss against the rate shows the band where training makes progress, and where it blows up.

// %%
var fashion = Datasets.FashionMnist(train: true, limit: Notebook.Pick(quick: 3000, full: 20000));
var rangeLoader = new BatchLoader(fashion, batchSize: 64, shuffle: true, seed: 1);
nn.Module<Tensor, Tensor> FashionMlp() => nn.Sequential(nn.Flatten(),
    nn.Linear(784, 256), nn.ReLU(), nn.Dropout(0.2), nn.Linear(256, 128), nn.ReLU(), nn.Dropout(0.2), nn.Linear(128, 10));

int totalSteps = rangeLoader.BatchCount;
double LrAt(long t) => 1e-5 * Math.Pow(1 / 1e-5, (double)t / (totalSteps - 1));
Notebook.Reseed(42);
var rangeModel = FashionMlp();
var rangeTrainer = new Trainer(rangeModel, Optimizers.AdamW(rangeModel.parameters(), lr: 1e-5), Losses.CrossEntropy)
{
    Epochs = 1, Schedule = LRSchedule.From("exponential 1e-5 → 1", LrAt), StopOnNonFiniteLoss = true,
};
var rangeHistory = rangeTrainer.Fit(rangeLoader);
var lrs = rangeHistory.Steps.Select(s => s.LearningRate).ToArray();
var smooth = TrainingHistory.MovingAverage(rangeHistory.StepLosses, 5);
int best = Array.IndexOf(smooth, smooth.Min());
// The steepest descent of the smoothed loss per decade of learning rate.
var slopes = Enumerable.Range(5, Math.Max(1, smooth.Length - 5)).Where(i => i < smooth.Length)
    .Select(i => (i, slope: (smooth[i] - smooth[i - 5]) / Math.Log10(lrs[i] / lrs[i - 5]))).ToList();
var steepest = slopes.MinBy(s => s.slope).i;
display(Plot.WithLayout(Plot.Line(lrs, smooth, "loss (moving average of 5)", title: "Learning-rate range test", xTitle: "learning rate (log scale)", yTitle: "training loss"),
    ("xaxis", new { type = "log", title = new { text = "learning rate (log scale)" } })));
display($"{rangeHistory.Steps.Count} steps; lowest smoothed loss at lr ≈ {lrs[best]:0.0e+0}, steepest fall at lr ≈ {lrs[steepest]:0.0e+0}" +
    (rangeHistory.StopReason != StopReason.Completed ? $"; stopped: {rangeHistory.StopDetail}" : ""));
display(Claim.Between("the Full profile's 20,000 images make a sweep of over 300 steps", rangeLoader.BatchCount, 300, 320, quick: null));
display(Claim.AtMost("at tiny rates the loss barely moves (first 10 smoothed steps, relative change)", Math.Abs(smooth[9] - smooth[0]) / smooth[0], full: 0.05, quick: null));
Claim.AtLeast("past the lowest point it turns up (last smoothed loss / lowest)", smooth[^1] / smooth.Min(), full: 1.5, quick: null)

// %% [markdown]
// Read the chart from the left: at tiny rates the loss barely moves; then it falls, fastest at the rate printed above; past the lowest point it turns up and finally blows up. A common rule picks a rate about ten times below the point of lowest loss. In the Quick profile the sweep has only a few dozen steps, so the rate also grows while the model is still early in training, and the curve is noisy; the Full profile's 20,000 images (over 300 steps) give a cleaner picture. Compare the result with the chapter's 2e-3.
//
// ## Exercise 3 · Early stopping and label smoothing
//
// Two runs of up to 10 epochs with early stopping on validation accuracy (patience 2, keeping the best epoch's weights): plain cross-entropy, and cross-entropy with label smoothing ε = 0.1, whose target puts 1 − ε + ε/10 on the true class and ε/10 on the others. The confidence is the mean largest softmax probability on the test set.

// %%
var (trainSet, valSet) = fashion.Split(0.15, seed: 2);
var test = Datasets.FashionMnist(train: false, limit: Notebook.Pick<int?>(quick: 2000, full: null));
var trainLoader = new BatchLoader(trainSet, 128, shuffle: true, seed: 3);
var valLoader = new BatchLoader(valSet, 1000);
var testLoader = new BatchLoader(test, 1000);

(string Name, TrainingHistory History, EvaluationResult Test, double Confidence) Run(string name, Func<Tensor, Tensor, Tensor> loss)
{
    Notebook.Reseed(42);
    var model = FashionMlp();
    int maxEpochs = Notebook.Pick(quick: 3, full: 10);
    var trainer = new Trainer(model, Optimizers.AdamW(model.parameters(), lr: 2e-3), loss)
    {
        Epochs = maxEpochs, Metrics = { Metric.Accuracy },
        Schedule = LRSchedule.Cosine(2e-3, maxEpochs * trainLoader.BatchCount),
        EarlyStopping = new EarlyStopping("val_accuracy", Patience: 2),
    };
    var history = trainer.Fit(trainLoader, valLoader);
    // Test loss with the plain cross-entropy for both, so the numbers compare.
    var plain = new Trainer(model, trainer.Optimizer, Losses.CrossEntropy) { Metrics = { Metric.Accuracy } };
    var testResult = plain.Evaluate(testLoader);
    model.eval();
    using var noGrad = torch.no_grad();
    var confidence = F(model, test.Inputs);
    return (name, history, testResult, confidence);
}
double F(nn.Module<Tensor, Tensor> model, Tensor x) => torch.softmax(model.call(x), 1).max(1).values.mean().item<float>();

var runs = new[] { Run("cross-entropy", Losses.CrossEntropy), Run("label smoothing 0.1", Losses.CrossEntropyWith(labelSmoothing: 0.1)) };
display(Plot.Curves(runs.Select(r => Series(r.Name, r.History.Column("val_accuracy"))), title: "Validation accuracy per epoch", xTitle: "epoch − 1", yTitle: "accuracy"));
display(new DataFrame(
    new StringDataFrameColumn("loss", runs.Select(r => r.Name)),
    new Int32DataFrameColumn("epochs run", runs.Select(r => r.History.Epochs.Count)),
    new Int32DataFrameColumn("best epoch (kept)", runs.Select(r => (r.History.BestEpoch ?? -1) + 1)),
    new StringDataFrameColumn("stopped", runs.Select(r => r.History.StopReason == StopReason.Completed ? "ran all epochs" : r.History.StopDetail)),
    new DoubleDataFrameColumn("test accuracy", runs.Select(r => Math.Round(r.Test["accuracy"], 4))),
    new DoubleDataFrameColumn("test CE", runs.Select(r => Math.Round(r.Test.Loss, 4))),
    new DoubleDataFrameColumn("mean confidence", runs.Select(r => Math.Round(r.Confidence, 4)))));
display(Claim.AtLeast("label smoothing lowers the confidence (plain − smoothed)", runs[0].Confidence - runs[1].Confidence, full: 0.02, quick: 0));
Claim.AtMost("test accuracy moves little either way (points)", Math.Abs(runs[0].Test["accuracy"] - runs[1].Test["accuracy"]), full: 0.02, quick: null)

// %% [markdown]
// Label smoothing lowers the confidence: the model is never asked to push a probability all the way to 1, so its largest softmax output stays further from 1, which usually brings confidence closer to the actual accuracy. Test accuracy moves little either way. Early stopping stops once validation accuracy has not improved for two epochs and restores the best epoch's weights (when the run ends before that, "ran all epochs" and the best epoch is still the one kept).

// %% [markdown]
// ## Exercise 4 · Backprop for a deeper ReLU regression network
//
// With Δˡ the matrix whose row n is δˡₙ = ∂L/∂zˡ for sample n (and the output layer's z the prediction ŷ itself):
//
// * output: L = (1/N) Σₙ ‖ŷₙ − yₙ‖², so Δᴸ = 2(Ŷ − Y)/N;
// * one layer down: Δˡ = ReLU′(Zˡ) ⊙ (Δˡ⁺¹ Wˡ⁺¹), with ReLU′(z) = 1 if z > 0 else 0;
// * gradients: ∂L/∂Wˡ = (Δˡ)ᵀ Aˡ⁻¹, ∂L/∂bˡ = Σₙ δˡₙ, with A⁰ = X.
//
// A loop over the layers, for 3 hidden layers of width 8, checked against autograd and with `GradCheck`:

// %%
var rng = new torch.Generator(5);
int[] widths = { 3, 8, 8, 8, 2 };   // input, three hidden, output
var xs = torch.randn(new long[] { 10, widths[0] }, dtype: float64, generator: rng);
var ys = torch.randn(new long[] { 10, widths[^1] }, dtype: float64, generator: rng);
var Ws = Enumerable.Range(0, widths.Length - 1).Select(l => (torch.randn(new long[] { widths[l + 1], widths[l] }, dtype: float64, generator: rng) / Math.Sqrt(widths[l])).requires_grad_(true)).ToArray();
var Bs = Enumerable.Range(0, widths.Length - 1).Select(l => (0.1 * torch.randn(new long[] { widths[l + 1] }, dtype: float64, generator: rng)).requires_grad_(true)).ToArray();
int layers = Ws.Length;

Tensor Forward(List<Tensor>? zs = null, List<Tensor>? activations = null)
{
    var a = xs;
    activations?.Add(a);
    for (int l = 0; l < layers; l++)
    {
        var zl = a.matmul(Ws[l].T) + Bs[l];
        zs?.Add(zl);
        a = l < layers - 1 ? torch.nn.functional.relu(zl) : zl;
        if (l < layers - 1) activations?.Add(a);
    }
    return a;
}
Tensor RegressionLoss() => (Forward() - ys).pow(2).sum(1).mean();

// Backward by hand (no autograd: everything under no_grad).
var dWs = new Tensor[layers]; var dBs = new Tensor[layers];
using (torch.no_grad())
{
    var zs = new List<Tensor>(); var acts = new List<Tensor>();
    var yHat = Forward(zs, acts);
    var delta = 2 * (yHat - ys) / xs.shape[0];                       // Δᴸ
    for (int l = layers - 1; l >= 0; l--)
    {
        dWs[l] = delta.T.matmul(acts[l]);                             // (Δˡ)ᵀ Aˡ⁻¹
        dBs[l] = delta.sum(dim: 0);
        if (l > 0) delta = (zs[l - 1] > 0).to(float64) * delta.matmul(Ws[l]);   // ReLU′ ⊙ (Δˡ⁺¹ Wˡ⁺¹)
    }
}
RegressionLoss().backward();
var named = Enumerable.Range(0, layers).SelectMany(l => new[] { ($"W{l + 1}", Ws[l]), ($"b{l + 1}", Bs[l]) }).ToList();
var hand = Enumerable.Range(0, layers).SelectMany(l => new[] { dWs[l], dBs[l] }).ToList();
var vsAutograd = named.Select((p, i) => (hand[i] - p.Item2.grad!).abs().max().item<double>()).ToList();
var check = GradCheck.Check(RegressionLoss, named);
display(new DataFrame(
    new StringDataFrameColumn("gradient", named.Select(p => p.Item1)),
    new DoubleDataFrameColumn("max |by hand − autograd|", vsAutograd),
    new DoubleDataFrameColumn("GradCheck relative error", check.Entries.Select(e => e.RelativeError))));
display(Claim.AtMost("the hand-written backward equals autograd to 1e-14", vsAutograd.Max(), full: 1e-14, quick: 1e-14));
Claim.AtMost("GradCheck: every gradient within 1e-7 of finite differences", check.MaxRelativeError, full: 1e-7, quick: 1e-7)

// %% [markdown]
// ReLU′ is 0 for a unit that is off (z ≤ 0), so that unit's row of δ is zeroed: no error flows through it to the layers below, and its incoming weights get no gradient from that sample. A unit that is off for *every* sample is "dead" and stops learning altogether (chapter 04b measures how often that happens under different initialisations). The finite differences agree unless a nudge of ±ε moves some zˡ across 0, where ReLU has a kink; with random inputs that is very unlikely at ε = 1e-6.
