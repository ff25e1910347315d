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
// # 04 · The training loop
//
// Every model in this series learns the same way: compute a **loss** that says how wrong the model is, compute its **gradient** with respect to every parameter (`loss.backward()`), and move the parameters a little against the gradient (`optimizer.step()`). This notebook takes that loop apart and builds it back up:
//
// 1. activation functions and their derivatives, checked by autograd;
// 2. loss functions with worked numbers;
// 3. gradient descent by hand on a linear regression, and what the learning rate does;
// 4. backpropagation by hand for one neuron, then through a two-layer network with a softmax as matrix formulas, checked against autograd and against finite differences, and the library's `GradCheck` catching a wrong backward and a misplaced `detach`;
// 5. SGD, momentum and Adam written from scratch, each checked step for step against TorchSharp's optimizer;
// 6. a real run: an MLP on Fashion-MNIST with the library's `Trainer`, live progress, curves and test accuracy;
// 7. a checkpoint, a simulated crash, a resume, and the proof that the resumed run is the same run.
//
// Along the way, every worked example of the source articles on these topics is computed as they wrote it, then corrected: a sign, a missing ½, a gradient step in the wrong direction, an optimizer formula that never converges to the right step size. Where they are right, the notebook says so.

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
using Workbook.IO;
using Workbook.Training;
using F = TorchSharp.torch.nn.functional;

// Small helpers for charts and tables: a tensor as doubles, a column of doubles.
double[] Values(Tensor t) => t.detach().cpu().to(float64).data<double>().ToArray();
(string, IReadOnlyList<double>) Series(string name, IEnumerable<double> ys) => (name, ys.ToArray());

// %% [markdown]
// ## 1. Activation functions and their derivatives
//
// A layer computes `z = W x + b` and then applies a non-linear **activation** f elementwise; without f, a stack of layers would collapse into one linear map. Backpropagation needs f′, so we write both by hand:
//
// | activation | f(z) | f′(z) |
// |---|---|---|
// | sigmoid | σ(z) = 1 / (1 + e^(−z)) | σ(z)(1 − σ(z)) |
// | tanh | (e^z − e^(−z)) / (e^z + e^(−z)) | 1 − tanh²(z) |
// | ReLU | max(0, z) | 1 if z > 0, else 0 |
// | leaky ReLU | z if z > 0, else 0.01 z | 1 if z > 0, else 0.01 |
// | GELU | z Φ(z), Φ the standard normal CDF | Φ(z) + z φ(z), φ the normal density |
//
// At exactly z = 0, ReLU's derivative is undefined; PyTorch (and we) use the left-hand value.

// %%
var z = torch.linspace(-4, 4, 801, dtype: float64);
Tensor Sigmoid(Tensor v) => 1 / (1 + (-v).exp());
Tensor Phi(Tensor v) => 0.5 * (1 + (v / Math.Sqrt(2)).erf());            // normal CDF
Tensor SmallPhi(Tensor v) => (-0.5 * v * v).exp() / Math.Sqrt(2 * Math.PI); // normal density

var activations = new (string Name, Func<Tensor, Tensor> F, Func<Tensor, Tensor> DF, Func<Tensor, Tensor> Torch)[]
{
    ("sigmoid",    v => Sigmoid(v),                                   v => Sigmoid(v) * (1 - Sigmoid(v)),         v => torch.sigmoid(v)),
    ("tanh",       v => (v.exp() - (-v).exp()) / (v.exp() + (-v).exp()), v => 1 - v.tanh().pow(2),               v => torch.tanh(v)),
    ("ReLU",       v => torch.where(v > 0, v, torch.zeros_like(v)),  v => (v > 0).to(float64),                   v => F.relu(v)),
    ("leaky ReLU", v => torch.where(v > 0, v, 0.01 * v),              v => torch.where(v > 0, torch.ones_like(v), torch.full_like(v, 0.01)), v => F.leaky_relu(v, 0.01)),
    ("GELU",       v => v * Phi(v),                                   v => Phi(v) + v * SmallPhi(v),              v => F.gelu(v)),
};
var zs = Values(z);
Plot.Grid(new[]
{
    Plot.Lines(zs, activations.Select(a => Series(a.Name, Values(a.F(z)))), xTitle: "z", yTitle: "f(z)"),
    Plot.Lines(zs, activations.Select(a => Series(a.Name + " ′", Values(a.DF(z)))), xTitle: "z", yTitle: "f′(z)"),
}, 1, 2, title: "Activations (left) and their derivatives (right)")

// %% [markdown]
// Now the check. For each activation, TorchSharp's own implementation computes y = f(z) on a tensor that records gradients; `y.sum().backward()` fills `z.grad` with ∂(Σᵢ f(zᵢ))/∂zᵢ = f′(zᵢ). Both must agree with the hand-written versions on all 801 points (in float64, to about 1e-16).

// %%
var activationCheck = activations.Select(a =>
{
    var zg = z.clone().requires_grad_(true);
    var y = a.Torch(zg);
    y.sum().backward();
    return (a.Name, F: (a.F(z) - y.detach()).abs().max().item<double>(), DF: (a.DF(z) - zg.grad!).abs().max().item<double>());
}).ToList();
display(new DataFrame(
    new StringDataFrameColumn("activation", activationCheck.Select(c => c.Name)),
    new DoubleDataFrameColumn("max |f − TorchSharp|", activationCheck.Select(c => c.F)),
    new DoubleDataFrameColumn("max |f′ by hand − autograd|", activationCheck.Select(c => c.DF))));
Claim.AtMost("every hand-written f and f′ equals TorchSharp's (float64 rounding)", activationCheck.Max(c => Math.Max(c.F, c.DF)), full: 1e-12, quick: 1e-12)

// %% [markdown]
// The derivative chart explains why deep networks moved away from sigmoid: σ′ is at most **0.25**, so a gradient flowing back through 10 sigmoid layers is scaled by at most 0.25¹⁰ ≈ 1e-6 (the *vanishing gradient*). ReLU and GELU pass gradients through with slope ≈ 1 for positive inputs.

// %%
var sigmoidSlope = Values(activations[0].DF(z)).Max();
display($"max σ′ = {sigmoidSlope:F4}; through 10 layers at most {Math.Pow(sigmoidSlope, 10):E1}");
display(Claim.Close("σ′ is at most 0.25", sigmoidSlope, 0.25, 1e-6));
Claim.Between("through 10 sigmoid layers a gradient is scaled by at most ≈ 1e-6", Math.Pow(sigmoidSlope, 10), 0.5e-6, 1.5e-6, quick: (0.5e-6, 1.5e-6))

// %% [markdown]
// **tanh.** The source articles recommend tanh because it "helps gradients flow and avoids vanishing gradients". Its slope at 0 is 1, four times the sigmoid's, but it saturates just the same: tanh(z) = 2σ(2z) − 1 is a sigmoid stretched and shifted, so tanh′(z) = 4σ′(2z) falls off exactly as fast, and a gradient through a few saturated tanh units vanishes as surely:

// %% tags=["errata-14-article"]
double TanhSlope(double v) => 1 - Math.Tanh(v) * Math.Tanh(v);
double SigmoidSlope(double v) { var sv = 1 / (1 + Math.Exp(-v)); return sv * (1 - sv); }
var zSat = new[] { 0.0, 1.0, 2.0, 3.0, 4.0 };
display(new DataFrame(
    new DoubleDataFrameColumn("z", zSat),
    new DoubleDataFrameColumn("tanh′(z)", zSat.Select(TanhSlope)),
    new DoubleDataFrameColumn("4 σ′(2z)", zSat.Select(v => 4 * SigmoidSlope(2 * v))),
    new DoubleDataFrameColumn("tanh′(z)¹⁰: through 10 units at this z", zSat.Select(v => Math.Pow(TanhSlope(v), 10)))));
display(Claim.Close("tanh′(4) = 0.00134: tanh saturates too", TanhSlope(4), 0.00134, 5e-6));
Claim.AtMost("tanh′(z) = 4σ′(2z): the sigmoid's saturation, rescaled", zSat.Max(v => Math.Abs(TanhSlope(v) - 4 * SigmoidSlope(2 * v))), full: 1e-12, quick: 1e-12)

// %% [markdown]
// What tanh really has over the sigmoid is a **zero-centred output**. A sigmoid layer's outputs are all positive, so the gradient of every weight *into* the next neuron, δ·aⱼ, has the sign of δ for all j at once: for one sample, all its incoming weights can only move up together or down together, and reaching a mixed update takes a zig-zag over many steps. tanh outputs have both signs:

// %% tags=["errata-14-correct"]
var pre = torch.randn(new long[] { 1000, 64 }, dtype: float64);               // pre-activations of a 64-unit layer, 1,000 samples
double MeanOutput(Tensor a) => a.mean().item<double>();
// One sample's gradient for the 64 weights into a next-layer neuron is δ · a: all of one sign exactly when all 64 a's share a sign.
double OneSignShare(Tensor a) => (a.gt(0).sum(1).eq(64) | a.lt(0).sum(1).eq(64)).to(float64).mean().item<double>();
var (sigOut, tanhOut) = (torch.sigmoid(pre), torch.tanh(pre));
display(new DataFrame(
    new StringDataFrameColumn("64-unit layer, z ~ N(0, 1)", new[] { "sigmoid", "tanh" }),
    new DoubleDataFrameColumn("mean output", new[] { MeanOutput(sigOut), MeanOutput(tanhOut) }),
    new DoubleDataFrameColumn("share of samples whose 64 next-layer weight gradients all have one sign", new[] { OneSignShare(sigOut), OneSignShare(tanhOut) })));
display(Claim.Close("after a sigmoid every next-layer weight gradient of a sample has one sign", OneSignShare(sigOut), 1, 0));
Claim.AtMost("tanh's output is centred at 0", Math.Abs(MeanOutput(tanhOut)), full: 0.02, quick: 0.02)

// %% [markdown]
// ## 2. Loss functions, with worked numbers
//
// A loss turns "how wrong" into one non-negative number; training minimises its mean over the data.
//
// | loss | formula (one sample) | used for |
// |---|---|---|
// | mean squared error | (ŷ − y)² | regression |
// | cross-entropy | −Σ_c y_c log ŷ_c  (= −log ŷ_true for a one-hot y) | classification with softmax outputs |
// | binary cross-entropy | −[y log ŷ + (1 − y) log(1 − ŷ)] | yes/no outputs with a sigmoid |
// | hinge | max(0, 1 − y s), y ∈ {−1, +1}, s a raw score | margin classifiers (SVM) |
//
// **MSE.** y = [3, −0.5, 2, 7], ŷ = [2.5, 0, 2, 8]: the errors are [−0.5, 0.5, 0, 1], their squares [0.25, 0.25, 0, 1], the mean **0.375**.

// %%
var mseByHand = (0.25 + 0.25 + 0 + 1) / 4;
var mseTorch = Losses.Mse(torch.tensor(new[] { 2.5, 0.0, 2.0, 8.0 }), torch.tensor(new[] { 3.0, -0.5, 2.0, 7.0 })).item<double>();
display($"MSE by hand {mseByHand}, TorchSharp {mseTorch}");
Claim.Close("the MSE is 0.375", mseTorch, 0.375, 1e-12)

// %% [markdown]
// The source articles' MSE example has 10 samples whose every difference ŷ − y is 0.05, and reports **MSE = 0.025**:

