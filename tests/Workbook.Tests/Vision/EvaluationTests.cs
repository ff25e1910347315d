using TorchSharp;
using Workbook.Vision;
using static TorchSharp.torch;

namespace Workbook.Tests.Vision;

public class EvaluationTests
{
    // 7 samples, 3 classes. truth → prediction: 0→0, 0→1, 1→1, 1→1, 2→2, 2→0, 2→2.
    static readonly Tensor Truth = torch.tensor(new long[] { 0, 0, 1, 1, 2, 2, 2 });
    static readonly Tensor Pred = torch.tensor(new long[] { 0, 1, 1, 1, 2, 0, 2 });

    [Fact]
    public void ConfusionMatrixOfAHandMadeExample()
    {
        var m = Evaluation.ConfusionMatrix(Pred, Truth, 3);
        Assert.Equal(new long[] { 3, 3 }, m.shape);
        Assert.Equal(new long[] { 1, 1, 0, /**/ 0, 2, 0, /**/ 1, 0, 2 }, m.data<long>().ToArray());
        Assert.Equal(5.0 / 7, Evaluation.Accuracy(Pred, Truth), 12);

        var e = Assert.Throws<ArgumentException>(() => Evaluation.ConfusionMatrix(Pred, Truth, 2));
        Assert.Contains("0..1", e.Message);
    }

    [Fact]
    public void PerClassPrecisionRecallFromTheConfusionMatrix()
    {
        var report = Evaluation.PerClassReport(Evaluation.ConfusionMatrix(Pred, Truth, 3), new[] { "a", "b", "c" });
        // precision = diagonal / column sum, recall = diagonal / row sum.
        Assert.Equal(new double?[] { 0.5, Math.Round(2.0 / 3, 4), 1.0 }, report["precision"].Cast<double?>());
        Assert.Equal(new double?[] { 0.5, 1.0, Math.Round(2.0 / 3, 4) }, report["recall"].Cast<double?>());
        Assert.Equal(new long?[] { 2, 2, 3 }, report["support"].Cast<long?>());
        Assert.Equal(Math.Round(2 * (2.0 / 3) / (1 + 2.0 / 3), 4), (double)report["f1"][1]!, 12);

        var confused = Evaluation.MostConfused(Evaluation.ConfusionMatrix(Pred, Truth, 3), new[] { "a", "b", "c" });
        Assert.Equal(2, confused.Rows.Count);   // only two off-diagonal cells are non-zero
        Assert.Equal("a", confused["true class"][0]);
        Assert.Equal("b", confused["predicted as"][0]);
    }

    [Fact]
    public void TopMisclassifiedAreTheMostConfidentMistakes()
    {
        var logits = torch.tensor(new float[,]
        {
            { 5, 0, 0 },   // correct
            { 0, 1, 0 },   // wrong (truth 0), mild
            { 0, 3, 0 },   // correct
            { 0, 0, 0 },   // uniform: argmax 0, truth 1 → wrong, confidence 1/3
            { 0, 0, 2 },   // correct
            { 4, 0, 0 },   // wrong (truth 2), confident
            { 0, 0, 1 },   // correct
        });
        var top = Evaluation.TopMisclassified(logits, Truth, k: 2);
        Assert.Equal(new[] { 5, 1 }, top.Select(m => m.Index));
        Assert.Equal(2, top[0].Label);
        Assert.Equal(0, top[0].Predicted);
        Assert.Equal(Math.Exp(4) / (Math.Exp(4) + 2), top[0].Confidence, 6);
        Assert.Equal(1 / (Math.Exp(4) + 2), top[0].LabelProbability, 6);
        Assert.Equal(3, Evaluation.TopMisclassified(logits, Truth, k: 10).Count);
    }
}
