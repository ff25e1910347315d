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
// # 10 · Solutions: generative adversarial networks
//
// Solutions to the exercises of `10-gans.ipynb`, with the chapter's networks, data and judge. The Quick profile trains for a few dozen steps only, so its samples are still noise; the text discusses the Full profile.

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
using Workbook.Generative;
using Workbook.Training;
using Workbook.Vision;

var fashion = Datasets.FashionMnist(train: true, limit: Notebook.Pick<int?>(quick: 5000, full: null));
var realImages = fashion.Inputs * 2 - 1;
int latent = 64, ganBatch = 64;
GanTrainer TrainGan(int steps, double lrG, int generatorSteps, int pack, bool minimax, int seed)
{
    Notebook.Reseed(seed);
    var g = new MlpGenerator(latent, [1, 28, 28], [256, 512]);
    var d = new MlpDiscriminator(784, [512, 256], pack);
    var trainer = new GanTrainer(g, d, Optimizers.Adam(g.parameters(), lrG, beta1: 0.5), Optimizers.Adam(d.parameters(), 2e-4, beta1: 0.5), latent)
        { GeneratorSteps = generatorSteps, MinimaxGenerator = minimax };
    var noise = new Generator((ulong)seed + 1);
    var pick = new Random(seed);
    for (int step = 1; step <= steps; step++)
    {
        using var scope = NewDisposeScope();
        var idx = tensor(Enumerable.Range(0, ganBatch).Select(_ => (long)pick.Next((int)realImages.shape[0])).ToArray());
        trainer.Step(realImages.index_select(0, idx), noise);
    }
    return trainer;
}
Tensor ToUnit(Tensor x) => ((x + 1) / 2).clamp(0, 1);
Notebook.Reseed(5);
var judge = new SimpleCNN();
new Trainer(judge, Optimizers.Adam(judge.parameters(), 2e-3), Losses.CrossEntropy) { Epochs = 1 }.Fit(new BatchLoader(fashion, 128, shuffle: true, seed: 2));
double Entropy(GanTrainer t)
{
    var labels = Evaluation.Predict(judge, ToUnit(t.Sample(randn(1000, latent, generator: new Generator(7))))).argmax(1).data<long>().ToArray();
    return Math.Max(0, -Enumerable.Range(0, 10).Select(c => labels.Count(l => l == c) / 1000.0).Where(p => p > 0).Sum(p => p * Math.Log(p)));
}
"judge trained"

// %% [markdown]
// ## Exercise 1 · The minimax loss
//
// The balanced GAN twice, once with each generator loss, the same seed and steps.

// %%
int steps = Notebook.Pick(quick: 60, full: 1500);
var nonSat = TrainGan(steps, 2e-4, 1, 1, minimax: false, seed: 1);
var minimax = TrainGan(steps, 2e-4, 1, 1, minimax: true, seed: 1);
int early = Math.Min(200, steps);
var x = Enumerable.Range(1, early).Select(i => (double)i).ToList();
display(Plot.WithLayout(Plotly.NET.GenericChart.combine(new[] {
        Plot.Line(x, TrainingHistory.MovingAverage(nonSat.History.Take(early).Select(h => h.DFake).ToList(), 10), "non-saturating"),
        Plot.Line(x, TrainingHistory.MovingAverage(minimax.History.Take(early).Select(h => h.DFake).ToList(), 10), "minimax") }),
    ("title", new { text = "D(G(z)) over the first steps" }), ("xaxis", new { title = new { text = "step" } })));
double earlyNs = nonSat.History.Take(early).Average(h => h.DFake), earlyMm = minimax.History.Take(early).Average(h => h.DFake);
display($"mean D(G(z)) over the first {early} steps: non-saturating {earlyNs:F3}, minimax {earlyMm:F3}; label entropy at the end: non-saturating {Entropy(nonSat):F3}, minimax {Entropy(minimax):F3}");
new DataFrame(new StringDataFrameColumn("loss", ["non-saturating", "minimax"]), new DoubleDataFrameColumn("mean D(G(z)), first steps", new[] { earlyNs, earlyMm }.Select(v => Math.Round(v, 3))))

// %% [markdown]
// With the minimax loss, G's gradient is proportional to D(G(z)). As soon as D starts to reject the fakes, G's updates shrink. D(G(z)) then stays lower than with the non-saturating loss, and G improves more slowly. On an MLP this small the game often still gets going, because D is not perfect either. The non-saturating loss is the safer default: same fixed point, strong gradients when G is losing.
//
// ## Exercise 2 · PacGAN against collapse
//
// The chapter's over-strong generator (10 G steps per D step at lr 1e-3), once with the standard discriminator and once with a discriminator that judges pairs (`pack: 2`).

// %%
int collapseSteps = Notebook.Pick(quick: 20, full: 400);
var plain = TrainGan(collapseSteps, 1e-3, 10, pack: 1, minimax: false, seed: 1);
var packed = TrainGan(collapseSteps, 1e-3, 10, pack: 2, minimax: false, seed: 1);
var (plainH, packedH) = (Entropy(plain), Entropy(packed));
display(new DataFrame(new StringDataFrameColumn("discriminator", ["standard", "packed (pairs)"]), new DoubleDataFrameColumn("label entropy", new[] { plainH, packedH }.Select(v => Math.Round(v, 3)))));
Plot.Grid([VisionPlot.ImageGrid(ToUnit(plain.Sample(randn(16, latent, generator: new Generator(3)))), columns: 4, title: "standard D"),
           VisionPlot.ImageGrid(ToUnit(packed.Sample(randn(16, latent, generator: new Generator(3)))), columns: 4, title: "packed D")], rows: 1, columns: 2)

// %% [markdown]
// A packed discriminator sees two samples side by side. Two real images are almost never near-copies, so a pair of near-identical fakes is an easy reject: a collapsed generator loses. Compare the two entropies above. Packing helps against collapse, but it does not make an unbalanced game balanced. The reliable fix is still one G step per D step.
//
// ## Exercise 3 · Walking in latent space
//
// Two latent vectors, and eleven points on the straight line between them, through the generator of exercise 1.

// %%
var z1 = randn(1, latent, generator: new Generator(11));
var z2 = randn(1, latent, generator: new Generator(12));
var path = cat(Enumerable.Range(0, 11).Select(i => z1 * (1 - i / 10.0) + z2 * (i / 10.0)).ToArray(), 0);
var walk = ToUnit(nonSat.Sample(path));
var stepDistances = Enumerable.Range(0, 10).Select(i => (walk[i + 1] - walk[i]).pow(2).sum().sqrt().item<float>()).ToList();
display(VisionPlot.ImageGrid(walk, columns: 11, title: "G((1 − t)·z₁ + t·z₂), t = 0 … 1"));
$"pixel distance between neighbouring images: {string.Join(", ", stepDistances.Select(d => d.ToString("F2")))}; end to end {(walk[10] - walk[0]).pow(2).sum().sqrt().item<float>():F2}"

// %% [markdown]
// The images change gradually: each step moves the picture by a fraction of the distance between the two ends, with no jumps. G is a continuous map, and training made nearby latent vectors give similar items. Where the path crosses from one kind of item to another (a shirt turning into a dress, say), the in-between images are plausible blends, not noise. That smoothness is what lets people edit images by moving in a GAN's latent space.