// %% tags=["errata-10-article"]
var differences = Enumerable.Repeat(0.05, 10).ToArray();
var sumOfSquares = differences.Sum(e => e * e);
display($"the articles' value 0.025; Σ (ŷ − y)² = {sumOfSquares:G4}; mean (ŷ − y)² = {sumOfSquares / differences.Length:G4}");
Claim.Close("the articles' 0.025 is the sum of the squares, not their mean", sumOfSquares, 0.025, 1e-12)

// %% [markdown]
// The mean of ten equal squares is one square: 0.05² = **0.0025**. (0.025 is the sum: the articles forgot to divide by N.)

// %% tags=["errata-10-correct"]
var mseTen = Losses.Mse(torch.full(new long[] { 10 }, 1.05, dtype: float64), torch.ones(10, dtype: float64)).item<double>();
display($"MSE of ten differences of 0.05: by hand 0.05² = {0.05 * 0.05:G4}, TorchSharp {mseTen:G4}");
Claim.Close("the MSE is 0.0025", mseTen, 0.0025, 1e-12)

// %% [markdown]
// **Cross-entropy.** y = [1, 0] (the first class is right), ŷ = [0.8, 0.2]: only the true class's term survives,
//
// CE = −(1 · log 0.8 + 0 · log 0.2) = −log 0.8 = −(−0.2231) = **+0.2231**.
//
// The source articles write `CE = −log(0.8) ≈ −0.223`, dropping a sign. The number they give is log 0.8 itself:

// %% tags=["errata-6-article"]
display($"log 0.8 = {Math.Log(0.8):F4}: the articles' −0.223 is the log, not its negative");
Claim.Close("the articles' −0.223 is log 0.8", Math.Log(0.8), -0.223, 5e-4)

// %% [markdown]
// log 0.8 is negative (0.8 < 1), so −log 0.8 is *positive*. A cross-entropy is never negative, because a probability is at most 1 and so −log ŷ ≥ 0; it is 0 only for a perfectly confident right answer. A negative loss would be a bug, and a model could not "do better than perfect" to reach it.
//
// TorchSharp's `cross_entropy` takes **logits** (unnormalised log-probabilities) and applies the softmax itself. Passing log ŷ as the logits gives the same number, since softmax(log ŷ) = ŷ when ŷ sums to 1:

// %% tags=["errata-6-correct"]
var ceByHand = -(1 * Math.Log(0.8) + 0 * Math.Log(0.2));
var ceTorch = Losses.CrossEntropy(torch.tensor(new[] { Math.Log(0.8), Math.Log(0.2) }).unsqueeze(0), torch.tensor(new long[] { 0 })).item<double>();
display($"log 0.8 = {Math.Log(0.8):F4};  CE = −log 0.8 = {ceByHand:F4};  TorchSharp: {ceTorch:F4}");
Claim.Close("CE = +0.2231", ceTorch, 0.2231, 5e-5)

// %%
// How the cross-entropy grows as the probability of the right class falls: never negative, unbounded near 0.
var pTrue = new[] { 0.99, 0.9, 0.8, 0.5, 0.2, 0.05, 0.01 };
new DataFrame(new DoubleDataFrameColumn("ŷ of the true class", pTrue), new DoubleDataFrameColumn("CE = −ln ŷ", pTrue.Select(p => -Math.Log(p))))

// %% [markdown]
// **A soft target.** When y itself is a distribution, CE = −Σ_c y_c log ŷ_c, summed over the classes. The source articles' example: y = [0.8, 0.2], ŷ = [0.6, 0.4], with `CE = −½[0.8 log 0.6 + 0.2 log 0.4] ≈ 0.193`. Their own formula does not give their number, in any base of the logarithm:

// %% tags=["errata-11-article"]
double HalfCe(Func<double, double> log) => -0.5 * (0.8 * log(0.6) + 0.2 * log(0.4));
var halfCe = new[] { ("natural log (nats)", HalfCe(Math.Log)), ("log₂ (bits)", HalfCe(Math.Log2)), ("log₁₀", HalfCe(Math.Log10)) };
display(new DataFrame(new StringDataFrameColumn("the articles' −½[0.8 log 0.6 + 0.2 log 0.4]", halfCe.Select(h => h.Item1)),
    new DoubleDataFrameColumn("value", halfCe.Select(h => h.Item2))));
Claim.AtLeast("no log base gives the articles' 0.193 (closest distance)", halfCe.Min(h => Math.Abs(h.Item2 - 0.193)), full: 0.05, quick: 0.05)

// %% [markdown]
// With their own ½ the value is **0.2960** nats. The ½ is itself wrong: it averages over the two *classes*, but the cross-entropy of one sample sums over its classes (an average belongs over *samples*). For one sample, CE = **0.5919** nats. TorchSharp's `cross_entropy` accepts class probabilities as the target and agrees:

// %% tags=["errata-11-correct"]
var softCeByHand = -(0.8 * Math.Log(0.6) + 0.2 * Math.Log(0.4));
var softCeTorch = F.cross_entropy(torch.tensor(new[] { Math.Log(0.6), Math.Log(0.4) }).unsqueeze(0), torch.tensor(new[] { 0.8, 0.2 }).unsqueeze(0)).item<double>();
display($"with the articles' ½: {HalfCe(Math.Log):F4} nats; one sample, by hand: {softCeByHand:F4} nats; TorchSharp: {softCeTorch:F4}");
display(Claim.Close("with the articles' ½ the value is 0.2960", HalfCe(Math.Log), 0.2960, 5e-5));
Claim.Close("the cross-entropy of the sample is 0.5919 nats", softCeTorch, 0.5919, 5e-5)

// %% [markdown]
// **Binary cross-entropy**, four samples: every sample contributes −log of the probability the model gave to *its* label, i.e. −log ŷ when y = 1 and −log(1 − ŷ) when y = 0.

// %%
var yB = new[] { 1.0, 0.0, 1.0, 0.0 };
var pB = new[] { 0.9, 0.2, 0.6, 0.3 };
var bceTerms = yB.Zip(pB, (y, p) => -(y * Math.Log(p) + (1 - y) * Math.Log(1 - p))).ToArray();
var bceTorch = F.binary_cross_entropy(torch.tensor(pB), torch.tensor(yB)).item<double>();
// The library's loss works on logits, log(p / (1 − p)), with the overflow-free formula:
var bceLogits = Losses.BinaryCrossEntropyWithLogits(torch.tensor(pB.Select(p => Math.Log(p / (1 - p))).ToArray()), torch.tensor(yB)).item<double>();
display(new DataFrame(new DoubleDataFrameColumn("y", yB), new DoubleDataFrameColumn("ŷ", pB), new DoubleDataFrameColumn("term", bceTerms)));
display($"mean by hand {bceTerms.Average():F4}; TorchSharp on probabilities {bceTorch:F4}; on logits {bceLogits:F4}");
Claim.AtMost("by hand, on probabilities and on logits: the same BCE", Math.Max(Math.Abs(bceTerms.Average() - bceTorch), Math.Abs(bceTerms.Average() - bceLogits)), full: 1e-12, quick: 1e-12)

// %% [markdown]
// Why the library takes logits: for a confident logit x = 100, σ(x) rounds to exactly 1 in float32 and the textbook formula computes log(1 − 1) = −∞. The logits form `max(x, 0) − x y + log(1 + e^(−|x|))` never forms σ(x) and stays exact:

// %%
var bigLogit = torch.tensor(new[] { 100f });
var labelZero = torch.tensor(new[] { 0f });
var naive = -(labelZero * torch.sigmoid(bigLogit).log() + (1 - labelZero) * (1 - torch.sigmoid(bigLogit)).log());
var stableBce = Losses.BinaryCrossEntropyWithLogits(bigLogit, labelZero).item<float>();
display($"naive: {naive.item<float>()}, stable: {stableBce} (the true value is 100 + log(1 + e^−100) = 100)");
display(Claim.That("the textbook formula computes log(1 − 1) = −∞ for x = 100", float.IsInfinity(naive.item<float>()), $"{naive.item<float>()}"));
Claim.Close("the logits form stays exact", stableBce, 100, 1e-4)

// %% [markdown]
// **Hinge.** The source articles say the hinge loss `max(0, 1 − y·ŷ)` "measures the absolute value of the difference" between label and prediction. Put the two side by side for a positive sample (y = +1) and a few scores ŷ:

// %% tags=["errata-15-article"]
var hingeScores = new[] { -2.0, -1.0, 0.0, 0.5, 1.0, 2.0, 3.0 };
double HingeOf(double y, double score) => Math.Max(0, 1 - y * score);
display(new DataFrame(
    new DoubleDataFrameColumn("score ŷ (y = +1)", hingeScores),
    new DoubleDataFrameColumn("|y − ŷ|", hingeScores.Select(v => Math.Abs(1 - v))),
    new DoubleDataFrameColumn("max(0, 1 − y·ŷ)", hingeScores.Select(v => HingeOf(1, v)))));
Claim.AtLeast("hinge and |y − ŷ| disagree (largest difference over these scores)", hingeScores.Max(v => Math.Abs(Math.Abs(1 - v) - HingeOf(1, v))), full: 1, quick: 1)

// %% [markdown]
// They agree only while ŷ ≤ 1. A score of 3 is "2 away" from the label, but the hinge loss is 0: the label is y ∈ {−1, +1}, ŷ is a **score**, and the loss only asks for the right sign with a **margin** y·ŷ ≥ 1; beyond it the sample costs nothing, and below it the loss grows linearly. Scores s = [2.0, 0.5, −0.3, −1.5], labels y = [+1, +1, −1, +1]: the margins y·s are [2.0, 0.5, 0.3, −1.5]; max(0, 1 − margin) = [0, 0.5, 0.7, 2.5]; the mean is **0.925**.

// %% tags=["errata-15-correct"]
var hingeTorch = Losses.Hinge(torch.tensor(new[] { 2.0, 0.5, -0.3, -1.5 }), torch.tensor(new[] { 1.0, 1.0, -1.0, 1.0 })).item<double>();
var scoreAxis = Enumerable.Range(0, 61).Select(i => -2 + i * 0.1).ToList();
display(Plot.Lines(scoreAxis, new[] { Series("|y − ŷ|", scoreAxis.Select(v => Math.Abs(1 - v))), Series("hinge max(0, 1 − y·ŷ)", scoreAxis.Select(v => HingeOf(1, v))) },
    title: "y = +1: the hinge loss is zero once the margin reaches 1", xTitle: "score ŷ", yTitle: "loss"));
display($"hinge by hand {(0 + 0.5 + 0.7 + 2.5) / 4}, TorchSharp {hingeTorch}");
display(Claim.Close("the mean hinge loss is 0.925", hingeTorch, 0.925, 1e-12));
Claim.That("the hinge loss is zero for every margin ≥ 1", scoreAxis.Where(v => v >= 1).All(v => HingeOf(1, v) == 0), "ŷ ∈ [1, 4]")

// %% [markdown]
// ## 3. Gradient descent by hand: house price from area
//
// Fifty houses, area in m² and price in thousands: a linear model ŷ = w x + b with the MSE loss L = (1/N) Σ (ŷᵢ − yᵢ)². Its gradient, by the chain rule:
//
// ∂L/∂w = (2/N) Σ (ŷᵢ − yᵢ) xᵢ,  ∂L/∂b = (2/N) Σ (ŷᵢ − yᵢ),
//
// and gradient descent repeats **w ← w − η ∂L/∂w, b ← b − η ∂L/∂b** with learning rate η. We standardise the area (x = (area − mean)/std) so that both parameters live on the same scale.

