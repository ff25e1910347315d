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
// # 10 · Generative adversarial networks
//
// A GAN (Goodfellow et al. 2014) learns to make samples that look like its training data without ever writing down their probability. Two networks play a game. The **generator** G turns random noise z into a sample. The **discriminator** D looks at a sample and says how likely it is to be real. D learns to tell real from fake, and G learns to fool D.
//
// The source articles teach GANs as "train the discriminator, then the generator", with no objective, and they name one formula the "adversarial loss". This chapter writes the game down:
//
// 1. the minimax objective and both players' losses, computed by hand and checked;
// 2. why the generator is trained with the *non-saturating* loss, and why the fake batch is *detached* in the discriminator's step;
// 3. a GAN trained on Fashion-MNIST on two CPU cores, with samples from fixed z during training and the loss curves, and what those curves do and do not tell you;
// 4. a check that goes beyond looking: a classifier's label distribution over generated samples, and nearest-neighbour distances to the training set;
// 5. mode collapse, made to happen on purpose, and fixed.

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
using F = TorchSharp.torch.nn.functional;

// %% [markdown]
// ## 1 · The game
//
// D outputs a logit l; D(x) = σ(l) is its probability that x is real. The value of the game is
//
// $$V(D, G) = \mathbb{E}_{x \sim \text{data}}[\log D(x)] + \mathbb{E}_{z \sim \mathcal{N}(0, I)}[\log(1 - D(G(z)))], \qquad \min_G \max_D V(D, G).$$
//
// Each player minimises its own loss; each expectation is a mean over a batch:
//
// - **discriminator**: $L_D = -\mathbb{E}_x[\log D(x)] - \mathbb{E}_z[\log(1 - D(G(z)))]$. This is binary cross-entropy with real = 1 and fake = 0. It has **two terms**, one for real samples and one for fakes;
// - **generator, minimax**: $L_G = \mathbb{E}_z[\log(1 - D(G(z)))]$, the part of V that G can change;
// - **generator, non-saturating**: $L_G = -\mathbb{E}_z[\log D(G(z))]$. It has the same fixed point, and it is the loss GANs are trained with (section 2).
//
// For a fixed G, the best D is $D^*(x) = p_\text{data}(x) / (p_\text{data}(x) + p_G(x))$. At the game's equilibrium, $p_G = p_\text{data}$, so D(x) = ½ everywhere and $L_D = 2\ln 2 \approx 1.386$.
//
// A batch of three real and three fake logits, by hand in double precision against the library's `GanLosses`:

// %% tags=["errata-13-correct"]
double[] realLogits = [2.0, 0.5, -1.0], fakeLogits = [-2.0, 0.3, 1.5];
double Sigma(double l) => 1 / (1 + Math.Exp(-l));
double handD = -realLogits.Average(l => Math.Log(Sigma(l))) - fakeLogits.Average(l => Math.Log(1 - Sigma(l)));
double handMinimax = fakeLogits.Average(l => Math.Log(1 - Sigma(l)));
double handNonSat = -fakeLogits.Average(l => Math.Log(Sigma(l)));
var (rl, fl) = (tensor(realLogits), tensor(fakeLogits));
display(new DataFrame(
    new StringDataFrameColumn("loss", ["L_D", "L_G minimax", "L_G non-saturating"]),
    new DoubleDataFrameColumn("by hand", new[] { handD, handMinimax, handNonSat }.Select(v => Math.Round(v, 6))),
    new DoubleDataFrameColumn("GanLosses", new[] { GanLosses.Discriminator(rl, fl), GanLosses.GeneratorMinimax(fl), GanLosses.GeneratorNonSaturating(fl) }.Select(t => Math.Round(t.item<double>(), 6)))));
display(Claim.Close("L_D from the library equals the hand computation", GanLosses.Discriminator(rl, fl).item<double>(), handD, 1e-9));
display(Claim.Close("the non-saturating L_G equals the hand computation", GanLosses.GeneratorNonSaturating(fl).item<double>(), handNonSat, 1e-9));
Claim.Close("L_D at the equilibrium (every logit 0, D = ½) is 2 ln 2", GanLosses.Discriminator(zeros(4, dtype: ScalarType.Float64), zeros(4, dtype: ScalarType.Float64)).item<double>(), 2 * Math.Log(2), 1e-12)

