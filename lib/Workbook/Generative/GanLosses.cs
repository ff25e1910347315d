using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Workbook.Generative;

/// <summary>
/// The losses of a GAN (Goodfellow et al. 2014), from the discriminator's <b>logits</b> l (D = σ(l), computed with
/// log-sigmoids so that no probability ever rounds to 0 or 1). The game is
/// <c>min_G max_D  E_x[log D(x)] + E_z[log(1 − D(G(z)))]</c>; each player minimises its own loss:
/// <list type="bullet">
/// <item>discriminator: <c>L_D = −E_x[log D(x)] − E_z[log(1 − D(G(z)))]</c>, binary cross-entropy with real = 1, fake = 0;</item>
/// <item>generator, minimax: <c>L_G = E_z[log(1 − D(G(z)))]</c>; its gradient vanishes where D confidently rejects
/// the fakes, which is early in training (the loss "saturates");</item>
/// <item>generator, non-saturating: <c>L_G = −E_z[log D(G(z))]</c>, the same fixed point with strong gradients when D
/// wins. This is what GANs are trained with in practice.</item>
/// </list>
/// Each expectation is a mean over its batch.
/// </summary>
public static class GanLosses
{
    /// <summary>
    /// <c>L_D = −mean log σ(l_real) − mean log(1 − σ(l_fake))</c>. Pass the logits of a <b>detached</b> fake batch, so that
    /// D's update does not push gradients into G. <paramref name="realTarget"/> below 1 is one-sided label smoothing
    /// (e.g. 0.9): the real term becomes the cross-entropy against that target.
    /// </summary>
    /// <exception cref="ArgumentException">A target outside (0, 1].</exception>
    public static Tensor Discriminator(Tensor realLogits, Tensor fakeLogits, double realTarget = 1.0)
    {
        if (realTarget is <= 0 or > 1) throw new ArgumentException($"realTarget must be in (0, 1], got {realTarget}.", nameof(realTarget));
        using var scope = NewDisposeScope();
        var real = F.binary_cross_entropy_with_logits(realLogits, full_like(realLogits, realTarget));
        var fake = F.binary_cross_entropy_with_logits(fakeLogits, zeros_like(fakeLogits));
        return (real + fake).MoveToOuterDisposeScope();
    }

    /// <summary>The minimax generator loss <c>mean log(1 − σ(l_fake)) = −mean softplus(l_fake)</c> (to be minimised; it is ≤ 0).</summary>
    public static Tensor GeneratorMinimax(Tensor fakeLogits)
    {
        using var scope = NewDisposeScope();
        return F.softplus(fakeLogits).mean().neg().MoveToOuterDisposeScope();
    }

    /// <summary>The non-saturating generator loss <c>−mean log σ(l_fake) = mean softplus(−l_fake)</c>.</summary>
    public static Tensor GeneratorNonSaturating(Tensor fakeLogits) =>
        F.binary_cross_entropy_with_logits(fakeLogits, ones_like(fakeLogits));
}