// %%
var houseRng = new Random(7);
double Gaussian(Random r) => Math.Sqrt(-2 * Math.Log(1 - r.NextDouble())) * Math.Cos(2 * Math.PI * r.NextDouble());
var area = Enumerable.Range(0, 50).Select(_ => 50 + 150 * houseRng.NextDouble()).ToArray();
var price = area.Select(a => 40 + 2.5 * a + 25 * Gaussian(houseRng)).ToArray();   // thousands
double areaMean = area.Average(), areaStd = Math.Sqrt(area.Select(a => (a - areaMean) * (a - areaMean)).Average());
var xh = area.Select(a => (a - areaMean) / areaStd).ToArray();

(double Loss, double Dw, double Db) LossAndGradient(double w, double b)
{
    double loss = 0, dw = 0, db = 0;
    for (int i = 0; i < xh.Length; i++)
    {
        double err = w * xh[i] + b - price[i];
        loss += err * err; dw += 2 * err * xh[i]; db += 2 * err;
    }
    return (loss / xh.Length, dw / xh.Length, db / xh.Length);
}

List<double> Descend(double eta, int steps, out double w, out double b)
{
    w = 0; b = 0;
    var losses = new List<double>();
    for (int t = 0; t < steps; t++)
    {
        var (loss, dw, db) = LossAndGradient(w, b);
        losses.Add(loss);
        w -= eta * dw;
        b -= eta * db;
    }
    return losses;
}
var gdLosses = Descend(0.1, 60, out var wFit, out var bFit);
Plot.Scatter(area, price, title: "Fifty houses", xTitle: "area (m²)", yTitle: "price (thousands)")

// %% [markdown]
// Two checks. The hand-written gradient equals autograd's at the start (w = b = 0), and after 60 steps the fit equals the closed-form least-squares solution (w* = cov(x, y)/var(x), b* = mean y).

// %%
var wT = torch.zeros(1, dtype: float64, requires_grad: true);
var bT = torch.zeros(1, dtype: float64, requires_grad: true);
var xT = torch.tensor(xh); var yT = torch.tensor(price);
Losses.Mse(wT * xT + bT, yT).backward();
var (_, dw0, db0) = LossAndGradient(0, 0);
double priceMean = price.Average();
double wStar = xh.Zip(price, (x, y) => x * (y - priceMean)).Average() / xh.Select(x => x * x).Average();
display(new DataFrame(
    new StringDataFrameColumn("quantity", new[] { "∂L/∂w at 0", "∂L/∂b at 0", "w after 60 steps", "b after 60 steps" }),
    new DoubleDataFrameColumn("by hand", new[] { dw0, db0, wFit, bFit }),
    new DoubleDataFrameColumn("reference", new[] { wT.grad!.item<double>(), bT.grad!.item<double>(), wStar, priceMean }),
    new StringDataFrameColumn("reference is", new[] { "autograd", "autograd", "least squares", "least squares" })));
display(Claim.AtMost("the hand-written gradient equals autograd's", Math.Max(Math.Abs(dw0 - wT.grad!.item<double>()), Math.Abs(db0 - bT.grad!.item<double>())), full: 1e-9, quick: 1e-9));
Claim.AtMost("after 60 steps the fit is the least-squares solution", Math.Max(Math.Abs(wFit - wStar), Math.Abs(bFit - priceMean)), full: 1e-3, quick: 1e-3)

// %%
display($"the fit: price ≈ {bFit - wFit * areaMean / areaStd:F1} + {wFit / areaStd:F3} × area (the data were made with 40 + 2.5 × area + noise)");
Claim.Between("the fitted slope recovers the 2.5 the data were made with", wFit / areaStd, 2.2, 2.8, quick: (2.2, 2.8))

// %% [markdown]
// **The learning rate.** For this loss the curvature (the second derivative) is 2 in both directions, so each step multiplies the remaining error by (1 − 2η): η = 0.01 shrinks it by only 2% per step (too small), η = 0.1 by 20% (good), and η = 1.1 multiplies it by −1.2, so the loss *grows* every step (divergent). Gradient descent converges only for η < 2 / curvature = 1.

// %%
var etas = new[] { 0.01, 0.1, 1.1 };
display(Plot.Curves(etas.Select(eta => Series($"η = {eta}", Descend(eta, 60, out _, out _))), title: "Loss per step for three learning rates",
    yTitle: "MSE (log scale)", logY: true));
// The excess loss L − L* is a sum of squared remaining errors, so one step multiplies it by (1 − 2η)².
var lossStar = LossAndGradient(wStar, priceMean).Loss;
double ExcessRatio(double eta) { var l = Descend(eta, 6, out _, out _); return (l[5] - lossStar) / (l[4] - lossStar); }
display(new DataFrame(new DoubleDataFrameColumn("η", etas), new DoubleDataFrameColumn("(L − L*) after a step / before", etas.Select(ExcessRatio)),
    new DoubleDataFrameColumn("(1 − 2η)²", etas.Select(eta => (1 - 2 * eta) * (1 - 2 * eta)))));
Claim.AtMost("each step multiplies the remaining error by (1 − 2η): η = 0.01, 0.1, 1.1", etas.Max(eta => Math.Abs(ExcessRatio(eta) - (1 - 2 * eta) * (1 - 2 * eta))), full: 1e-6, quick: 1e-6)

// %% [markdown]
// ### The source articles' worked examples
//
// **One gradient step.** The source articles take θ = [2, 3], a gradient [−2, −3] and η = 0.01, and write `θ = [2, 3] − 0.01·[−2, −3] = [2.04, 2.97]`. To see what a step does, take a loss with exactly that gradient at θ: L(θ) = ½‖θ − [4, 6]‖², whose gradient θ − [4, 6] is [−2, −3] at [2, 3].

// %% tags=["errata-8-article"]
double HalfDistance(double a, double c) => 0.5 * ((a - 4) * (a - 4) + (c - 6) * (c - 6));
double[] articleStep = { 2.04, 2.97 };
display($"L([2, 3]) = {HalfDistance(2, 3):F4}; after the articles' step to [2.04, 2.97]: L = {HalfDistance(articleStep[0], articleStep[1]):F4}");
Claim.AtLeast("the articles' step increases the loss it should decrease", HalfDistance(articleStep[0], articleStep[1]) - HalfDistance(2, 3), full: 0, quick: 0)

// %% [markdown]
// Their first component moved the right way but twice as far (0.04 instead of 0.02), the second one the wrong way. Subtracting a negative gradient moves both components **up**: [2, 3] − 0.01·[−2, −3] = [2 + 0.02, 3 + 0.03] = **[2.02, 3.03]**, and the loss falls. TorchSharp's SGD takes the same step:

// %% tags=["errata-8-correct"]
var theta = new TorchSharp.Modules.Parameter(torch.tensor(new[] { 2.0, 3.0 }));
var thetaOpt = Optimizers.Sgd(new[] { theta }, lr: 0.01);
(0.5 * (theta - torch.tensor(new[] { 4.0, 6.0 })).pow(2).sum()).backward();
var gradient = Values(theta.grad!);
thetaOpt.step();
var stepped = Values(theta);
display($"gradient at [2, 3]: [{string.Join(", ", gradient)}]; after one step: [{string.Join(", ", stepped.Select(v => v.ToString("F2")))}]; L = {HalfDistance(stepped[0], stepped[1]):F4}");
display(Claim.Close("the step gives θ₁ = 2.02", stepped[0], 2.02, 1e-12));
display(Claim.Close("… and θ₂ = 3.03", stepped[1], 3.03, 1e-12));
Claim.AtMost("and the loss falls", HalfDistance(stepped[0], stepped[1]) - HalfDistance(2, 3), full: 0, quick: 0)

// %% [markdown]
// **A linear model, one step.** The source articles' second example: x = [1, 2, 3], targets y = [1.0, 1.5, 2.0], predictions ŷ = [0.5, 1.0, 1.5] "with w = 1", MSE loss, η = 0.1. They compute `∂L/∂w = ⅓Σ(y − ŷ)·1 = −0.5`, then `w = 1 − 0.1·(−0.5) = 1.05`, new predictions [0.55, 1.05, 1.55] and a loss of 0.25. Check each step against the numbers it claims to follow from:

// %% tags=["errata-12-article"]
double[] xa = { 1, 2, 3 }, ya = { 1.0, 1.5, 2.0 }, yhatA = { 0.5, 1.0, 1.5 };
double MseOf(double[] pred) => pred.Zip(ya, (p, t) => (p - t) * (p - t)).Average();
var articleGradient = ya.Zip(yhatA, (t, p) => t - p).Average();                 // ⅓Σ(y − ŷ)·1, as written
var articleNew = new[] { 0.55, 1.05, 1.55 };
display(new DataFrame(
    new StringDataFrameColumn("the articles' step", new[] { "ŷ that w = 1, b = 0 would give", "⅓Σ(y − ŷ)·1 as written", "loss of the 'new' predictions [0.55, 1.05, 1.55]", "loss before the step" }),
    new StringDataFrameColumn("value", new[] { string.Join(", ", xa.Select(v => 1 * v)), $"{articleGradient:F4} (they write −0.5)", $"{MseOf(articleNew):F4} (they write 0.25)", $"{MseOf(yhatA):F4}" })));
display(Claim.Close("the articles' own formula gives +0.5, not −0.5", articleGradient, 0.5, 1e-12));
Claim.Close("their 'new' predictions have loss 0.2025, not 0.25", MseOf(articleNew), 0.2025, 1e-12)

// %% [markdown]
// Every step is off. ŷ = [0.5, 1, 1.5] = 0.5·x means **w = 0.5, b = 0**, not w = 1. The error term of the MSE gradient is ŷ − y, the derivative ∂ŷᵢ/∂w is xᵢ (not 1), and the square brings a factor 2: ∂L/∂w = (2/N) Σ (ŷᵢ − yᵢ) xᵢ = **−2.0**, ∂L/∂b = (2/N) Σ (ŷᵢ − yᵢ) = **−1.0**. One step of η = 0.1 gives w = 0.7, b = 0.1, ŷ = [0.8, 1.5, 2.2], and the loss falls from **0.25 to 0.0267**. By hand and by autograd:

// %% tags=["errata-12-correct"]
double w0 = 0.5, b0 = 0.0;
var dw = 2.0 / 3 * xa.Select((v, i) => (w0 * v + b0 - ya[i]) * v).Sum();
var db = 2.0 / 3 * xa.Select((v, i) => w0 * v + b0 - ya[i]).Sum();
var wL = torch.tensor(new[] { w0 }, requires_grad: true); var bL = torch.tensor(new[] { b0 }, requires_grad: true);
Losses.Mse(wL * torch.tensor(xa) + bL, torch.tensor(ya)).backward();
double w1Step = w0 - 0.1 * dw, b1Step = b0 - 0.1 * db;
var yhat1 = xa.Select(v => w1Step * v + b1Step).ToArray();
display(new DataFrame(
    new StringDataFrameColumn("quantity", new[] { "∂L/∂w", "∂L/∂b", "w after the step", "b after the step", "loss before", "loss after" }),
    new DoubleDataFrameColumn("by hand", new[] { dw, db, w1Step, b1Step, MseOf(yhatA), MseOf(yhat1) }),
    new DoubleDataFrameColumn("autograd", new[] { wL.grad!.item<double>(), bL.grad!.item<double>(), double.NaN, double.NaN, double.NaN, double.NaN })));