// %% [markdown]
// **The articles' "adversarial loss".** One source article defines the adversarial loss as $AL = -\sum_i \log \hat y_i$, with ŷ the discriminator's probability. Computed on the fake batch above, that is:

// %% tags=["errata-7-article"]
double articleAL = -fakeLogits.Sum(l => Math.Log(Sigma(l)));
$"AL = −Σ log D(G(z)) = {articleAL:F6}; batch size × non-saturating L_G = {fakeLogits.Length * handNonSat:F6}"

// %% [markdown]
// It is **only the generator's non-saturating term**, summed instead of averaged. It has no term for real samples, so it cannot train the discriminator. Worse, a discriminator that minimised it would learn to call fakes *real*: its gradient with respect to D's fake logits is negative, so gradient descent raises D(G(z)). The discriminator's loss needs both terms:

// %% tags=["errata-7-correct"]
var fakeForD = tensor(fakeLogits, requires_grad: true);
var articleGrad = torch.autograd.grad([-(F.logsigmoid(fakeForD)).sum()], [fakeForD])[0];
var fakeForD2 = tensor(fakeLogits, requires_grad: true);
var correctGrad = torch.autograd.grad([GanLosses.Discriminator(rl, fakeForD2)], [fakeForD2])[0];
display($"∂AL/∂l_fake = [{string.Join(", ", articleGrad.data<double>().Select(v => v.ToString("F3")))}] (descent raises D(G(z)): D is taught to accept fakes)");
display($"∂L_D/∂l_fake = [{string.Join(", ", correctGrad.data<double>().Select(v => v.ToString("F3")))}] (descent lowers D(G(z)); L_D = {handD:F4} also has the real term {-realLogits.Average(l => Math.Log(Sigma(l))):F4})");
Claim.That("AL pushes every fake logit up, L_D pushes every fake logit down", articleGrad.lt(0).all().item<bool>() && correctGrad.gt(0).all().item<bool>(),
    $"signs {string.Join("", articleGrad.data<double>().Select(v => v < 0 ? "−" : "+"))} vs {string.Join("", correctGrad.data<double>().Select(v => v < 0 ? "−" : "+"))}")

// %% [markdown]
// ## 2 · Two details that matter
//
// **The non-saturating loss.** Early in training the fakes are bad and D rejects them: D(G(z)) ≈ 0. The minimax loss log(1 − D(G(z))) is flat there. Its gradient with respect to the logit is −D(G(z)), close to 0, so G learns nothing exactly when it has the most to learn. The non-saturating loss −log D(G(z)) has gradient −(1 − D(G(z))), close to −1 there. Both pull G the same way, but with very different force:

// %%
var dOut = Enumerable.Range(1, 99).Select(i => i / 100.0).ToList();
var minimaxGrad = dOut.Select(d => d).ToList();           // |∂ log(1 − σ(l)) / ∂l| = σ(l) = D(G(z))
var nonSatGrad = dOut.Select(d => 1 - d).ToList();        // |∂ −log σ(l) / ∂l| = 1 − σ(l)
var lowLogit = tensor(new[] { Math.Log(0.01 / 0.99) }, requires_grad: true);   // D(G(z)) = 0.01
double gMm = torch.autograd.grad([GanLosses.GeneratorMinimax(lowLogit)], [lowLogit])[0].item<double>();
var lowLogit2 = tensor(new[] { Math.Log(0.01 / 0.99) }, requires_grad: true);
double gNs = torch.autograd.grad([GanLosses.GeneratorNonSaturating(lowLogit2)], [lowLogit2])[0].item<double>();
display(Claim.Close("at D(G(z)) = 0.01 the non-saturating gradient is 99 times the minimax one", gNs / gMm, 99, 1e-6));
Plot.WithLayout(Plotly.NET.GenericChart.combine(new[] { Plot.Line(dOut, minimaxGrad, "minimax: log(1 − D)"), Plot.Line(dOut, nonSatGrad, "non-saturating: −log D") }),
    ("title", new { text = "Generator's gradient size with respect to D's logit" }), ("xaxis", new { title = new { text = "D(G(z))" } }), ("yaxis", new { title = new { text = "|∂L_G/∂l|" } }))

