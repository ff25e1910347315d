using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;
using Reduction = TorchSharp.torch.nn.Reduction;

namespace Workbook.Training;

/// <summary>
/// Loss functions with the signature the <see cref="Trainer"/> takes, <c>(output, target) → scalar</c> (mean
/// reduction), each with an overload that takes PyTorch's <c>reduction</c>: <see cref="Reduction.Mean"/>,
/// <see cref="Reduction.Sum"/>, or <see cref="Reduction.None"/> for the per-element (per-sample) losses. As in PyTorch,
/// the mean of a cross-entropy with ignored targets divides by the targets that count, not by N. They call
/// TorchSharp's numerically stable kernels (log-softmax inside cross-entropy, the log-sum-exp form of BCE with logits)
/// except the binary hinge loss, which PyTorch does not have as such. Values match PyTorch (tested against
/// <c>losses.safetensors</c>).
/// </summary>
public static class Losses
{
    /// <summary>
    /// Cross-entropy of class logits <c>[N, C]</c> (or <c>[N, C, ...]</c>) against class ids <c>[N]</c> (int64):
    /// <c>mean_i −log softmax(x_i)[t_i]</c>. Targets equal to −100 are left out of the mean (PyTorch's default ignore index).
    /// </summary>
    public static Tensor CrossEntropy(Tensor logits, Tensor target) => F.cross_entropy(logits, target);

    /// <summary>Cross-entropy with PyTorch's <paramref name="reduction"/>: per sample <c>[N]</c> (0 at ignored targets), summed, or mean.</summary>
    public static Tensor CrossEntropy(Tensor logits, Tensor target, Reduction reduction) => F.cross_entropy(logits, target, reduction: Check(reduction));

    /// <summary>Cross-entropy with label smoothing ε and an ignore index (PyTorch semantics: the target distribution is <c>(1−ε)·onehot + ε/C</c>).</summary>
    public static Func<Tensor, Tensor, Tensor> CrossEntropyWith(double labelSmoothing = 0, long ignoreIndex = -100, Reduction reduction = Reduction.Mean)
    {
        Check(reduction);
        return (logits, target) => F.cross_entropy(logits, target, ignore_index: ignoreIndex, reduction: reduction, label_smoothing: labelSmoothing);
    }

    /// <summary>
    /// Cross-entropy for sequences: logits <c>[B, T, V]</c> and targets <c>[B, T]</c> are flattened to
    /// <c>[B·T, V]</c> and <c>[B·T]</c> first (language models).
    /// </summary>
    public static Tensor SequenceCrossEntropy(Tensor logits, Tensor target) =>
        F.cross_entropy(logits.reshape(-1, logits.shape[^1]), target.reshape(-1));

    /// <summary>Sequence cross-entropy with PyTorch's <paramref name="reduction"/>; <see cref="Reduction.None"/> gives one loss per token, shaped like <paramref name="target"/>.</summary>
    public static Tensor SequenceCrossEntropy(Tensor logits, Tensor target, Reduction reduction)
    {
        var flat = F.cross_entropy(logits.reshape(-1, logits.shape[^1]), target.reshape(-1), reduction: Check(reduction));
        return reduction == Reduction.None ? flat.reshape(target.shape) : flat;
    }

    /// <summary>Mean squared error <c>mean((output − target)²)</c>.</summary>
    public static Tensor Mse(Tensor output, Tensor target) => F.mse_loss(output, target);

    /// <summary>Squared error with PyTorch's <paramref name="reduction"/>: <c>(output − target)²</c> element by element, summed, or mean.</summary>
    public static Tensor Mse(Tensor output, Tensor target, Reduction reduction) => F.mse_loss(output, target, Check(reduction));

    /// <summary>
    /// Binary cross-entropy on logits x with 0/1 targets y, computed stably as
    /// <c>max(x, 0) − x·y + log(1 + e^(−|x|))</c> (the naive <c>−y log σ(x) − (1−y) log(1−σ(x))</c> overflows to ∞ for large |x| in float32).
    /// </summary>
    public static Tensor BinaryCrossEntropyWithLogits(Tensor logits, Tensor target) => F.binary_cross_entropy_with_logits(logits, target);

    /// <summary>Binary cross-entropy on logits with PyTorch's <paramref name="reduction"/> (per element, summed, or mean).</summary>
    public static Tensor BinaryCrossEntropyWithLogits(Tensor logits, Tensor target, Reduction reduction) =>
        F.binary_cross_entropy_with_logits(logits, target, reduction: Check(reduction));

    /// <summary>The binary (SVM) hinge loss on scores s with labels y ∈ {−1, +1}: <c>mean(max(0, 1 − y·s))</c>.</summary>
    public static Tensor Hinge(Tensor scores, Tensor target) => Hinge(scores, target, Reduction.Mean);

    /// <summary>The binary hinge loss with PyTorch's <paramref name="reduction"/>: <c>max(0, 1 − y·s)</c> per element, summed, or mean.</summary>
    public static Tensor Hinge(Tensor scores, Tensor target, Reduction reduction)
    {
        Check(reduction);
        using var scope = NewDisposeScope();
        var none = (1 - target * scores).clamp_min(0);
        var result = reduction switch { Reduction.None => none, Reduction.Sum => none.sum(), _ => none.mean() };
        return result.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The multi-class hinge loss (PyTorch's <c>MultiMarginLoss</c>, p = 1, margin 1): for logits <c>[N, C]</c> and class ids,
    /// <c>mean_i Σ_{j≠t_i} max(0, 1 − x[i,t_i] + x[i,j]) / C</c>.
    /// </summary>
    public static Tensor MultiMargin(Tensor logits, Tensor target) => F.multi_margin_loss(logits, target);

    /// <summary>The multi-class hinge loss with PyTorch's <paramref name="reduction"/> (per sample <c>[N]</c>, summed, or mean).</summary>
    public static Tensor MultiMargin(Tensor logits, Tensor target, Reduction reduction) => F.multi_margin_loss(logits, target, reduction: Check(reduction));

    static Reduction Check(Reduction reduction) => reduction is Reduction.None or Reduction.Mean or Reduction.Sum ? reduction
        : throw new ArgumentOutOfRangeException(nameof(reduction), reduction, "reduction must be Reduction.None, Reduction.Mean or Reduction.Sum.");
}