display($"new predictions: [{string.Join(", ", yhat1.Select(v => v.ToString("F2")))}]");
display(Claim.Close("∂L/∂w = −2.0", wL.grad!.item<double>(), -2.0, 1e-12));
display(Claim.Close("∂L/∂b = −1.0", bL.grad!.item<double>(), -1.0, 1e-12));
display(Claim.AtMost("by hand equals autograd", Math.Max(Math.Abs(dw - wL.grad!.item<double>()), Math.Abs(db - bL.grad!.item<double>())), full: 1e-12, quick: 1e-12));
Claim.Close("the loss falls from 0.25 to 0.0267", MseOf(yhat1), 0.0267, 5e-5)

// %% [markdown]
// ## 4. Backpropagation by hand: one sigmoid neuron
//
// One neuron classifies a point x = (2, −1) with label y = 1, weights w = (0.5, −0.3) and bias b = 0.1:
//
// z = w·x + b,  a = σ(z),  L = −[y log a + (1 − y) log(1 − a)].
//
// The chain rule, one link at a time:
//
// ∂L/∂a = −y/a + (1 − y)/(1 − a),  ∂a/∂z = a(1 − a),  so ∂L/∂z = ∂L/∂a · ∂a/∂z = **a − y**,
//
// ∂L/∂wⱼ = ∂L/∂z · xⱼ,  ∂L/∂b = ∂L/∂z.
//
// The neat result ∂L/∂z = a − y is why sigmoid (and softmax) are paired with cross-entropy: the gradient is simply "prediction minus target".

// %%
double[] x1 = { 2.0, -1.0 }, w1 = { 0.5, -0.3 };
double b1 = 0.1, y1 = 1.0;
double z1 = w1[0] * x1[0] + w1[1] * x1[1] + b1;
double a1 = 1 / (1 + Math.Exp(-z1));
double loss1 = -(y1 * Math.Log(a1) + (1 - y1) * Math.Log(1 - a1));
double dLda = -y1 / a1 + (1 - y1) / (1 - a1), dadz = a1 * (1 - a1), dLdz = dLda * dadz;
double[] dLdw = { dLdz * x1[0], dLdz * x1[1] };
double dLdb = dLdz;

// The same computation with autograd.
var wA = torch.tensor(w1, requires_grad: true);
var bA = torch.tensor(new[] { b1 }, requires_grad: true);
var zA = (wA * torch.tensor(x1)).sum() + bA;
zA.retain_grad();                                   // z is not a leaf: ask autograd to keep ∂L/∂z for us
var lossA = Losses.BinaryCrossEntropyWithLogits(zA, torch.tensor(new[] { y1 }));
lossA.backward();
var byHand1 = new[] { z1, a1, loss1, dLdz, dLdw[0], dLdw[1], dLdb };
var autograd1 = new[] { zA.item<double>(), torch.sigmoid(zA).item<double>(), lossA.item<double>(), zA.grad!.item<double>(),
    wA.grad![0].item<double>(), wA.grad![1].item<double>(), bA.grad!.item<double>() };
display(new DataFrame(
    new StringDataFrameColumn("quantity", new[] { "z", "a = σ(z)", "L", "∂L/∂z (= a − y)", "∂L/∂w₁", "∂L/∂w₂", "∂L/∂b" }),
    new DoubleDataFrameColumn("by hand", byHand1),
    new DoubleDataFrameColumn("autograd", autograd1)));
display(Claim.Close("∂L/∂z = a − y", dLdz, a1 - y1, 1e-12));
Claim.AtMost("every row by hand equals autograd's, ∂L/∂z included", byHand1.Zip(autograd1, (h, g) => Math.Abs(h - g)).Max(), full: 1e-12, quick: 1e-12)

// %% [markdown]
// (Every autograd value comes from autograd: `retain_grad()` keeps the gradient at the intermediate z, which `backward()` would otherwise discard.)
//
// **The same neuron with a squared error.** The source articles train one sigmoid neuron with L = ½(y − ŷ)², and give δ = ∂L/∂z = (ŷ − y)·σ′(z) and ∂L/∂w = δ·x. That is **correct**, and autograd agrees:

// %% tags=["errata-18-article"]
var wS = torch.tensor(w1, requires_grad: true); var bS = torch.tensor(new[] { b1 }, requires_grad: true);
var zS = (wS * torch.tensor(x1)).sum() + bS;
zS.retain_grad();
(0.5 * (torch.tensor(new[] { y1 }) - torch.sigmoid(zS)).pow(2)).sum().backward();
double deltaSquared = (a1 - y1) * a1 * (1 - a1);                                    // (ŷ − y)·σ′(z)
display($"δ = (ŷ − y)σ′(z) = {deltaSquared:F6} (autograd {zS.grad!.item<double>():F6}); ∂L/∂w = δx = [{deltaSquared * x1[0]:F6}, {deltaSquared * x1[1]:F6}] (autograd [{wS.grad![0].item<double>():F6}, {wS.grad![1].item<double>():F6}])");
Claim.AtMost("the articles' δ and ∂L/∂w for the squared error are right", Math.Max(Math.Abs(deltaSquared - zS.grad!.item<double>()),
    Math.Max(Math.Abs(deltaSquared * x1[0] - wS.grad![0].item<double>()), Math.Abs(deltaSquared * x1[1] - wS.grad![1].item<double>()))), full: 1e-12, quick: 1e-12)

// %% [markdown]
// The difference from cross-entropy is the factor σ′(z) ≤ 0.25. With BCE, δ = ŷ − y: the further off, the larger the push. With the squared error, δ carries σ′(z), which is tiny exactly when the neuron is confidently wrong. Start one neuron at a confident wrong answer (z = −6 for y = 1) and train it with each loss, same learning rate:

// %% tags=["errata-18-correct"]
double[] ConfidentWrongStart(bool crossEntropy, int steps = 100, double lr = 1.0)
{
    double zc = -6, y = 1;                      // one weight on the input x = 1, so z is the weight itself
    var predictions = new double[steps];
    for (int t = 0; t < steps; t++)
    {
        double a = 1 / (1 + Math.Exp(-zc));
        predictions[t] = a;
        double delta = crossEntropy ? a - y : (a - y) * a * (1 - a);
        zc -= lr * delta;
    }
    return predictions;
}
var bceRun = ConfidentWrongStart(crossEntropy: true);
var mseRun = ConfidentWrongStart(crossEntropy: false);
double StartDelta(bool ce) { double a = 1 / (1 + Math.Exp(6)); return ce ? a - 1 : (a - 1) * a * (1 - a); }
display(Plot.Curves(new[] { Series("BCE: δ = ŷ − y", bceRun), Series("squared error: δ = (ŷ − y)σ′(z)", mseRun) },
    title: "One neuron, confidently wrong at the start (y = 1, z = −6): prediction ŷ per step", yTitle: "ŷ"));
int StepsTo(double[] run, double level) => Array.FindIndex(run, a => a >= level) is var i and >= 0 ? i : run.Length;
display($"δ at the start: BCE {StartDelta(true):F4}, squared error {StartDelta(false):E2}; steps to ŷ ≥ 0.5: BCE {StepsTo(bceRun, 0.5)}, squared error {StepsTo(mseRun, 0.5)} (of {bceRun.Length})");
display(Claim.AtLeast("from a confident wrong start BCE's δ is hundreds of times larger", StartDelta(true) / StartDelta(false), full: 100, quick: 100));
Claim.AtLeast("BCE reaches ŷ ≥ 0.5 many times sooner (steps, squared error / BCE)", (double)StepsTo(mseRun, 0.5) / StepsTo(bceRun, 0.5), full: 5, quick: 5)

// %% [markdown]
// ### Two layers, by hand
//
// The source articles also show a "backpropagation example": an output [2, 3], a hidden layer [1, 2], an input [1, 1], and "gradients" `−2·[2, 3] = [−4, −6]`, `−2·[1, 2]` and `−2·[1, 1]`. There is no target, so there is no loss, and there are no weights, so there is nothing to differentiate with respect to. The numbers cannot be gradients of anything: two networks with *exactly* these activations and the same target have different gradients. Both networks below are linear (so the activations are exact), map [1, 1] to [1, 2] to [2, 3], and are scored with the squared error against a target t = [0, 0]:

// %% tags=["errata-9-article"]
(Tensor W1, Tensor W2) Grads(double[,] first, double[,] second)
{
    var l1 = torch.tensor(first, requires_grad: true); var l2 = torch.tensor(second, requires_grad: true);
    var input = torch.tensor(new[] { 1.0, 1.0 });
    var hidden = torch.matmul(l1, input); var output = torch.matmul(l2, hidden);
    (output - torch.zeros(2, dtype: float64)).pow(2).sum().backward();
    if (MaxAbs(hidden - torch.tensor(new[] { 1.0, 2.0 })) > 1e-12 || MaxAbs(output - torch.tensor(new[] { 2.0, 3.0 })) > 1e-12)
        throw new InvalidOperationException("the example networks must reproduce the articles' activations");
    return (l1.grad!, l2.grad!);
}
double MaxAbs(Tensor t) => t.abs().max().item<double>();
var netA = Grads(new double[,] { { 1, 0 }, { 0, 2 } }, new double[,] { { 2, 0 }, { 1, 1 } });
var netB = Grads(new double[,] { { 0, 1 }, { 2, 0 } }, new double[,] { { 0, 1 }, { -1, 2 } });
string Flat(Tensor t) => "[" + string.Join(", ", Values(t).Select(v => v.ToString("G4"))) + "]";
display(new DataFrame(
    new StringDataFrameColumn("same activations, same loss", new[] { "network A", "network B", "the articles" }),
    new StringDataFrameColumn("∂L/∂W¹ (2×2, row by row)", new[] { Flat(netA.W1), Flat(netB.W1), "−2·[1, 1] = [−2, −2]" }),
    new StringDataFrameColumn("∂L/∂W² (2×2, row by row)", new[] { Flat(netA.W2), Flat(netB.W2), "−2·[1, 2] = [−2, −4]" })));
Claim.AtLeast("two networks with the articles' activations have different gradients", MaxAbs(netA.W1 - netB.W1), full: 1, quick: 1)

// %% [markdown]
// Backpropagation needs the weights, a loss and the target. One neuron shows the chain rule; a network needs it in matrix form. Take a two-layer classifier with a tanh hidden layer and a softmax output, for a batch of N samples:
//
// z¹ = W¹x + b¹,  a¹ = tanh(z¹),  z² = W²a¹ + b²,  p = softmax(z²),  L = (1/N) Σₙ −log p_{yₙ}.
//
// Call δˡ = ∂L/∂zˡ the error at layer l, one vector per sample. The backward pass is three rules:
//
// * **at the output**, softmax with cross-entropy gives δ² = (p − e_y)/N, with e_y the one-hot target (the "prediction minus target" of the single neuron, now a vector);
// * **one layer down**, δˡ = σ′(zˡ) ⊙ (Wˡ⁺¹)ᵀ δˡ⁺¹: the error is sent back through the transposed weights and scaled by the activation's slope (here σ′ = tanh′ = 1 − a²);
// * **the gradients** are ∂L/∂Wˡ = Σₙ δˡₙ (aˡ⁻¹ₙ)ᵀ and ∂L/∂bˡ = Σₙ δˡₙ, an outer product per sample summed over the batch (with a⁰ = x).
//
// With the samples as the rows of matrices (X is N × d₀, Δˡ holds δˡₙ in row n), the sums become matrix products: Δ² = (P − Y)/N, Δ¹ = (1 − A¹ ⊙ A¹) ⊙ (Δ² W²), ∂L/∂W² = (Δ²)ᵀ A¹, ∂L/∂W¹ = (Δ¹)ᵀ X. In code (capitals are batch matrices; float64, so that the checks below can go to 1e-10):