// %% [markdown]
// **Detaching the fake batch.** In D's step, the fake images enter D's loss. Without `detach()`, the backward pass of L_D runs on through G and leaves gradients in G's parameters. Those gradients point the *wrong way* for G: for the minimax loss, $\nabla_{\theta_G} L_D = -\nabla_{\theta_G} L_G$ exactly, because the fake term of L_D is minus G's loss. A step on them would make G's fakes *easier* to spot. `detach()` cuts the graph at the fake batch: D's update touches only D, and the backward pass stops there instead of running through G for nothing.

// %% tags=["errata-13-correct"]
Notebook.Reseed(4);
var g0 = new MlpGenerator(8, [1, 28, 28], [32]);
var d0 = new MlpDiscriminator(784, [32]);
var z0 = randn(16, 8);
var realBatch = rand(16, 1, 28, 28) * 2 - 1;
var gParams = g0.parameters().ToArray();
var fake0 = g0.forward(z0);
var lossD = GanLosses.Discriminator(d0.forward(realBatch), d0.forward(fake0));
var fromD = torch.autograd.grad([lossD], gParams, retain_graph: true);
var fromG = torch.autograd.grad([GanLosses.GeneratorMinimax(d0.forward(fake0))], gParams);
double dot = fromD.Zip(fromG).Sum(p => (p.First * p.Second).sum().item<float>());
double cosine = dot / Math.Sqrt(fromD.Sum(t => t.pow(2).sum().item<float>()) * fromG.Sum(t => t.pow(2).sum().item<float>()));
var detachedLoss = GanLosses.Discriminator(d0.forward(realBatch), d0.forward(fake0.detach()));
detachedLoss.backward();
display($"without detach: cosine between ∇_G L_D and ∇_G L_G(minimax) = {cosine:F6}; with detach, G's parameters get {(gParams.All(p => p.grad is null) ? "no gradient" : "a gradient")} from L_D");
Claim.Close("without detach, D's loss sends G exactly the opposite of G's own gradient", cosine, -1, 1e-4)

// %% [markdown]
// `GanTrainer.Step` does one round: a D step on the detached fakes, then a G step with the non-saturating loss through the updated D.
//
// ## 3 · A GAN on Fashion-MNIST
//
// Both networks are small MLPs. G maps z (64 numbers) through 256 and 512 units (LeakyReLU) to 784 pixels, squashed by tanh into [−1, 1]. D maps 784 pixels through 512 and 256 units to one logit. The images are scaled to [−1, 1] to match. Adam at 2e-4 with β₁ = 0.5 for both players (DCGAN's settings; a β₁ of 0.9 makes the game oscillate more). Batches of 64. We keep 64 latent vectors fixed and look at what G makes of them as training goes on.

