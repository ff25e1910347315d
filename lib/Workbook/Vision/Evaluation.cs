using Microsoft.Data.Analysis;
using TorchSharp;
using static TorchSharp.torch;

namespace Workbook.Vision;

/// <summary>A misclassified example: its index in the evaluated set, true and predicted class, and the model's confidence.</summary>
/// <param name="Index">Position in the evaluated inputs.</param>
/// <param name="Label">True class.</param>
/// <param name="Predicted">Predicted (arg-max) class.</param>
/// <param name="Confidence">Softmax probability of the predicted class.</param>
/// <param name="LabelProbability">Softmax probability the model gave the true class.</param>
public sealed record Misclassified(int Index, int Label, int Predicted, double Confidence, double LabelProbability);

/// <summary>Classification metrics: predictions, accuracy, confusion matrix, per-class precision/recall, mistakes.</summary>
public static class Evaluation
{
    /// <summary>
    /// Logits of <paramref name="model"/> for all <paramref name="inputs"/> in eval mode, without gradients, in batches
    /// (batch norm uses its running statistics, dropout is off); the model's training flag is restored afterwards.
    /// </summary>
    /// <param name="model">Any classifier <c>[N, ...] → [N, K]</c>.</param>
    /// <param name="inputs">All inputs, first axis = samples.</param>
    /// <param name="batchSize">Samples per forward pass.</param>
    /// <param name="device">Device to run on (default: the inputs' device).</param>
    public static Tensor Predict(nn.Module<Tensor, Tensor> model, Tensor inputs, int batchSize = 1000, Device? device = null)
    {
        if (batchSize <= 0) throw new ArgumentException($"batchSize must be positive, got {batchSize}.", nameof(batchSize));
        bool wasTraining = model.training;
        model.eval();
        try
        {
            using var noGrad = torch.no_grad();
            var parts = new List<Tensor>();
            long n = inputs.shape[0];
            using var scope = torch.NewDisposeScope();
            for (long start = 0; start < n; start += batchSize)
            {
                var batch = inputs.narrow(0, start, Math.Min(batchSize, n - start));
                if (device is not null) batch = batch.to(device);
                parts.Add(model.forward(batch).cpu());
            }
            return torch.cat(parts, 0).MoveToOuterDisposeScope();
        }
        finally { model.train(wasTraining); }
    }

    /// <summary>Fraction of correct predictions. <paramref name="predictions"/> are class ids <c>[N]</c> or logits <c>[N, K]</c>.</summary>
    public static double Accuracy(Tensor predictions, Tensor targets)
    {
        using var scope = torch.NewDisposeScope();
        var pred = ToClassIds(predictions, targets);
        return pred.eq(targets.to(pred.device)).to_type(ScalarType.Float64).mean().item<double>();
    }