// %%
int nSamples = 6, nIn = 4, nHidden = 5, nClasses = 3;
var mlpGen = new torch.Generator(17);
var X = torch.randn(new long[] { nSamples, nIn }, dtype: float64, generator: mlpGen);
var labels = torch.tensor(new long[] { 0, 2, 1, 2, 0, 1 });
var W1 = 0.7 * torch.randn(new long[] { nHidden, nIn }, dtype: float64, generator: mlpGen);
var B1 = 0.1 * torch.randn(new long[] { nHidden }, dtype: float64, generator: mlpGen);
var W2 = 0.7 * torch.randn(new long[] { nClasses, nHidden }, dtype: float64, generator: mlpGen);
var B2 = 0.1 * torch.randn(new long[] { nClasses }, dtype: float64, generator: mlpGen);

// Forward, keeping what the backward pass needs.
var Z1 = X.matmul(W1.T) + B1;               // [N, H]
var A1 = Z1.tanh();
var Z2 = A1.matmul(W2.T) + B2;              // [N, C]
var P = Z2.softmax(1);
var Y = F.one_hot(labels, nClasses).to(float64);
double mlpLoss = -(Y * P.log()).sum(1).mean().item<double>();

// Backward, by the three rules.
var D2 = (P - Y) / nSamples;                // δ² = (p − e_y)/N, one row per sample
var dW2 = D2.T.matmul(A1);                  // Σₙ δ²ₙ (a¹ₙ)ᵀ   [C, H]
var dB2 = D2.sum(dim: 0);                     // Σₙ δ²ₙ (say dim: 0: C# turns a bare 0 into the ScalarType enum, and sum(0) sums everything)
var D1 = (1 - A1 * A1) * D2.matmul(W2);     // δ¹ = tanh′(z¹) ⊙ (W²)ᵀ δ²
var dW1 = D1.T.matmul(X);                   // Σₙ δ¹ₙ xₙᵀ      [H, d₀]
var dB1 = D1.sum(dim: 0);
display($"loss {mlpLoss:F6}; δ² of the first sample: [{string.Join(", ", Values(D2[0]).Select(v => v.ToString("F4")))}] (sums to 0: the softmax's probabilities and the one-hot target both sum to 1)");
Plot.Grid(new[]
{
    Plot.Heatmap(D2, title: "δ² per sample", yTitle: "sample", xTitle: "class", colorscale: "RdBu"),
    Plot.Heatmap(D1, title: "δ¹", xTitle: "hidden unit", colorscale: "RdBu"),
}, 1, 2, title: "The errors δ² (output, left) and δ¹ (hidden, right), one row per sample")

// %% [markdown]
// **Check 1: autograd.** The same network with TorchSharp's own layers' arithmetic: leaves that require gradients, `Losses.CrossEntropy` on the logits, one `backward()`.

// %%
var leaves = new[] { ("W¹", W1), ("b¹", B1), ("W²", W2), ("b²", B2) }
    .Select(p => (Name: p.Item1, Leaf: p.Item2.clone().requires_grad_(true))).ToArray();
Tensor MlpLoss(Tensor w1, Tensor b1, Tensor w2, Tensor b2) =>
    Losses.CrossEntropy(torch.tanh(X.matmul(w1.T) + b1).matmul(w2.T) + b2, labels);
var autogradLoss = MlpLoss(leaves[0].Leaf, leaves[1].Leaf, leaves[2].Leaf, leaves[3].Leaf);
autogradLoss.backward();
var byHand = new[] { dW1, dB1, dW2, dB2 };
var handVsAutograd = leaves.Select((l, i) => (byHand[i] - l.Leaf.grad!).abs().max().item<double>()).ToArray();
new DataFrame(
    new StringDataFrameColumn("gradient", leaves.Select(l => "∂L/∂" + l.Name)),
    new StringDataFrameColumn("shape", byHand.Select(t => string.Join(" × ", t.shape))),
    new DoubleDataFrameColumn("max |by hand − autograd|", handVsAutograd))

// %% [markdown]
// **Check 2: finite differences.** Both of the above are derived from the same chain rule, so they could share a mistake. A finite difference uses nothing but the loss itself: nudge one parameter θᵢ by ±ε and see how L moves,
//
// ∂L/∂θᵢ ≈ (L(θᵢ + ε) − L(θᵢ − ε)) / 2ε,
//
// the **central difference**, whose error shrinks like ε² (the one-sided (L(θ + ε) − L(θ))/ε only like ε). We compare whole gradients with the **relative error** ‖a − n‖ / max(‖a‖, ‖n‖), which does not depend on the gradient's scale: about 1e-10 in float64 means the formulas are right, 1e-2 or more means a bug (0.5 is a factor of 2, 1 a missing gradient).

// %% tags=["errata-9-correct"]
double[] CentralDifferences(Func<double> loss, Tensor theta, double eps)
{
    var flat = theta.view(-1);
    var result = new double[flat.shape[0]];
    for (int i = 0; i < result.Length; i++)
    {
        double original = flat[i].item<double>();
        flat[i] = original + eps; double plus = loss();
        flat[i] = original - eps; double minus = loss();
        flat[i] = original;
        result[i] = (plus - minus) / (2 * eps);
    }
    return result;
}
double RelativeError(double[] a, double[] n)
{
    double diff = Math.Sqrt(a.Zip(n, (u, v) => (u - v) * (u - v)).Sum());
    double scale = Math.Max(Math.Sqrt(a.Sum(u => u * u)), Math.Sqrt(n.Sum(v => v * v)));
    return scale == 0 ? 0 : diff / scale;
}
var parameters = new[] { W1, B1, W2, B2 };
double PlainLoss() { using var _ = torch.no_grad(); return MlpLoss(W1, B1, W2, B2).item<double>(); }
var numerical = parameters.Select(p => CentralDifferences(PlainLoss, p, 1e-6)).ToArray();
var handVsNumerical = byHand.Select((g, i) => RelativeError(Values(g), numerical[i])).ToArray();
// The library's GradCheck does the same for autograd's gradients (of any module or tensors).
var autogradCheck = GradCheck.Check(() => MlpLoss(leaves[0].Leaf, leaves[1].Leaf, leaves[2].Leaf, leaves[3].Leaf), leaves.Select(l => (l.Name, l.Leaf)));
display(new DataFrame(
    new StringDataFrameColumn("gradient", leaves.Select(l => "∂L/∂" + l.Name)),
    new DoubleDataFrameColumn("relative error: by hand vs finite differences", handVsNumerical),
    new DoubleDataFrameColumn("relative error: autograd vs finite differences (GradCheck)", autogradCheck.Entries.Select(e => e.RelativeError))));
display(Claim.AtMost("every hand-derived gradient matches autograd to 1e-14", handVsAutograd.Max(), full: 1e-14, quick: 1e-14));
display(Claim.AtMost("by hand vs finite differences: relative error below 1e-8", handVsNumerical.Max(), full: 1e-8, quick: 1e-8));
Claim.AtMost("autograd vs finite differences (GradCheck): relative error below 1e-8", autogradCheck.MaxRelativeError, full: 1e-8, quick: 1e-8)

// %% [markdown]
// Why central differences, and why float64: the relative error of the finite-difference ∂L/∂W¹ (against the hand gradient) as ε shrinks. Too large an ε measures the curvature too (truncation error, ∝ ε for the one-sided difference, ∝ ε² for the central one); too small an ε divides the loss's rounding error (about 1e-16·|L| in float64, 6e-8·|L| in float32) by ε. In float32 no ε gets close to the float64 result.

// %%
var epsilons = Enumerable.Range(1, 12).Select(k => Math.Pow(10, -k)).ToArray();
double[] Sweep(ScalarType dtype, bool central)
{
    var w1 = W1.to(dtype); var b1 = B1.to(dtype); var w2 = W2.to(dtype); var b2 = B2.to(dtype);
    var x = X.to(dtype);
    double L() { using var _ = torch.no_grad(); return Losses.CrossEntropy(torch.tanh(x.matmul(w1.T) + b1).matmul(w2.T) + b2, labels).to(float64).item<double>(); }
    var reference = Values(dW1);
    return epsilons.Select(eps =>
    {
        var flat = w1.view(-1);
        var estimate = new double[reference.Length];
        for (int i = 0; i < estimate.Length; i++)
        {
            double original = flat[i].to(float64).item<double>();
            flat[i] = original + eps; double plus = L();
            flat[i] = original - (central ? eps : 0); double minus = L();
            flat[i] = original;
            estimate[i] = (plus - minus) / ((central ? 2 : 1) * eps);
        }
        return RelativeError(reference, estimate);
    }).ToArray();
}
var sweeps = new (string Name, double[] Errors)[]
{
    ("central, float64", Sweep(float64, true)), ("one-sided, float64", Sweep(float64, false)),
    ("central, float32", Sweep(float32, true)), ("one-sided, float32", Sweep(float32, false)),
};
display(Plot.WithLayout(Plot.Lines(epsilons, sweeps.Select(s => Series(s.Name, s.Errors)), title: "Relative error of the finite-difference ∂L/∂W¹", xTitle: "ε", yTitle: "relative error (log)", logY: true),
    ("xaxis", new { type = "log", title = new { text = "ε (log)" } })));
double bestCentral64 = sweeps[0].Errors.Min(), bestOneSided64 = sweeps[1].Errors.Min(), bestCentral32 = sweeps[2].Errors.Min();
display($"best relative error: central float64 {bestCentral64:E1} at ε = {epsilons[Array.IndexOf(sweeps[0].Errors, bestCentral64)]:E0}, one-sided float64 {bestOneSided64:E1}, central float32 {bestCentral32:E1}");
display(Claim.AtMost("central differences in float64 reach a relative error below 1e-9", bestCentral64, full: 1e-9, quick: 1e-9));
display(Claim.AtLeast("one-sided differences stay 100× worse than central ones", bestOneSided64 / bestCentral64, full: 100, quick: 100));
Claim.AtLeast("in float32 no ε does better than 1e-5", bestCentral32, full: 1e-5, quick: 1e-5)

// %% [markdown]
// ### GradCheck catches wrong gradients
//
// Hand-written backward passes are where gradient bugs live: a custom autograd function (a fused kernel, a numerically careful formula) and a `detach()` in the wrong place. `GradCheck.Check(module, m => loss)` compares every parameter's autograd gradient with central differences, in float64, and names the tensors that disagree. Three broken versions of the network above, and one that only looks broken:
//
// * **a custom tanh whose backward forgets the square**: grad · (1 − a) instead of grad · (1 − a²);
// * **a detached normaliser**: log-softmax written as z − logsumexp(z).detach(), "for stability";
// * **a detached hidden layer**: tanh(z¹).detach(), which cuts W¹ and b¹ off from the loss;
// * **a detached max**: z − max(z).detach() before the softmax, the usual stability trick. The softmax does not change when a constant is subtracted from all logits, so the max's gradient would be zero anyway: detaching it is *correct*.