// %%
var fashion = Datasets.FashionMnist(train: true, limit: Notebook.Pick<int?>(quick: 5000, full: null));
var realImages = fashion.Inputs * 2 - 1;
int latent = 64, ganBatch = 64;
int ganSteps = Notebook.Pick(quick: 100, full: 2500);
var fixedZ = randn(64, latent, generator: new Generator(99));
(GanTrainer Trainer, List<(int Step, Tensor Samples)> Snapshots, double Seconds) TrainGan(int steps, double lrG, int generatorSteps, int seed, int snapshots = 4)
{
    Notebook.Reseed(seed);
    var g = new MlpGenerator(latent, [1, 28, 28], [256, 512]);
    var d = new MlpDiscriminator(784, [512, 256]);
    var trainer = new GanTrainer(g, d, Optimizers.Adam(g.parameters(), lrG, beta1: 0.5), Optimizers.Adam(d.parameters(), 2e-4, beta1: 0.5), latent)
        { GeneratorSteps = generatorSteps };
    var noise = new Generator((ulong)seed + 1);
    var pick = new Random(seed);
    var shots = new List<(int, Tensor)>();
    var clock = System.Diagnostics.Stopwatch.StartNew();
    for (int step = 1; step <= steps; step++)
    {
        using var scope = NewDisposeScope();
        var idx = tensor(Enumerable.Range(0, ganBatch).Select(_ => (long)pick.Next((int)realImages.shape[0])).ToArray());
        trainer.Step(realImages.index_select(0, idx), noise);
        if (step % (steps / snapshots) == 0 || step == 1) shots.Add((step, trainer.Sample(fixedZ).MoveToOuterDisposeScope()));
    }
    return (trainer, shots, clock.Elapsed.TotalSeconds);
}
var (gan, snapshots, ganSeconds) = TrainGan(ganSteps, lrG: 2e-4, generatorSteps: 1, seed: 1);
$"{ganSteps} steps in {ganSeconds:F0} s ({1000 * ganSeconds / ganSteps:F0} ms per step of both players)"

// %%
Tensor ToUnit(Tensor x) => ((x + 1) / 2).clamp(0, 1);
Plot.Grid(snapshots.Select(s => VisionPlot.ImageGrid(ToUnit(s.Samples.narrow(0, 0, 16)), columns: 4, title: $"step {s.Step}")).ToList(), rows: 1, columns: snapshots.Count,
    title: "G(z) for the same 16 latent vectors during training")

// %% [markdown]
// Noise first, then blurry silhouettes of shirts, trousers and shoes, then sharper items. The same z keeps roughly the same item: G learns a *smooth* map from noise to images.
//
// **The loss curves** (means over 50 steps):

// %%
var hist = gan.History;
List<double> Smooth(Func<GanStep, double> f) => TrainingHistory.MovingAverage(hist.Select(f).ToList(), 50).ToList();
var stepsAxis = hist.Select(h => (double)h.Step).ToList();
display(Plot.WithLayout(Plotly.NET.GenericChart.combine(new[] { Plot.Line(stepsAxis, Smooth(h => h.DiscriminatorLoss), "L_D"), Plot.Line(stepsAxis, Smooth(h => h.GeneratorLoss), "L_G (non-saturating)"),
    Plot.Line(stepsAxis, stepsAxis.Select(_ => 2 * Math.Log(2)).ToList(), "2 ln 2 (equilibrium L_D)") }),
    ("title", new { text = "GAN losses" }), ("xaxis", new { title = new { text = "step" } })));
Plot.WithLayout(Plotly.NET.GenericChart.combine(new[] { Plot.Line(stepsAxis, Smooth(h => h.DReal), "D(x), real"), Plot.Line(stepsAxis, Smooth(h => h.DFake), "D(G(z)), fake") }),
    ("title", new { text = "What D says" }), ("xaxis", new { title = new { text = "step" } }), ("yaxis", new { title = new { text = "probability 'real'" } }))

// %% [markdown]
// What they tell you: the game is *balanced*. Neither loss runs away, D(x) stays above D(G(z)) without either reaching 0 or 1, and L_D hovers near (usually somewhat below) the equilibrium value 2 ln 2. A D loss falling towards 0 would mean D wins outright and G's gradients vanish. A G loss that explodes, or D(G(z)) stuck at 0, would mean the same.
//
// What they do **not** tell you: whether the samples are good. Each loss is measured against an opponent that keeps changing, so unlike a classifier's loss it does not fall as quality rises. The curves of a run that makes sharp images and of a run that makes the same blob every time can look alike. Section 5 shows exactly that. For quality we need a measurement of the samples themselves.
//
// ## 4 · A check beyond looking
//
// **A classifier as a judge.** We train chapter 06's `SimpleCNN` on the real Fashion-MNIST training images, then let it label 1,000 generated samples. A good generator makes all ten classes, so the label histogram is close to uniform and its entropy close to ln 10 = 2.303. The classifier should also be confident about each sample: its mean top probability. We compute both for the real test images too, for reference.

