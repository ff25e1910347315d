using TorchSharp;
using Workbook.Generative;
using Workbook.Training;
using static TorchSharp.torch;

namespace Workbook.Tests.Generative;

public class GanLossesTests
{
    static readonly double[] RealLogits = [2.0, -1.0, 0.5];
    static readonly double[] FakeLogits = [-0.3, 1.2, -4.0, 0.0];

    static double Sigmoid(double x) => 1 / (1 + Math.Exp(-x));

    [Fact]
    public void LossesEqualTheirHandComputation()
    {
        // By hand, in double: D(x) = σ(l).
        double dReal = RealLogits.Average(l => -Math.Log(Sigmoid(l)));         // −E log D(x)
        double dFake = FakeLogits.Average(l => -Math.Log(1 - Sigmoid(l)));     // −E log(1 − D(G(z)))
        double minimax = FakeLogits.Average(l => Math.Log(1 - Sigmoid(l)));    // E log(1 − D(G(z)))
        double nonSaturating = FakeLogits.Average(l => -Math.Log(Sigmoid(l))); // −E log D(G(z))
        // The values themselves, worked out once: −log σ(2) = 0.126928, −log σ(−1) = 1.313262, −log σ(0.5) = 0.474077.
        Assert.Equal(0.638089, dReal, 6);

        var real = tensor(RealLogits.Select(v => (float)v).ToArray());
        var fake = tensor(FakeLogits.Select(v => (float)v).ToArray());
        Assert.Equal(dReal + dFake, GanLosses.Discriminator(real, fake).item<float>(), 5);
        Assert.Equal(minimax, GanLosses.GeneratorMinimax(fake).item<float>(), 5);
        Assert.Equal(nonSaturating, GanLosses.GeneratorNonSaturating(fake).item<float>(), 5);
        // The minimax G loss is exactly minus D's fake term: what D gains, G loses.
        Assert.Equal(-dFake, GanLosses.GeneratorMinimax(fake).item<float>(), 5);
        // One-sided label smoothing: the real term is the cross-entropy against 0.9.
        double smoothed = RealLogits.Average(l => -(0.9 * Math.Log(Sigmoid(l)) + 0.1 * Math.Log(1 - Sigmoid(l))));
        Assert.Equal(smoothed + dFake, GanLosses.Discriminator(real, fake, realTarget: 0.9).item<float>(), 5);
    }

    [Fact]
    public void TheArticlesAdversarialLossIsTheGeneratorsNonSaturatingTermSummed()
    {
        // "AL = −Σ log ŷᵢ" with ŷ = D(G(z)): the batch sum of −log D(G(z)), i.e. N × the non-saturating G loss.
        double article = -FakeLogits.Sum(l => Math.Log(Sigmoid(l)));
        var fake = tensor(FakeLogits.Select(v => (float)v).ToArray());
        Assert.Equal(article, FakeLogits.Length * GanLosses.GeneratorNonSaturating(fake).item<float>(), 4);
        // It has no term for real samples: D's loss does.
        var real = tensor(RealLogits.Select(v => (float)v).ToArray());
        Assert.NotEqual(article / FakeLogits.Length, GanLosses.Discriminator(real, fake).item<float>(), 2);
    }

    [Fact]
    public void TheMinimaxLossSaturatesWhereTheDiscriminatorWinsAndTheNonSaturatingOneDoesNot()
    {
        // ∂/∂l of log(1 − σ(l)) is −σ(l); of −log σ(l) it is −(1 − σ(l)). At l = −5 (D sure it is fake): 0.0067 vs 0.9933.
        var l = tensor(new float[] { -5f }, requires_grad: true);
        var gMinimax = torch.autograd.grad([GanLosses.GeneratorMinimax(l)], [l])[0].item<float>();
        var gNonSat = torch.autograd.grad([GanLosses.GeneratorNonSaturating(l)], [l])[0].item<float>();
        Assert.Equal(-Sigmoid(-5), gMinimax, 6);
        Assert.Equal(-(1 - Sigmoid(-5)), gNonSat, 6);
        Assert.True(Math.Abs(gNonSat) > 100 * Math.Abs(gMinimax));
    }

