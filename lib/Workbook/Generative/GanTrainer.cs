using static TorchSharp.torch;

namespace Workbook.Generative;

/// <summary>One alternating GAN update, measured.</summary>
/// <param name="Step">Updates done (1-based).</param>
/// <param name="DiscriminatorLoss"><c>L_D</c> of this step's D update.</param>
/// <param name="GeneratorLoss">The generator's loss of this step (the one it was trained with).</param>
/// <param name="DReal">Mean D(x) on the real batch (before D's update).</param>
/// <param name="DFake">Mean D(G(z)) on the fake batch (before D's update).</param>
public sealed record GanStep(int Step, double DiscriminatorLoss, double GeneratorLoss, double DReal, double DFake);

/// <summary>
/// The GAN training loop, one update of each player per call of <see cref="Step"/>:
/// <list type="number">
/// <item>D step: draw z, make <c>fake = G(z)</c>; <c>L_D</c> on D(real) and D(<b>fake.detach()</b>); update D only. The
/// detach cuts the graph at the fake images: D's loss must not send gradients into G (they would train G to help D,
/// the opposite of its goal), and the backward pass stops there instead of running through G for nothing.</item>
/// <item>G step: <c>L_G</c> on D(fake) with the graph through G kept; update G only (the gradients this leaves in D
/// are cleared before D's next update).</item>
/// </list>
/// </summary>
public sealed class GanTrainer
{
    readonly nn.Module<Tensor, Tensor> _g, _d;
    readonly optim.Optimizer _optG, _optD;
    int _step;

    /// <summary>Creates the loop.</summary>
    /// <param name="generator">G: latents <c>[B, latentDim]</c> → samples.</param>
    /// <param name="discriminator">D: samples → logits <c>[B]</c> (or <c>[B / pack]</c>).</param>
    /// <param name="generatorOptimizer">Optimizer over G's parameters only.</param>
    /// <param name="discriminatorOptimizer">Optimizer over D's parameters only.</param>
    /// <param name="latentDim">Size of z.</param>
    public GanTrainer(nn.Module<Tensor, Tensor> generator, nn.Module<Tensor, Tensor> discriminator,
        optim.Optimizer generatorOptimizer, optim.Optimizer discriminatorOptimizer, int latentDim)
    {
        _g = generator ?? throw new ArgumentNullException(nameof(generator));
        _d = discriminator ?? throw new ArgumentNullException(nameof(discriminator));
        _optG = generatorOptimizer ?? throw new ArgumentNullException(nameof(generatorOptimizer));
        _optD = discriminatorOptimizer ?? throw new ArgumentNullException(nameof(discriminatorOptimizer));
        if (latentDim < 1) throw new ArgumentException($"latentDim must be positive, got {latentDim}.", nameof(latentDim));
        LatentDim = latentDim;
    }

    /// <summary>Size of z.</summary>
    public int LatentDim { get; }

    /// <summary>Train G with the minimax loss instead of the non-saturating one (to see it saturate).</summary>
    public bool MinimaxGenerator { get; init; }

    /// <summary>Target of the real samples in D's loss (below 1: one-sided label smoothing).</summary>
    public double RealTarget { get; init; } = 1.0;

    /// <summary>Discriminator updates per generator update.</summary>
    public int DiscriminatorSteps { get; init; } = 1;

    /// <summary>Generator updates per step, each on fresh latents against the same D. More than one lets G chase the
    /// current D's favourite outputs before D can react: a way to make mode collapse happen.</summary>
    public int GeneratorSteps { get; init; } = 1;

    /// <summary>Every step so far.</summary>
    public List<GanStep> History { get; } = new();

    /// <summary>
    /// One update of D (<see cref="DiscriminatorSteps"/> times, each on a fresh fake batch and the same real batch), then
    /// of G (<see cref="GeneratorSteps"/> times; the first on the last fake batch D saw). Latents come from <paramref name="generator"/>, so a seeded generator makes the run reproducible.
    /// </summary>
    public GanStep Step(Tensor real, Generator? generator = null)
    {
        ArgumentNullException.ThrowIfNull(real);
        using var scope = NewDisposeScope();
        long B = real.shape[0];
        _g.train(); _d.train();
        double dLoss = 0, dReal = 0, dFake = 0;
        Tensor fake = null!;
        for (int k = 0; k < DiscriminatorSteps; k++)
        {
            var z = randn(B, LatentDim, generator: generator, device: real.device);
            fake = _g.call(z);
            _optD.zero_grad();
            var realLogits = _d.call(real);
            var fakeLogits = _d.call(fake.detach());   // no path back into G
            var lossD = GanLosses.Discriminator(realLogits, fakeLogits, RealTarget);
            lossD.backward();
            _optD.step();
            dLoss = lossD.item<float>();
            dReal = realLogits.sigmoid().mean().item<float>();
            dFake = fakeLogits.sigmoid().mean().item<float>();
        }
        double gLoss = 0;
        for (int k = 0; k < GeneratorSteps; k++)
        {
            if (k > 0) fake = _g.call(randn(B, LatentDim, generator: generator, device: real.device));
            _optG.zero_grad();
            var logits = _d.call(fake);                // the updated D judges the fakes, graph through G kept
            var lossG = MinimaxGenerator ? GanLosses.GeneratorMinimax(logits) : GanLosses.GeneratorNonSaturating(logits);
            lossG.backward();
            _optG.step();
            gLoss = lossG.item<float>();
        }
        var record = new GanStep(++_step, dLoss, gLoss, dReal, dFake);
        History.Add(record);
        return record;
    }

    /// <summary>G's samples for fixed latents <paramref name="z"/>, in eval mode without gradients.</summary>
    public Tensor Sample(Tensor z)
    {
        using var _ = no_grad();
        bool was = _g.training;
        _g.eval();
        var x = _g.call(z);
        _g.train(was);
        return x;
    }
}
