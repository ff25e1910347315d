using TorchSharp;
using static TorchSharp.torch;

namespace Workbook.Training;

/// <summary>
/// A quantity tracked per epoch besides the loss, such as accuracy. A metric is stateless: for each batch it
/// returns a sum and a count, and the epoch's value is <c>Σ sum / Σ count</c> over the batches (so batches of
/// different sizes are weighted correctly). The trainer calls it under no-grad with the detached output.
/// </summary>
public abstract class Metric
{
    /// <summary>The column name in the history, e.g. "accuracy" (shown as "train_accuracy" and "val_accuracy").</summary>
    public abstract string Name { get; }

    /// <summary>Whether larger is better (early stopping and "best" use it).</summary>
    public virtual bool HigherIsBetter => true;

    /// <summary>The batch's contribution: a sum and a count.</summary>
    /// <param name="output">The model's output for the batch.</param>
    /// <param name="target">The batch's targets.</param>
    public abstract (double Sum, double Count) Evaluate(Tensor output, Tensor target);

    /// <summary>
    /// Classification accuracy: the fraction of samples whose arg-max class (last dimension of the output) equals
    /// the target id. Sequence outputs <c>[B, T, C]</c> with targets <c>[B, T]</c> count every position.
    /// </summary>
    public static Metric Accuracy { get; } = new AccuracyMetric();

    /// <summary>
    /// A metric from a function that returns the batch mean; batches are weighted by their sample count
    /// (<c>target.shape[0]</c>).
    /// </summary>
    /// <param name="name">Column name.</param>
    /// <param name="batchMean">The metric's mean over one batch.</param>
    /// <param name="higherIsBetter">Direction for early stopping.</param>
    public static Metric Create(string name, Func<Tensor, Tensor, double> batchMean, bool higherIsBetter = true) =>
        new FuncMetric(name, batchMean, higherIsBetter);

    /// <inheritdoc/>
    public override string ToString() => Name;

    sealed class AccuracyMetric : Metric
    {
        public override string Name => "accuracy";

        public override (double, double) Evaluate(Tensor output, Tensor target)
        {
            if (output.dim() != target.dim() + 1)
                throw new ArgumentException($"Accuracy needs output [..., C] with one more dimension than target [...]; got output " +
                    $"[{string.Join(", ", output.shape)}] and target [{string.Join(", ", target.shape)}].", nameof(output));
            using var scope = torch.NewDisposeScope();
            long correct = output.argmax(-1).eq(target).sum().item<long>();
            return (correct, target.numel());
        }
    }

    sealed class FuncMetric(string name, Func<Tensor, Tensor, double> batchMean, bool higherIsBetter) : Metric
    {
        public override string Name => name;
        public override bool HigherIsBetter => higherIsBetter;

        public override (double, double) Evaluate(Tensor output, Tensor target)
        {
            double n = target.dim() == 0 ? 1 : target.shape[0];
            return (batchMean(output, target) * n, n);
        }
    }
}