    [Fact]
    public void LogitsFarOutDoNotOverflow()
    {
        var fake = tensor(new float[] { -200f, 200f });
        Assert.Equal(100.0, GanLosses.GeneratorNonSaturating(fake).item<float>(), 3); // (200 + 0) / 2
        Assert.True(float.IsFinite(GanLosses.Discriminator(fake, fake).item<float>()));
        Assert.Throws<ArgumentException>(() => GanLosses.Discriminator(fake, fake, realTarget: 0));
    }
}

[Collection(Workbook.Tests.Training.TorchGlobalStateCollection.Name)]
public class GanTrainerTests
{
    [Fact]
    public void AStepRecordsTheLossesOfItsBatchesAndTrainsEachPlayerOnItsOwnLoss()
    {
        manual_seed(3);
        var g = new MlpGenerator(4, [2], [16], tanhOutput: false);
        var d = new MlpDiscriminator(2, [16]);
        // Learning rate 0: nothing moves, so the recorded values can be recomputed from the same latents.
        var trainer = new GanTrainer(g, d, Optimizers.Sgd(g.parameters(), 0), Optimizers.Sgd(d.parameters(), 0), latentDim: 4);
        var real = randn(8, 2) + 3;
        var step = trainer.Step(real, new Generator(11));

        var z = randn(8, 4, generator: new Generator(11));
        var fake = g.forward(z);
        var realLogits = d.forward(real);
        var fakeLogits = d.forward(fake);
        Assert.Equal(GanLosses.Discriminator(realLogits, fakeLogits).item<float>(), step.DiscriminatorLoss, 5);
        Assert.Equal(GanLosses.GeneratorNonSaturating(fakeLogits).item<float>(), step.GeneratorLoss, 5);
        Assert.Equal(realLogits.sigmoid().mean().item<float>(), step.DReal, 5);
        Assert.Equal(fakeLogits.sigmoid().mean().item<float>(), step.DFake, 5);

        // G's gradient is the gradient of its own loss only: D's loss saw a detached batch.
        var gParams = g.parameters().ToArray();
        var expected = torch.autograd.grad([GanLosses.GeneratorNonSaturating(fakeLogits)], gParams);
        for (int i = 0; i < gParams.Length; i++)
            Assert.True((gParams[i].grad! - expected[i]).abs().max().item<float>() < 1e-6);
        Assert.Single(trainer.History);
    }

    [Fact]
    public void WithoutDetachDsLossWouldPushGTheWrongWay()
    {
        // What detach prevents: ∂L_D/∂θ_G is exactly −∂L_G^minimax/∂θ_G, a step that helps D, not G.
        manual_seed(4);
        var g = new MlpGenerator(3, [2], [8], tanhOutput: false);
        var d = new MlpDiscriminator(2, [8]);
        var z = randn(16, 3);
        var gParams = g.parameters().ToArray();
        var fakeLogits = d.forward(g.forward(z));
        var fromD = torch.autograd.grad([GanLosses.Discriminator(d.forward(randn(16, 2)), fakeLogits)], gParams, retain_graph: true);
        var fromG = torch.autograd.grad([GanLosses.GeneratorMinimax(fakeLogits)], gParams);
        for (int i = 0; i < gParams.Length; i++)
            Assert.True((fromD[i] + fromG[i]).abs().max().item<float>() < 1e-6);
        Assert.True(fromD[0].norm().item<float>() > 0);
    }

    [Fact]
    public void PackingJudgesGroupsOfSamples()
    {
        var d = new MlpDiscriminator(784, [32], pack: 2);
        Assert.Equal(new long[] { 4 }, d.forward(randn(8, 1, 28, 28)).shape);
        Assert.Contains("not a multiple of pack 2", Assert.Throws<ArgumentException>(() => d.forward(randn(7, 784))).Message);
        var g = new MlpGenerator(16, [1, 28, 28], [32]);
        var x = g.forward(randn(5, 16));
        Assert.Equal(new long[] { 5, 1, 28, 28 }, x.shape);
        Assert.True(x.abs().max().item<float>() <= 1);
    }
}