    /// <summary>
    /// Confusion matrix <c>[K, K]</c> (int64): entry <c>[i, j]</c> counts samples of true class i predicted as j
    /// (rows = truth, columns = prediction, scikit-learn's convention). The diagonal holds the correct ones.
    /// </summary>
    /// <param name="predictions">Class ids <c>[N]</c> or logits <c>[N, K]</c>.</param>
    /// <param name="targets">True class ids <c>[N]</c>.</param>
    /// <param name="numClasses">K.</param>
    public static Tensor ConfusionMatrix(Tensor predictions, Tensor targets, int numClasses)
    {
        if (numClasses <= 0) throw new ArgumentException($"numClasses must be positive, got {numClasses}.", nameof(numClasses));
        using var scope = torch.NewDisposeScope();
        var pred = ToClassIds(predictions, targets).cpu().to_type(ScalarType.Int64);
        var truth = targets.cpu().to_type(ScalarType.Int64);
        foreach (var (t, name) in new[] { (pred, nameof(predictions)), (truth, nameof(targets)) })
        {
            if (t.numel() == 0) continue;
            long lo = t.min().item<long>(), hi = t.max().item<long>();
            if (lo < 0 || hi >= numClasses)
                throw new ArgumentException($"{name} must hold class ids in 0..{numClasses - 1}, found values in {lo}..{hi}.", name);
        }
        // Each (truth, prediction) pair is one cell index truth·K + prediction; counting them fills the matrix.
        var counts = torch.bincount(truth * numClasses + pred, minlength: numClasses * numClasses);
        return counts.view(numClasses, numClasses).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Per-class precision (of the samples predicted as the class, the fraction truly in it), recall (of the samples in
    /// the class, the fraction found) and F1, with support (true count), from a confusion matrix. A class never
    /// predicted has precision 0 (scikit-learn's <c>zero_division=0</c>).
    /// </summary>
    /// <param name="confusion">A <see cref="ConfusionMatrix"/> result.</param>
    /// <param name="classNames">One name per class (default: the indices).</param>
    public static DataFrame PerClassReport(Tensor confusion, IReadOnlyList<string>? classNames = null)
    {
        if (confusion.dim() != 2 || confusion.shape[0] != confusion.shape[1])
            throw new ArgumentException($"confusion must be a square [K, K] matrix, got shape [{string.Join(", ", confusion.shape)}].", nameof(confusion));
        int k = (int)confusion.shape[0];
        var names = classNames ?? Enumerable.Range(0, k).Select(i => i.ToString()).ToList();
        if (names.Count != k) throw new ArgumentException($"{names.Count} class names for a {k}×{k} confusion matrix.", nameof(classNames));
        var m = Plots.Plot.ToRows(confusion);
        var precision = new double[k]; var recall = new double[k]; var f1 = new double[k]; var support = new long[k];
        for (int c = 0; c < k; c++)
        {
            double tp = m[c][c];
            double predicted = Enumerable.Range(0, k).Sum(r => m[r][c]);
            double actual = m[c].Sum();
            precision[c] = predicted == 0 ? 0 : tp / predicted;
            recall[c] = actual == 0 ? 0 : tp / actual;
            f1[c] = precision[c] + recall[c] == 0 ? 0 : 2 * precision[c] * recall[c] / (precision[c] + recall[c]);
            support[c] = (long)actual;
        }
        return new DataFrame(
            new StringDataFrameColumn("class", names),
            new DoubleDataFrameColumn("precision", precision.Select(v => Math.Round(v, 4))),
            new DoubleDataFrameColumn("recall", recall.Select(v => Math.Round(v, 4))),
            new DoubleDataFrameColumn("f1", f1.Select(v => Math.Round(v, 4))),
            new Int64DataFrameColumn("support", support));
    }

    /// <summary>The largest off-diagonal cells of a confusion matrix: which true class is most often taken for which.</summary>
    /// <param name="confusion">A <see cref="ConfusionMatrix"/> result.</param>
    /// <param name="classNames">One name per class.</param>
    /// <param name="top">How many pairs.</param>
    public static DataFrame MostConfused(Tensor confusion, IReadOnlyList<string> classNames, int top = 5)
    {
        var m = Plots.Plot.ToRows(confusion);
        int k = m.Count;
        if (classNames.Count != k) throw new ArgumentException($"{classNames.Count} class names for a {k}×{k} confusion matrix.", nameof(classNames));
        var cells = (from i in Enumerable.Range(0, k) from j in Enumerable.Range(0, k) where i != j && m[i][j] > 0
                     orderby m[i][j] descending, i, j select (i, j, n: (long)m[i][j], share: m[i][j] / m[i].Sum())).Take(top).ToList();
        return new DataFrame(
            new StringDataFrameColumn("true class", cells.Select(c => classNames[c.i])),
            new StringDataFrameColumn("predicted as", cells.Select(c => classNames[c.j])),
            new Int64DataFrameColumn("count", cells.Select(c => c.n)),
            new DoubleDataFrameColumn("share of class", cells.Select(c => Math.Round(c.share, 4))));
    }

    /// <summary>
    /// The <paramref name="k"/> misclassified samples the model was most confident about (highest softmax probability
    /// of the wrong class): the most instructive mistakes to look at.
    /// </summary>
    /// <param name="logits">Model outputs <c>[N, K]</c>.</param>
    /// <param name="targets">True class ids <c>[N]</c>.</param>
    /// <param name="k">How many to return (fewer if there are fewer mistakes).</param>
    public static IReadOnlyList<Misclassified> TopMisclassified(Tensor logits, Tensor targets, int k = 16)
    {
        if (logits.dim() != 2) throw new ArgumentException($"logits must be [N, K], got shape [{string.Join(", ", logits.shape)}].", nameof(logits));
        if (targets.shape[0] != logits.shape[0])
            throw new ArgumentException($"targets has {targets.shape[0]} samples but logits has {logits.shape[0]}.", nameof(targets));
        using var scope = torch.NewDisposeScope();
        var probs = logits.detach().cpu().to_type(ScalarType.Float64).softmax(1);
        var (conf, pred) = probs.max(1);
        var truth = targets.cpu().to_type(ScalarType.Int64);
        var labelProb = probs.gather(1, truth.unsqueeze(1)).squeeze(1);
        var p = pred.data<long>().ToArray(); var t = truth.data<long>().ToArray();
        var c = conf.data<double>().ToArray(); var lp = labelProb.data<double>().ToArray();
        return Enumerable.Range(0, p.Length).Where(i => p[i] != t[i]).OrderByDescending(i => c[i]).ThenBy(i => i).Take(k)
            .Select(i => new Misclassified(i, (int)t[i], (int)p[i], c[i], lp[i])).ToList();
    }

    static Tensor ToClassIds(Tensor predictions, Tensor targets)
    {
        var pred = predictions.dim() == 2 ? predictions.argmax(1) : predictions;
        if (pred.dim() != 1 || targets.dim() != 1 || pred.shape[0] != targets.shape[0])
            throw new ArgumentException($"predictions (shape [{string.Join(", ", predictions.shape)}]) must be [N] class ids or [N, K] logits " +
                $"matching targets (shape [{string.Join(", ", targets.shape)}]).", nameof(predictions));
        return pred;
    }
}
