using Microsoft.Data.Analysis;
using static TorchSharp.torch;

namespace Workbook.Tabular;

/// <summary>Mean and sample standard deviation of repeated measurements (e.g. cross-validation folds); prints as "mean ± std".</summary>
/// <param name="Mean">Arithmetic mean.</param>
/// <param name="Std">Sample standard deviation (divides by n - 1; 0 for a single value).</param>
/// <param name="Count">Number of values.</param>
public sealed record MeanStd(double Mean, double Std, int Count)
{
    /// <summary>Summarises the values.</summary>
    /// <exception cref="ArgumentException">No values.</exception>
    public static MeanStd Of(IEnumerable<double> values)
    {
        var v = values.ToArray();
        if (v.Length == 0) throw new ArgumentException("MeanStd needs at least one value.", nameof(values));
        double m = v.Average();
        double s = v.Length > 1 ? Math.Sqrt(v.Sum(x => (x - m) * (x - m)) / (v.Length - 1)) : 0;
        return new MeanStd(m, s, v.Length);
    }

    /// <summary>"0.9649 ± 0.0123".</summary>
    public override string ToString() => $"{Mean:F4} ± {Std:F4}";
}

/// <summary>
/// Classification metrics from predicted and true class indices: accuracy, the confusion matrix, and per-class
/// precision, recall, F1 and support, with macro and support-weighted averages. <see cref="ToDataFrame"/> gives the
/// familiar table (one row per class plus the averages) for display or CSV export.
/// </summary>
public sealed class ClassificationReport
{
    /// <summary>Class names, index order.</summary>
    public IReadOnlyList<string> Classes { get; }
    /// <summary>Confusion[t, p] = number of rows of true class t predicted as p.</summary>
    public long[,] Confusion { get; }
    /// <summary>Fraction of rows predicted correctly.</summary>
    public double Accuracy { get; }
    /// <summary>Per class: of the rows predicted as the class, the fraction that are it (0 when none is predicted).</summary>
    public double[] Precision { get; }
    /// <summary>Per class: of the rows of the class, the fraction found.</summary>
    public double[] Recall { get; }
    /// <summary>Per class: harmonic mean of precision and recall (0 when both are 0).</summary>
    public double[] F1 { get; }
    /// <summary>Per class: number of true rows.</summary>
    public long[] Support { get; }

    /// <summary>Computes the report.</summary>
    /// <param name="predicted">Predicted class indices [rows] (or logits [rows, classes], reduced with argmax).</param>
    /// <param name="target">True class indices [rows].</param>
    /// <param name="classes">Class names; default "0", "1", ...</param>
    /// <exception cref="ArgumentException">Row counts differ, or an index is outside the classes.</exception>
    public ClassificationReport(Tensor predicted, Tensor target, IReadOnlyList<string>? classes = null)
    {
        ArgumentNullException.ThrowIfNull(predicted);
        ArgumentNullException.ThrowIfNull(target);
        using var scope = NewDisposeScope();
        var pred = predicted.dim() == 2 ? predicted.argmax(1) : predicted;
        if (pred.dim() != 1 || target.dim() != 1 || pred.shape[0] != target.shape[0])
            throw new ArgumentException($"predicted and target must be [rows] with the same rows (predicted may be logits [rows, classes]); got [{string.Join(", ", predicted.shape)}] and [{string.Join(", ", target.shape)}].", nameof(target));
        var p = pred.cpu().to_type(ScalarType.Int64).data<long>().ToArray();
        var t = target.cpu().to_type(ScalarType.Int64).data<long>().ToArray();
        int c = classes?.Count ?? (int)Math.Max(p.DefaultIfEmpty(0).Max(), t.DefaultIfEmpty(0).Max()) + 1;
        if (predicted.dim() == 2 && classes is null) c = Math.Max(c, (int)predicted.shape[1]);
        Classes = classes ?? Enumerable.Range(0, c).Select(i => i.ToString()).ToArray();
        Confusion = new long[c, c];
        for (int i = 0; i < t.Length; i++)
        {
            if (t[i] < 0 || t[i] >= c || p[i] < 0 || p[i] >= c)
                throw new ArgumentException($"Row {i}: target {t[i]} / prediction {p[i]} is outside the {c} classes 0..{c - 1}.", nameof(classes));
            Confusion[t[i], p[i]]++;
        }
        Precision = new double[c]; Recall = new double[c]; F1 = new double[c]; Support = new long[c];
        long correct = 0;
        for (int k = 0; k < c; k++)
        {
            long tp = Confusion[k, k], predictedK = 0, actualK = 0;
            for (int j = 0; j < c; j++) { predictedK += Confusion[j, k]; actualK += Confusion[k, j]; }
            correct += tp;
            Support[k] = actualK;
            Precision[k] = predictedK == 0 ? 0 : (double)tp / predictedK;
            Recall[k] = actualK == 0 ? 0 : (double)tp / actualK;
            F1[k] = Precision[k] + Recall[k] == 0 ? 0 : 2 * Precision[k] * Recall[k] / (Precision[k] + Recall[k]);
        }
        Accuracy = t.Length == 0 ? 0 : (double)correct / t.Length;
    }

    /// <summary>Mean of the per-class F1 scores (each class counts the same).</summary>
    public double MacroF1 => F1.Average();

    /// <summary>
    /// Columns class, precision, recall, f1, support; a row per class, then "macro avg", "weighted avg" and
    /// "accuracy" (accuracy in the f1 column, like scikit-learn's classification_report).
    /// </summary>
    public DataFrame ToDataFrame()
    {
        int c = Classes.Count;
        long n = Support.Sum();
        double W(double[] v) => n == 0 ? 0 : Enumerable.Range(0, c).Sum(k => v[k] * Support[k]) / n;
        var names = Classes.Concat(new[] { "macro avg", "weighted avg", "accuracy" }).ToList();
        var prec = Precision.Cast<double?>().Concat(new double?[] { Precision.Average(), W(Precision), null });
        var rec = Recall.Cast<double?>().Concat(new double?[] { Recall.Average(), W(Recall), null });
        var f1 = F1.Cast<double?>().Concat(new double?[] { F1.Average(), W(F1), Accuracy });
        var sup = Support.Concat(new[] { n, n, n });
        return new DataFrame(
            new StringDataFrameColumn("class", names),
            new DoubleDataFrameColumn("precision", prec),
            new DoubleDataFrameColumn("recall", rec),
            new DoubleDataFrameColumn("f1", f1),
            new Int64DataFrameColumn("support", sup));
    }

    /// <summary>The confusion matrix as a DataFrame: a "true \ predicted" column of class names, then one column per predicted class.</summary>
    public DataFrame ConfusionDataFrame()
    {
        int c = Classes.Count;
        var frame = new DataFrame(new StringDataFrameColumn("true \\ predicted", Classes));
        for (int j = 0; j < c; j++)
            frame.Columns.Add(new Int64DataFrameColumn(Classes[j], Enumerable.Range(0, c).Select(i => Confusion[i, j])));
        return frame;
    }
}