// %%
Notebook.Reseed(5);
var judge = new SimpleCNN();
new Trainer(judge, Optimizers.Adam(judge.parameters(), 2e-3), Losses.CrossEntropy) { Epochs = 1 }.Fit(new BatchLoader(fashion, 128, shuffle: true, seed: 2));
var fashionTest = Datasets.FashionMnist(train: false, limit: 1000);
double judgeAccuracy = Evaluation.Accuracy(Evaluation.Predict(judge, fashionTest.Inputs).argmax(1), fashionTest.Targets);
(double[] Histogram, double Entropy, double Confidence) Judge(Tensor images01)
{
    var probs = Evaluation.Predict(judge, images01).softmax(1);
    var labels = probs.argmax(1).data<long>().ToArray();
    var hist = Enumerable.Range(0, 10).Select(c => labels.Count(l => l == c) / (double)labels.Length).ToArray();
    return (hist, Math.Max(0, -hist.Where(p => p > 0).Sum(p => p * Math.Log(p))), probs.max(1).values.mean().item<float>());
}
Tensor Generate(GanTrainer t, int n, int seed) => ToUnit(t.Sample(randn(n, latent, generator: new Generator((ulong)seed))));
var realJudged = Judge(fashionTest.Inputs);
var ganJudged = Judge(Generate(gan, 1000, 7));
display($"judge: test accuracy {100 * judgeAccuracy:F1}%; real test images: label entropy {realJudged.Entropy:F3}, mean confidence {realJudged.Confidence:F3}; generated: entropy {ganJudged.Entropy:F3}, confidence {ganJudged.Confidence:F3} (uniform: ln 10 = {Math.Log(10):F3})");
Plot.GroupedBars(Datasets.FashionMnistClasses.ToList(), new[] { ("real test images", (IReadOnlyList<double>)realJudged.Histogram), ("generated", ganJudged.Histogram) },
    title: "Which class the judge sees")

// %% [markdown]
// **Nearest neighbours.** A generator could also "win" by copying training images. For 300 generated samples we find the nearest training image (Euclidean distance over the 784 pixels, in [0, 1]), and we do the same for 300 real *test* images, which G has never seen. Memorised samples would sit much closer to the training set than new real images do.

// %%
var trainPool = fashion.Inputs.narrow(0, 0, Notebook.Pick(quick: 5000, full: 20000)).reshape(-1, 784);
double MeanNearest(Tensor images01)
{
    using var _ = no_grad();
    return cdist(images01.reshape(-1, 784), trainPool).min(1).values.mean().item<float>();
}
double genNearest = MeanNearest(Generate(gan, 300, 8));
double testNearest = MeanNearest(fashionTest.Inputs.narrow(0, 0, 300));
display($"mean distance to the nearest training image: generated {genNearest:F2}, real test images {testNearest:F2}");
display(Claim.AtLeast("generated samples are no closer to the training set than new real images (ratio)", genNearest / testNearest, full: 0.9));
Claim.AtLeast("the judge's label entropy over generated samples is at least 1.9 nats (uniform: 2.30)", ganJudged.Entropy, full: 1.9)

// %% [markdown]
// The generated samples are no closer to their nearest training image than real test images are: G makes new images, blurrier and noisier than real ones, not copies. The entropy says G covers most classes, though the histogram is not uniform: read off it which classes this small MLP generator finds hard.
//
// ## 5 · Mode collapse, on purpose
//
// In **mode collapse**, G produces only a few kinds of sample, whatever z is. The mechanism is in the game itself. Against a *fixed* D, G's best response is to put all its samples on the single point D finds most real. Only D's reaction, rejecting that point, moves G on. So we make G too strong for D: **ten generator updates per discriminator update**, at a 5× higher learning rate (1e-3). G chases D's current favourite before D can respond.