// %%
class ForgetfulTanh : autograd.SingleTensorFunction<ForgetfulTanh>
{
    public override string Name => nameof(ForgetfulTanh);
    public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
    {
        var a = ((Tensor)vars[0]).tanh();
        ctx.save_for_backward(new() { a });
        return a;
    }
    public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor grad)
    {
        var a = ctx.get_saved_variables()[0];
        return new() { grad * (1 - a) };   // the bug: tanh′ is 1 − a²
    }
}

class TwoLayer : nn.Module<Tensor, Tensor>
{
    readonly TorchSharp.Modules.Linear fc1, fc2;
    readonly Func<Tensor, Tensor> _hidden;
    public TwoLayer(Func<Tensor, Tensor> hidden) : base(nameof(TwoLayer))
    {
        _hidden = hidden;
        fc1 = nn.Linear(4, 5); fc2 = nn.Linear(5, 3);
        RegisterComponents();
        this.to(float64);
    }
    public override Tensor forward(Tensor x) => fc2.call(_hidden(fc1.call(x)));
}

Tensor NllOf(Tensor logProbabilities) => -logProbabilities.gather(1, labels.unsqueeze(1)).mean();
var variants = new (string Name, Func<Tensor, Tensor> Hidden, Func<Tensor, Tensor> LogSoftmax)[]
{
    ("correct", t => t.tanh(), z => z.log_softmax(1)),
    ("custom tanh, backward without the square", t => ForgetfulTanh.apply(t), z => z.log_softmax(1)),
    ("z − logsumexp(z).detach()", t => t.tanh(), z => z - z.logsumexp(1, keepdim: true).detach()),
    ("tanh(z¹).detach()", t => t.tanh().detach(), z => z.log_softmax(1)),
    ("z − max(z).detach(), then log-softmax", t => t.tanh(), z => (z - z.max(1, keepdim: true).values.detach()).log_softmax(1)),
};
var verdicts = variants.Select(v =>
{
    torch.manual_seed(3);   // the same weights for every variant
    var net = new TwoLayer(v.Hidden);
    return (v.Name, Result: GradCheck.Check(net, m => NllOf(v.LogSoftmax(m.call(X)))));
}).ToList();
display(new DataFrame(
    new StringDataFrameColumn("variant", verdicts.Select(v => v.Name)),
    new StringDataFrameColumn("verdict", verdicts.Select(v => v.Result.Passed ? "passed" : "FAILED")),
    new DoubleDataFrameColumn("max relative error", verdicts.Select(v => v.Result.MaxRelativeError)),
    new StringDataFrameColumn("wrong tensors", verdicts.Select(v => string.Join(", ", v.Result.Failures.Select(f => $"{f.Name} ({f.RelativeError:F3}{(f.HasGradient ? "" : ", no gradient")})"))))));
display(Claim.That("GradCheck passes the correct network and the detached max", verdicts[0].Result.Passed && verdicts[4].Result.Passed, $"{verdicts[0].Result.MaxRelativeError:E1}, {verdicts[4].Result.MaxRelativeError:E1}"));
Claim.AtLeast("each of the three bugs shows a relative error above 1e-2", verdicts.Skip(1).Take(3).Min(v => v.Result.MaxRelativeError), full: 1e-2, quick: 1e-2)

// %% [markdown]
// The wrong tanh derivative spoils exactly the tensors below it (fc1), while fc2's gradients stay right; the detached normaliser spoils everything, because every logit's gradient misses the −p term; the detached hidden layer leaves fc1 with no gradient at all (relative error 1). A gradient check is cheap insurance whenever you write a backward pass yourself: a few dozen parameters, float64, and it either says ~1e-10 or points at the broken tensor.

// %% [markdown]
// ## 5. Optimizers from scratch
//
// An optimizer turns gradients into parameter updates. With g the gradient and t = 1, 2, … the step count:
//
// * **SGD:** p ← p − η g.
// * **Momentum:** b ← μ b + g (b = g at t = 1), p ← p − η b. The velocity b accumulates consistent directions and averages out zig-zags.
// * **Adam** (Kingma & Ba, 2015): running means of the gradient and of its square,
//   m ← β₁ m + (1 − β₁) g,  v ← β₂ v + (1 − β₂) g²,
//   **bias correction** m̂ = m / (1 − β₁ᵗ),  v̂ = v / (1 − β₂ᵗ),
//   and the update **p ← p − η m̂ / (√v̂ + ε)**, with β₁ = 0.9, β₂ = 0.999, ε = 1e-8.
//
// The source articles' Adam is a different formula:
//
// `m_t = β₁m_{t−1} + (1−β₁)[g_t − m_{t−1}]`,  `v_t = β₂v_{t−1} + (1−β₂)[g_t² − v_{t−1}]`,  `θ ← θ − α·m_t/(√v_t + ε)`,
//
// with no bias correction. It has two defects. The brackets `[g − m]` turn each running mean into m ← (2β − 1) m + (1 − β) g: an average with the faster decay 2β − 1 (0.8 and 0.998) whose weights (1 − β)·Σₖ(2β − 1)ᵏ add up to **½**, not 1, so m tends to g/2 and v to g²/2. And without the bias correction the first steps are too large. The cleanest test is a **constant gradient** g, where the right step is exactly α at every t (m̂ = g, v̂ = g²). The articles' formula, step by step:

// %% tags=["errata-16-article"]
double beta1 = 0.9, beta2 = 0.999, adamEps = 1e-8;
double[] ArticleAdamSteps(double g, int steps)                     // |Δθ| / α per step, constant gradient g
{
    double m = 0, v = 0; var sizes = new double[steps];
    for (int t = 0; t < steps; t++)
    {
        m = beta1 * m + (1 - beta1) * (g - m);
        v = beta2 * v + (1 - beta2) * (g * g - v);
        sizes[t] = m / (Math.Sqrt(v) + adamEps);
    }
    return sizes;
}
var articleSteps = ArticleAdamSteps(g: 0.5, steps: 20000);
double weightSum = (1 - beta1) / (1 - (2 * beta1 - 1));             // (1 − β)·Σ (2β − 1)^k
display(new DataFrame(
    new StringDataFrameColumn("the articles' Adam, constant gradient", new[] { "step / α at t = 1", "step / α at t = 100", "step / α at t = 20,000", "weights of the m average add up to" }),
    new DoubleDataFrameColumn("value", new[] { articleSteps[0], articleSteps[99], articleSteps[^1], weightSum })));
display(Claim.Close("the articles' first step is 3.16 α", articleSteps[0], 3.162, 5e-4));
Claim.Close("the articles' Adam settles at α/√2 ≈ 0.71 α for ever", articleSteps[^1], 1 / Math.Sqrt(2), 1e-6)

// %% [markdown]
// The bias correction is not optional either: m and v start at 0, so for small t they are biased toward 0 by exactly the factors (1 − β₁ᵗ) and (1 − β₂ᵗ). With the right averages but no correction, the step is off by (1 − β₁ᵗ)/√(1 − β₂ᵗ), 3.16 at t = 1 and 6.57 at its peak at t = 12, before it settles to 1 after thousands of steps. The correct Adam steps exactly α from the first step on:

// %% tags=["errata-16-correct"]
double[] AdamSteps(double g, int steps, bool biasCorrection)
{
    double m = 0, v = 0; var sizes = new double[steps];
    for (int t = 1; t <= steps; t++)
    {
        m = beta1 * m + (1 - beta1) * g;
        v = beta2 * v + (1 - beta2) * g * g;
        double mHat = biasCorrection ? m / (1 - Math.Pow(beta1, t)) : m, vHat = biasCorrection ? v / (1 - Math.Pow(beta2, t)) : v;
        sizes[t - 1] = mHat / (Math.Sqrt(vHat) + adamEps);
    }
    return sizes;
}
var correctSteps = AdamSteps(0.5, 20000, biasCorrection: true);
var uncorrected = AdamSteps(0.5, 20000, biasCorrection: false);
var ts = Enumerable.Range(1, 20000).Select(t => (double)t).ToArray();
display(Plot.WithLayout(Plot.Lines(ts, new[] { Series("the articles' [g − m] form", articleSteps), Series("right averages, no bias correction", uncorrected),
    Series("Adam (bias-corrected)", correctSteps) }, title: "Step size per step for a constant gradient, in units of α", xTitle: "step t (log)", yTitle: "|Δθ| / α"),
    ("xaxis", new { type = "log", title = new { text = "step t (log)" } })));
int peakAt = Array.IndexOf(uncorrected, uncorrected.Max()) + 1;
display($"no bias correction: {uncorrected[0]:F2} at t = 1, largest {uncorrected.Max():F2} at t = {peakAt}, {uncorrected[2999]:F3} at t = 3000; Adam: {correctSteps.Min():F6} to {correctSteps.Max():F6}; the articles' form: {articleSteps[^1]:F4}");
display(Claim.Close("without bias correction the step peaks at 6.57 α", uncorrected.Max(), 6.57, 5e-3));
display(Claim.Close("… at t = 12", peakAt, 12, 0));
Claim.AtMost("the bias-corrected Adam steps exactly α at every t", correctSteps.Max(v => Math.Abs(v - 1)), full: 1e-6, quick: 1e-6)

// %% [markdown]
// The three optimizers, written as plainly as possible. Their state (velocity, m, v) is allocated up front, outside any dispose scope, and updated in place under `no_grad` (an update is not part of the model's computation graph).

// %%
abstract class ScratchOptimizer
{
    protected readonly Tensor[] Params;
    protected int T;   // steps taken
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

class ScratchSgd(IEnumerable<Tensor> ps, double lr) : ScratchOptimizer(ps)
{
    protected override void Update(int i, Tensor p, Tensor g) => p.sub_(lr * g);
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
        if (T == 1) _velocity[i].copy_(g);          // b = g on the first step
        else _velocity[i].mul_(_mu).add_(g);        // b = μ b + g
        p.sub_(_lr * _velocity[i]);                 // p = p − η b
    }
}

class ScratchAdam : ScratchOptimizer
{
    protected readonly double _lr, _beta1, _beta2, _eps;
    protected readonly Tensor[] _m, _v;
    public ScratchAdam(IEnumerable<Tensor> ps, double lr, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8) : base(ps)
    {
        (_lr, _beta1, _beta2, _eps) = (lr, beta1, beta2, eps);
        _m = Params.Select(p => torch.zeros_like(p)).ToArray();
        _v = Params.Select(p => torch.zeros_like(p)).ToArray();
    }
    protected override void Update(int i, Tensor p, Tensor g)
    {
        _m[i].mul_(_beta1).add_((1 - _beta1) * g);              // m = β₁ m + (1 − β₁) g
        _v[i].mul_(_beta2).add_((1 - _beta2) * g * g);          // v = β₂ v + (1 − β₂) g²
        var mHat = _m[i] / (1 - Math.Pow(_beta1, T));           // bias corrections
        var vHat = _v[i] / (1 - Math.Pow(_beta2, T));
        p.sub_(_lr * mHat / (vHat.sqrt() + _eps));              // p = p − η m̂ / (√v̂ + ε)
    }
}

