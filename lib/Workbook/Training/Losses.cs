using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Workbook.Training;

/// <summary>
/// Loss functions with the signature the <see cref="Trainer"/> takes, <c>(output, target) → scalar</c>, all with
/// mean reduction. They call TorchSharp's numerically stable kernels (log-softmax inside cross-entropy, the
/// log-sum-exp form of BCE with logits) except the binary hinge loss, which PyTorch does not have as such.
/// Values match PyTorch (tested against <c>losses.safetensors</c>).
/// </summary>
public static class Losses
{
    /// <summary>
    /// Cross-entropy of class logits <c>[N, C]</c> (or <c>[N, C, ...]</c>) against class ids <c>[N]</c> (int64):
    /// <c>mean_i −log softmax(x_i)[t_i]</c>. Targets equal to −100 are left out of the mean (PyTorch's default ignore index).
    /// </summary>
    public static Tensor CrossEntropy(Tensor logits, Tensor target) => F.cross_entropy(logits, target);

    /// <summary>Cross-entropy with label smoothing ε and an ignore index (PyTorch semantics: the target distribution is <c>(1−ε)·onehot + ε/C</c>).</summary>
    public static Func<Tensor, Tensor, Tensor> CrossEntropyWith(double labelSmoothing = 0, long ignoreIndex = -100) =>
        (logits, target) => F.cross_entropy(logits, target, ignore_index: ignoreIndex, label_smoothing: labelSmoothing);

    /// <summary>
    /// Cross-entropy for sequences: logits <c>[B, T, V]</c> and targets <c>[B, T]</c> are flattened to
    /// <c>[B·T, V]</c> and <c>[B·T]</c> first (language models).
    /// </summary>
    public static Tensor SequenceCrossEntropy(Tensor logits, Tensor target) =>
        F.cross_entropy(logits.reshape(-1, logits.shape[^1]), target.reshape(-1));

    /// <summary>Mean squared error <c>mean((output − target)²)</c>.</summary>
    public static Tensor Mse(Tensor output, Tensor target) => F.mse_loss(output, target);

    /// <summary>
    /// Binary cross-entropy on logits x with 0/1 targets y, computed stably as
    /// <c>max(x, 0) − x·y + log(1 + e^(−|x|))</c> (the naive <c>−y log σ(x) − (1−y) log(1−σ(x))</c> overflows to ∞ for large |x| in float32).
    /// </summary>
    public static Tensor BinaryCrossEntropyWithLogits(Tensor logits, Tensor target) => F.binary_cross_entropy_with_logits(logits, target);

    /// <summary>The binary (SVM) hinge loss on scores s with labels y ∈ {−1, +1}: <c>mean(max(0, 1 − y·s))</c>.</summary>
    public static Tensor Hinge(Tensor scores, Tensor target) => (1 - target * scores).clamp_min(0).mean();

    /// <summary>
    /// The multi-class hinge loss (PyTorch's <c>MultiMarginLoss</c>, p = 1, margin 1): for logits <c>[N, C]</c> and class ids,
    /// <c>mean_i Σ_{j≠t_i} max(0, 1 − x[i,t_i] + x[i,j]) / C</c>.
    /// </summary>
    public static Tensor MultiMargin(Tensor logits, Tensor target) => F.multi_margin_loss(logits, target);
}