// %% tags=["errata-13-correct"]
int collapseSteps = Notebook.Pick(quick: 20, full: 400);
var (collapsed, collapsedShots, collapseSeconds) = TrainGan(collapseSteps, lrG: 1e-3, generatorSteps: 10, seed: 1, snapshots: 2);
var collapsedJudged = Judge(Generate(collapsed, 1000, 7));
display(Plot.Grid([VisionPlot.ImageGrid(ToUnit(collapsedShots[^1].Samples.narrow(0, 0, 16)), columns: 4, title: "10 G steps per D step"),
                   VisionPlot.ImageGrid(ToUnit(snapshots[^1].Samples.narrow(0, 0, 16)), columns: 4, title: "balanced (section 3)")], rows: 1, columns: 2,
    title: "The same 16 latent vectors"));
Plot.GroupedBars(Datasets.FashionMnistClasses.ToList(), new[] { ("balanced", (IReadOnlyList<double>)ganJudged.Histogram), ("10 G steps per D step", collapsedJudged.Histogram) },
    title: "Judge's labels over 1,000 samples")

// %%
double Diversity(Tensor images01) // mean distance between two different samples
{
    using var _ = no_grad();
    var f = images01.reshape(-1, 784);
    long n = f.shape[0];
    return cdist(f, f).sum().item<float>() / (n * (n - 1));
}
var realDiv = Diversity(fashionTest.Inputs.narrow(0, 0, 300));
var (ganDiv, colDiv) = (Diversity(Generate(gan, 300, 9)), Diversity(Generate(collapsed, 300, 9)));
display(new DataFrame(
    new StringDataFrameColumn("samples", ["real test images", "balanced GAN", "10 G steps per D step"]),
    new DoubleDataFrameColumn("label entropy", new[] { realJudged.Entropy, ganJudged.Entropy, collapsedJudged.Entropy }.Select(v => Math.Round(v, 3))),
    new DoubleDataFrameColumn("largest class %", new[] { realJudged.Histogram.Max(), ganJudged.Histogram.Max(), collapsedJudged.Histogram.Max() }.Select(v => Math.Round(100 * v, 1))),
    new DoubleDataFrameColumn("mean pairwise distance", new[] { realDiv, ganDiv, colDiv }.Select(v => Math.Round(v, 2)))));
display(Claim.AtLeast("the over-strong generator collapses: its label entropy is at least 0.5 nats below the balanced GAN's", ganJudged.Entropy - collapsedJudged.Entropy, full: 0.5));
Claim.AtLeast("…and its samples are less diverse (mean pairwise distance ratio, balanced / collapsed)", ganDiv / colDiv, full: 1.2)

// %% [markdown]
// The collapsed generator maps most latent vectors to nearly the same few items. The judge's histogram piles up on a few classes, and the samples sit close to each other. Its losses do not warn you: D keeps rejecting the current favourite, and G keeps moving on to the next one.
//
// **The fix** is the balanced game of section 3: one G update per D update, at the same rate. D then reacts to every move G makes, and it punishes a generator that puts too many samples in one place. Other fixes change the rules: **PacGAN** lets D judge several samples at once (`MlpDiscriminator(…, pack: 2)`), so a batch of near-copies is easy to reject (exercise 2). **Minibatch discrimination** gives D features of the whole batch. **Unrolled GANs** let G look ahead at D's response. The measurement stays the same: labels, entropy and diversity of the samples, not the loss curves.
//
// ## Exercises
//
// 1. **The minimax loss.** Train the balanced GAN with `MinimaxGenerator = true` for the same steps. Plot D(G(z)) over the first steps of both runs and compare the label entropies at the end.
// 2. **PacGAN against collapse.** Repeat the over-strong-generator run with a packed discriminator (`pack: 2`). Does the label entropy recover?
// 3. **Walking in latent space.** Take two latent vectors z₁ and z₂ and show G((1 − t)·z₁ + t·z₂) for t = 0, 0.1, …, 1. What does a smooth path tell you about what G learned?
//
// Solutions: `solutions/10-gans-solutions.ipynb`.