class ScratchArticleAdam(IEnumerable<Tensor> ps, double lr) : ScratchAdam(ps, lr)   // the source articles' [g − m] form, no bias correction
{
    protected override void Update(int i, Tensor p, Tensor g)
    {
        var gm = g - _m[i]; var gv = g * g - _v[i];                // the brackets use the previous m and v
        _m[i].mul_(_beta1).add_((1 - _beta1) * gm);                // m = β₁ m + (1 − β₁)[g − m]
        _v[i].mul_(_beta2).add_((1 - _beta2) * gv);                // v = β₂ v + (1 − β₂)[g² − v]
        p.sub_(_lr * _m[i] / (_v[i].sqrt() + _eps));
    }
}

// %% [markdown]
// **Step for step against TorchSharp.** Two copies of the same small network (4 → 16 → 1, tanh) in float64 fit the same regression data; one is updated by the scratch optimizer, the other by TorchSharp's. After each of 25 steps we compare all weights.

// %%
var xo = torch.randn(new long[] { 64, 4 }, dtype: float64);
var yo = (xo[.., 0].sin() + xo[.., 1] * xo[.., 2] - 0.5 * xo[.., 3]).unsqueeze(1);
nn.Module<Tensor, Tensor> SmallNet()
{
    torch.manual_seed(0);   // same initial weights every time
    var net = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 1));
    net.to(float64);
    return net;
}
double MaxDifference(nn.Module a, nn.Module b) =>
    a.parameters().Zip(b.parameters()).Max(p => (p.First - p.Second).abs().max().item<double>());

(string Name, double Worst) StepForStep(string name, Func<IEnumerable<Tensor>, ScratchOptimizer> ours,
    Func<IEnumerable<TorchSharp.Modules.Parameter>, torch.optim.Optimizer> theirs, int steps = 25)
{
    var a = SmallNet(); var b = SmallNet();
    var optA = ours(a.parameters()); var optB = theirs(b.parameters());
    double worst = 0;
    for (int t = 0; t < steps; t++)
    {
        using var scope = torch.NewDisposeScope();
        optA.ZeroGrad(); optB.zero_grad();
        Losses.Mse(a.call(xo), yo).backward();
        Losses.Mse(b.call(xo), yo).backward();
        optA.Step(); optB.step();
        worst = Math.Max(worst, MaxDifference(a, b));
    }
    return (name, worst);
}
var stepChecks = new[]
{
    StepForStep("SGD η=0.1", ps => new ScratchSgd(ps, 0.1), ps => Optimizers.Sgd(ps, lr: 0.1)),
    StepForStep("momentum η=0.1 μ=0.9", ps => new ScratchMomentum(ps, 0.1, 0.9), ps => Optimizers.Sgd(ps, lr: 0.1, momentum: 0.9)),
    StepForStep("Adam η=0.01", ps => new ScratchAdam(ps, 0.01), ps => Optimizers.Adam(ps, lr: 0.01)),
};
display(new DataFrame(new StringDataFrameColumn("optimizer", stepChecks.Select(c => c.Name)),
    new DoubleDataFrameColumn("max |weight difference| over 25 steps", stepChecks.Select(c => c.Worst))));
Claim.AtMost("the scratch optimizers match TorchSharp's step for step (float64 rounding)", stepChecks.Max(c => c.Worst), full: 1e-12, quick: 1e-12)

// %% [markdown]
// Differences at the level of float64 rounding (≈1e-16 to 1e-15; TorchSharp's Adam divides in a slightly different order): the formulas are the ones TorchSharp implements. The library's `Optimizers` are in turn tested against PyTorch's own updates (`optim_*.safetensors` goldens, within 1e-5 in float32).
//
// **A race.** Same network, same data, 300 steps each:

// %%
List<double> Race(Func<IEnumerable<Tensor>, ScratchOptimizer> make, int steps = 300)
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
var race = new[]
{
    Series("SGD η=0.1", Race(ps => new ScratchSgd(ps, 0.1))),
    Series("momentum η=0.1 μ=0.9", Race(ps => new ScratchMomentum(ps, 0.1, 0.9))),
    Series("Adam η=0.01", Race(ps => new ScratchAdam(ps, 0.01))),
    Series("the articles' Adam η=0.01", Race(ps => new ScratchArticleAdam(ps, 0.01))),
};
display(Plot.Curves(race, title: "Training loss of the three optimizers", yTitle: "MSE (log scale)", logY: true));
new DataFrame(new StringDataFrameColumn("optimizer", race.Select(r => r.Item1)),
    new DoubleDataFrameColumn("loss after 50 steps", race.Select(r => r.Item2[49])),
    new DoubleDataFrameColumn("loss after 300 steps", race.Select(r => r.Item2[^1])))

// %% [markdown]
// The source articles' Adam is in the race too, and on this small problem it need not lose: its first steps are up to several times larger than α (the constant-gradient test above), which here acts like a larger learning rate, and later it steps about 0.71 α. That is a learning-rate schedule nobody chose, hidden in a formula that claims to be running means of g and g² and is not; with the same η the two are simply different optimizers, and only one of them is Adam.
//
// ## 6. A real run: an MLP on Fashion-MNIST
//
// [Fashion-MNIST](https://github.com/zalandoresearch/fashion-mnist): 70,000 grey 28×28 images of clothing in 10 classes (60,000 for training, 10,000 for testing), shipped in `data/`. `Datasets.FashionMnist` reads the IDX files (checking magic numbers and sizes) into images scaled to [0, 1] and int64 labels. We keep 10% of the training set aside for **validation**: the held-out numbers we watch during training, while the test set is touched once at the end.

// %%
var fashionTrain = Datasets.FashionMnist(train: true, limit: Notebook.Pick<int?>(quick: 6000, full: null));
var fashionTest = Datasets.FashionMnist(train: false, limit: Notebook.Pick<int?>(quick: 2000, full: null));
var (trainSet, valSet) = fashionTrain.Split(validationFraction: 0.1, seed: 1);
var trainLoader = new BatchLoader(trainSet, batchSize: 128, shuffle: true, seed: 2);
var valLoader = new BatchLoader(valSet, batchSize: 1000);
var testLoader = new BatchLoader(fashionTest, batchSize: 1000);
display(Plot.Heatmap(trainSet.Inputs[0, 0], title: $"a training image: {Datasets.FashionMnistClasses[(int)trainSet.Targets[0].item<long>()]}", colorscale: "Greys"));
$"{trainSet.Count} training, {valSet.Count} validation, {fashionTest.Count} test images; {trainLoader}"

// %% [markdown]
// The model: 784 → 256 → 128 → 10 with ReLU, and dropout (which zeroes 20% of the activations at random during training, a regulariser; it is off in evaluation). The `Trainer` runs the loop of this notebook for any `Module<Tensor, Tensor>`: every micro-batch in its own dispose scope (memory stays flat), AdamW with a linear warmup and cosine decay of the learning rate, gradient clipping, evaluation under `no_grad` in eval mode after each epoch, and a checkpoint after each epoch. (It can also run by optimizer steps instead of epochs, evaluating and checkpointing every N steps: `MaxSteps` and `EvalEvery`, as notebook 07 trains its GPT; `Callbacks` hook code into fixed points of the loop.)

// %%
using System.IO;
nn.Module<Tensor, Tensor> FashionMlp() => nn.Sequential(
    nn.Flatten(),
    nn.Linear(784, 256), nn.ReLU(), nn.Dropout(0.2),
    nn.Linear(256, 128), nn.ReLU(), nn.Dropout(0.2),
    nn.Linear(128, 10));

var checkpointDir = Path.Combine(Path.GetTempPath(), "workbook-04");
Directory.CreateDirectory(checkpointDir);
int epochs = Notebook.Pick(quick: 2, full: 12);
Notebook.Reseed(42);
var mlp = FashionMlp();
var trainer = new Trainer(mlp, Optimizers.AdamW(mlp.parameters(), lr: 2e-3, weightDecay: 1e-4), Losses.CrossEntropy)
{
    Epochs = epochs,
    Metrics = { Metric.Accuracy },
    Schedule = LRSchedule.WarmupCosine(2e-3, warmupSteps: Notebook.Pick(quick: 10, full: 200), totalSteps: epochs * trainLoader.BatchCount, minLr: 2e-5),
    ClipGradNorm = 1.0,
    CheckpointPath = Path.Combine(checkpointDir, "fashion-mlp.safetensors"),
};
$"{mlp.parameters().Sum(p => p.numel()):N0} parameters; schedule {trainer.Schedule}"

// %% [markdown]
// Training, with a live progress bar and live curves (the cell updates them in place as the run goes):

// %%
var progressView = Notebook.Display("starting…");
var curvesView = Notebook.Display("the curves appear after the first epoch");
trainer.OnProgress = p =>
{
    progressView.Update(p);
    if (p.Phase == TrainingPhase.EpochEnd) curvesView.Update(p.History.Plot(title: "Fashion-MNIST MLP"));
};
var history = trainer.Fit(trainLoader, valLoader);
history.ToDataFrame()

// %% [markdown]
// The faint line is the per-step training loss (smoothed); the markers are epoch means. Training loss is measured with dropout on and while the weights change, validation loss in eval mode at the end of each epoch, so early on the validation loss can even sit below the training loss.
//
// The source articles run this experiment with three mistakes in a few lines: a dense layer declared for 784 inputs is fed the unflattened 28 × 28 images, the text announces 3 hidden layers where the code has 2, and the accuracy reported as "test accuracy" is measured on the training data. The first and the last, computed:

// %% tags=["errata-17-article"]
string unflattened;
try { using var noGrad = torch.no_grad(); nn.Linear(784, 256).call(trainSet.Inputs[..4]); unflattened = "no error"; }
catch (Exception e) { unflattened = e.Message.Split('\n')[0]; }
var onTrainingData = trainer.Evaluate(new BatchLoader(trainSet, batchSize: 1000));
display($"a 784-input layer on images of shape [{string.Join(", ", trainSet.Inputs[..4].shape)}]: {unflattened}");
display($"\"test accuracy\" measured on the training data: {onTrainingData["accuracy"]:P2}");
Claim.That("a layer for 784 inputs refuses unflattened 28 × 28 images", unflattened != "no error", unflattened)

// %% [markdown]
// The fix for each: flatten first (`nn.Flatten()` is the first layer of `FashionMlp`), count the layers from the model rather than from memory, and measure the test accuracy once, on images the model never trained on. Now the test set, once:

// %% tags=["errata-17-correct"]
var hiddenLayers = mlp.modules().OfType<TorchSharp.Modules.Linear>().Count() - 1;
var test = trainer.Evaluate(testLoader);
display($"FashionMlp on [{string.Join(", ", trainSet.Inputs[..4].shape)}] → [{string.Join(", ", mlp.call(trainSet.Inputs[..4]).shape)}]; hidden layers: {hiddenLayers}");
display($"test: {test}. Accuracy {test["accuracy"]:P2} ({Notebook.Profile} profile), against {onTrainingData["accuracy"]:P2} on the training data");
display(Claim.Close("the MLP has 2 hidden layers", hiddenLayers, 2, 0));
display(Claim.AtLeast("accuracy on the training data overstates the test accuracy (points)", onTrainingData["accuracy"] - test["accuracy"], full: 0, quick: null));
Claim.AtLeast("the MLP reaches ≥ 88 % test accuracy", test["accuracy"], full: 0.88, quick: 0.7)

// %% [markdown]
// **What real curves look like.** The source articles report a run whose first-epoch loss is 2.358 and whose final loss of 1.00 comes with 98.2 % accuracy. A model that guesses uniformly among 10 classes has cross-entropy ln 10 = 2.303, so a first epoch at 2.358 is worse on average than not learning at all. And a mean cross-entropy of 1.00 means that the true class gets, on (geometric) average, e⁻¹ = 37 % of the probability, while the argmax is right 98.2 % of the time: a model that is right on almost every image and yet hesitant on almost every one. That is possible in principle, but it is not what training produces:

// %% tags=["errata-19-article"]
double chanceLoss = Math.Log(10);
display(new DataFrame(
    new StringDataFrameColumn("the articles' reported run", new[] { "epoch-1 loss", "ln 10 (uniform guess over 10 classes)", "final loss", "e^(−final loss): geometric-mean probability of the true class", "reported accuracy" }),
    new DoubleDataFrameColumn("value", new[] { 2.358, chanceLoss, 1.00, Math.Exp(-1.00), 0.982 })));
Claim.AtLeast("the articles' epoch-1 loss is worse than a uniform guess (2.358 − ln 10)", 2.358 - chanceLoss, full: 0, quick: 0)

// %% [markdown]
// Our run on the same task: the very first step starts at ln 10, the first epoch's mean is already far below it, and loss and accuracy move together (the geometric-mean probability of the true class is e^(−loss)):

// %% tags=["errata-19-correct"]
var firstStepLoss = history.Steps[0].Loss;
var testLoss = test["loss"];
display(new DataFrame(
    new StringDataFrameColumn("our run", new[] { "loss of the first step", "epoch-1 mean training loss", "final validation loss", "test loss", "e^(−test loss)", "test accuracy" }),
    new DoubleDataFrameColumn("value", new[] { firstStepLoss, history.Epochs[0].TrainLoss, history.Last!.ValLoss!.Value, testLoss, Math.Exp(-testLoss), test["accuracy"] })));
display(Claim.Between("training starts at ln 10 = 2.30 (first step)", firstStepLoss, 2.1, 2.5, quick: (2.1, 2.5)));
display(Claim.AtMost("the first epoch's mean loss is well below ln 10", history.Epochs[0].TrainLoss, full: 1.0, quick: 1.5));
Claim.AtMost("at ≥ 88 % accuracy the test loss is far below 1.00", testLoss, full: 0.4, quick: null)

// %% [markdown]
// ## 7. Checkpoint, crash, resume
//
// A checkpoint is one safetensors file with everything a run needs to continue: the weights, the optimizer's state (Adam's m and v and step count), the epoch and step, the seed, torch's random-generator state (so dropout draws the same masks) and the history. It is written to a temporary file and renamed, so a crash during the save leaves the previous checkpoint intact.

// %%
var checkpointHeader = SafeTensors.ReadHeader(trainer.CheckpointPath!);
new DataFrame(
    new StringDataFrameColumn("part", new[] { "model.*", "optimizer.*", "rng.cpu", "metadata keys" }),
    new StringDataFrameColumn("what", new[]
    {
        $"{checkpointHeader.Tensors.Count(t => t.Name.StartsWith("model."))} tensors, e.g. {checkpointHeader.Tensors.First(t => t.Name.StartsWith("model.")).Name}",
        $"{checkpointHeader.Tensors.Count(t => t.Name.StartsWith("optimizer."))} tensors, e.g. {checkpointHeader.Tensors.First(t => t.Name.EndsWith("exp_avg_sq")).Name}",
        $"{checkpointHeader.Tensors.Single(t => t.Name == "rng.cpu").Shape[0]} bytes of generator state",
        string.Join(", ", checkpointHeader.Metadata.Keys.OrderBy(k => k)),
    }))

// %% [markdown]
// **The experiment.** Three runs of the same recipe on a subset, four epochs each:
//
// * **A** runs uninterrupted.
// * **B** is the same run (same seed), checkpointing after every epoch, and "crashes" in the middle of epoch 3 (we cancel it from the progress callback).
// * **C** is a fresh process, in effect: a model built with a *different* seed, a new optimizer, then `LoadCheckpoint` from B's file and `Fit`.
//
// If resuming is exact, C's losses from epoch 3 on are A's losses, bit for bit, and C ends with A's weights.

// %%
using System.Threading;
var resumeSubset = trainSet.Take(Notebook.Pick(quick: 2000, full: 12000));
var resumeLoader = new BatchLoader(resumeSubset, batchSize: 64, shuffle: true, seed: 3);
var resumePath = Path.Combine(checkpointDir, "resume-demo.safetensors");
if (File.Exists(resumePath)) File.Delete(resumePath);

Trainer Recipe(int seed)
{
    Notebook.Reseed(seed);
    var model = FashionMlp();
    return new Trainer(model, Optimizers.AdamW(model.parameters(), lr: 2e-3), Losses.CrossEntropy)
    {
        Epochs = 4, Metrics = { Metric.Accuracy }, ClipGradNorm = 1.0,
        Schedule = LRSchedule.WarmupCosine(2e-3, warmupSteps: 20, totalSteps: 4 * resumeLoader.BatchCount),
    };
}

var runA = Recipe(seed: 7);
runA.Fit(resumeLoader, valLoader);

var runB = Recipe(seed: 7);
runB.CheckpointPath = resumePath;
runB.ProgressInterval = TimeSpan.Zero;   // report every batch, so the "crash" lands mid-epoch
var crash = new CancellationTokenSource();
runB.OnProgress = p => { if (p.Phase == TrainingPhase.Train && p.Epoch == 2 && p.Batch == resumeLoader.BatchCount / 2) crash.Cancel(); };
runB.Fit(resumeLoader, valLoader, crash.Token);

var runC = Recipe(seed: 12345);
var restored = runC.LoadCheckpoint(resumePath);
runC.Fit(resumeLoader, valLoader);
$"B stopped ({runB.History.StopReason}): {runB.History.StopDetail}. C resumed from epoch {restored.Epoch}, step {restored.Step}, and ran to step {runC.Step}."

// %%
var lossesA = runA.History.StepLosses; var lossesC = runC.History.StepLosses;
var resumedFrom = (int)restored.Step;
double maxLossDifference = lossesA.Zip(lossesC).Max(p => Math.Abs(p.First - p.Second));
bool sameWeights = runA.Model.parameters().Zip(runC.Model.parameters()).All(p => p.First.bytes.SequenceEqual(p.Second.bytes));
display(Plot.Curves(new[]
{
    Series("A: uninterrupted", TrainingHistory.MovingAverage(lossesA, 10)),
    Series("B: crashed", TrainingHistory.MovingAverage(runB.History.StepLosses, 10)),
    Series("C: resumed from B's checkpoint", TrainingHistory.MovingAverage(lossesC, 10)),
}, title: $"Step losses (moving average of 10); C resumes at step {resumedFrom}", yTitle: "training loss"));
display(new DataFrame(
    new StringDataFrameColumn("check", new[] { "steps in A and in C", $"steps after the resume (from step {resumedFrom})", "max |loss A − loss C| over all steps", "final weights bit-identical", "B's steps after its last checkpoint (lost, redone by C)" }),
    new StringDataFrameColumn("result", new[] { $"{lossesA.Length} and {lossesC.Length}", $"{lossesC.Length - resumedFrom}", $"{maxLossDifference}", $"{sameWeights}", $"{runB.History.Steps.Count - resumedFrom}" })));
display(Claim.That("A and C take the same number of steps, some of them after the resume", lossesA.Length == lossesC.Length && lossesC.Length > resumedFrom, $"{lossesA.Length} and {lossesC.Length}, resumed at {resumedFrom}"));
display(Claim.Close("the losses of A and C differ by exactly 0 at every step", maxLossDifference, 0, 0));
Claim.That("the final weights are bit-identical", sameWeights, $"{sameWeights}")

// %% [markdown]
// The curves of A and C are the same curve: the difference is exactly 0 at every step, including the steps after the resume, and the final weights are bit-identical. Three ingredients make this work: the optimizer state travels with the weights, the random generator's state is restored (dropout masks), and the batch order of an epoch depends only on the loader's seed and the epoch number.
//
// A damaged checkpoint is refused with a message that says what is wrong, before anything is changed:

// %%
var damaged = Path.Combine(checkpointDir, "damaged.safetensors");
var bytes = File.ReadAllBytes(resumePath);
File.WriteAllBytes(damaged, bytes[..(bytes.Length / 2)]);
try { Recipe(seed: 1).LoadCheckpoint(damaged); }
catch (CheckpointException e) { Console.WriteLine(e.Message); }
var otherShape = nn.Sequential(nn.Flatten(), nn.Linear(784, 64), nn.ReLU(), nn.Dropout(0.2), nn.Linear(64, 128), nn.ReLU(), nn.Dropout(0.2), nn.Linear(128, 10));
try { Checkpoint.Load(resumePath, otherShape); }
catch (CheckpointException e) { Console.WriteLine(e.Message); }

// %% [markdown]
// ## What to take away
//
// * `loss.backward()` applies the chain rule through every operation; for a sigmoid or softmax output with cross-entropy, the gradient at the logits is simply prediction − target.
// * Through a layer, the error goes back through the transposed weights and is scaled by the activation's slope, δˡ = σ′(zˡ) ⊙ (Wˡ⁺¹)ᵀ δˡ⁺¹, and each weight's gradient is the batch sum of outer products δˡ (aˡ⁻¹)ᵀ. Check hand-written gradients with central differences in float64 (`GradCheck`): right ones agree to ~1e-10.
// * The learning rate must stay below 2 / curvature, or gradient descent diverges.
// * Momentum accumulates a velocity; Adam scales each coordinate by a running RMS of its gradients and **needs** bias correction in the first steps.
// * A usable training loop evaluates in eval mode without gradients, frees every step's tensors, and checkpoints everything (weights, optimizer state, RNG state, step) so that a resumed run is the same run.
//
// ## Exercises
//
// 1. **Nesterov momentum.** Write `ScratchNesterov` (PyTorch's form: b ← μ b + g, then p ← p − η (g + μ b)) and check it step for step against `Optimizers.Sgd(ps, lr: 0.1, momentum: 0.9, nesterov: true)` with `StepForStep`. Add it to the race.
// 2. **A learning-rate range test** (Smith, 2017). Train `FashionMlp()` for one epoch on a subset while the learning rate grows exponentially from 1e-5 to 1 (`Schedule = LRSchedule.From(...)`), and plot the step loss against the learning rate (log x axis). Where does the loss fall fastest, and where does it blow up? How does that compare with the 2e-3 used above?
// 3. **Early stopping and label smoothing.** Train with `EarlyStopping = new EarlyStopping("val_accuracy", Patience: 2)` and the label-smoothed loss `Losses.CrossEntropyWith(labelSmoothing: 0.1)` for up to 10 epochs. At which epoch does it stop, which epoch's weights does it keep, and what are the test accuracy and the mean confidence (max softmax probability) compared with the plain loss?
//
// 4. **Backprop for a deeper ReLU regression network.** For L layers z¹ = W¹x + b¹, aˡ = ReLU(zˡ), ŷ = Wᴸaᴸ⁻¹ + bᴸ and L = (1/N) Σₙ ‖ŷₙ − yₙ‖², write δᴸ, the rule that takes δˡ⁺¹ to δˡ, and the gradients, as a loop over the layers. Implement it for 3 hidden layers of width 8 and check every gradient against autograd and with `GradCheck`. What does ReLU′ do to δ for a unit that is off?
//
// Solutions: [`solutions/04-training-loop-solutions.ipynb`](solutions/04-training-loop-solutions.ipynb).
