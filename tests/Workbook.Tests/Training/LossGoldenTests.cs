using TorchSharp;
using Workbook.IO;
using Workbook.Training;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;
using Reduction = TorchSharp.torch.nn.Reduction;

namespace Workbook.Tests.Training;

/// <summary>Loss values and gradients equal PyTorch's (losses.safetensors).</summary>
public class LossGoldenTests
{
    static readonly Dictionary<string, Tensor> G = SafeTensors.Load(TestSetup.Fixture("golden", "losses.safetensors"));

    static void Close(string expected, Tensor actual, double atol = 1e-5)
    {
        var e = G[expected];
        Assert.Equal(e.shape, actual.shape);
        double diff = (e - actual.detach()).abs().max().item<float>();
        Assert.True(diff <= atol, $"{expected}: max |diff| = {diff:E3}");
    }

    static Tensor Leaf(string name) => G[name].clone().requires_grad_(true);

    [Fact]
    public void MeanSquaredError()
    {
        var pred = Leaf("input.mse.pred");
        var loss = Losses.Mse(pred, G["input.mse.target"]);
        Close("expected.mse.mean", loss);
        Close("expected.mse.sum", F.mse_loss(pred, G["input.mse.target"], reduction: nn.Reduction.Sum));
        loss.backward();
        Close("expected.mse.grad_pred", pred.grad!);
    }

    [Theory]
    [InlineData("ce", 0.0, "input.ce.target")]
    [InlineData("ce_ls", 0.1, "input.ce.target")]
    [InlineData("ce_ignore", 0.0, "input.ce.target_ignore")]
    [InlineData("ce_ls_ignore", 0.1, "input.ce.target_ignore")]
    public void CrossEntropy(string variant, double smoothing, string target)
    {
        var logits = Leaf("input.ce.logits");
        var t = G[target];
        var loss = smoothing == 0 && variant == "ce" ? Losses.CrossEntropy(logits, t) : Losses.CrossEntropyWith(smoothing, -100)(logits, t);
        Close($"expected.{variant}.mean", loss);
        Close($"expected.{variant}.none", F.cross_entropy(logits, t, ignore_index: -100, reduction: nn.Reduction.None, label_smoothing: smoothing));
        loss.backward();
        Close($"expected.{variant}.grad_logits", logits.grad!);
    }

    [Fact]
    public void BinaryCrossEntropyWithLogitsIsStable()
    {
        var logits = Leaf("input.bce.logits");
        var loss = Losses.BinaryCrossEntropyWithLogits(logits, G["input.bce.target"]);
        Close("expected.bce.mean", loss);
        loss.backward();
        Close("expected.bce.grad_logits", logits.grad!);
        // Logits up to ±100: the stable form stays finite where the naive formula gives inf.
        var extreme = Losses.BinaryCrossEntropyWithLogits(G["input.bce_extreme.logits"], G["input.bce_extreme.target"]);
        Close("expected.bce_extreme.mean", extreme, 1e-4);
        var p = torch.sigmoid(G["input.bce_extreme.logits"]); var y = G["input.bce_extreme.target"];
        var naive = -(y * p.log() + (1 - y) * (1 - p).log());
        Assert.True(naive.isinf().any().item<bool>(), "the naive formula should overflow on these logits");
    }

    [Fact]
    public void HingeLosses()
    {
        var s = Leaf("input.hinge.scores");
        var y = G["input.hinge.target"];
        var loss = Losses.Hinge(s, y);
        Close("expected.hinge.mean", loss);
        Close("expected.hinge.none", (1 - y * s).clamp_min(0));
        loss.backward();
        Close("expected.hinge.grad_scores", s.grad!);
        Close("expected.hinge_embedding.mean", F.hinge_embedding_loss(G["input.hinge.scores"], y, margin: 1.0));

        var logits = Leaf("input.multimargin.logits");
        var mm = Losses.MultiMargin(logits, G["input.multimargin.target"]);
        Close("expected.multimargin.mean", mm);
        Close("expected.multimargin.none", F.multi_margin_loss(logits, G["input.multimargin.target"], reduction: nn.Reduction.None));
        mm.backward();
        Close("expected.multimargin.grad_logits", logits.grad!);
    }

    /// <summary>Σ of a golden per-element tensor in float64: the expected value of reduction "sum", computed independently.</summary>
    static double GoldenSum(string none) => G[none].to_type(ScalarType.Float64).sum().item<double>();

    static void CloseScalar(double expected, Tensor actual, string what, double atol = 1e-5)
    {
        Assert.Equal(0, actual.dim());
        double diff = Math.Abs(expected - actual.to_type(ScalarType.Float64).item<double>());
        Assert.True(diff <= atol * Math.Max(1, Math.Abs(expected)), $"{what}: expected {expected}, got {actual.item<float>()} (|diff| {diff:E3})");
    }

    [Theory]
    [InlineData("ce", 0.0, "input.ce.target")]
    [InlineData("ce_ls", 0.1, "input.ce.target")]
    [InlineData("ce_ignore", 0.0, "input.ce.target_ignore")]
    [InlineData("ce_ls_ignore", 0.1, "input.ce.target_ignore")]
    public void CrossEntropyReductionsArePyTorchs(string variant, double smoothing, string target)
    {
        var logits = G["input.ce.logits"];
        var t = G[target];
        Func<Tensor, Tensor, Tensor> With(Reduction r) => Losses.CrossEntropyWith(smoothing, -100, r);
        Close($"expected.{variant}.none", With(Reduction.None)(logits, t));
        CloseScalar(GoldenSum($"expected.{variant}.none"), With(Reduction.Sum)(logits, t), $"{variant} sum");
        // PyTorch's mean with ignore_index divides by the targets that count, not by N.
        long counted = t.ne(-100).sum().item<long>();
        CloseScalar(GoldenSum($"expected.{variant}.none") / counted, With(Reduction.Mean)(logits, t), $"{variant} mean");
        Close($"expected.{variant}.mean", With(Reduction.Mean)(logits, t));
        if (variant == "ce")
        {
            Close("expected.ce.none", Losses.CrossEntropy(logits, t, Reduction.None));
            CloseScalar(GoldenSum("expected.ce.none"), Losses.CrossEntropy(logits, t, Reduction.Sum), "ce sum");
            // Sequences: [B, T, V] logits; "none" keeps the [B, T] shape of the targets.
            var seq = Losses.SequenceCrossEntropy(logits.reshape(2, 3, 5), t.reshape(2, 3), Reduction.None);
            Assert.Equal([2L, 3], seq.shape);
            Close("expected.ce.none", seq.reshape(6));
            CloseScalar(GoldenSum("expected.ce.none"), Losses.SequenceCrossEntropy(logits.reshape(2, 3, 5), t.reshape(2, 3), Reduction.Sum), "sequence sum");
        }
    }

    [Fact]
    public void MseReductionsArePyTorchs()
    {
        var pred = G["input.mse.pred"]; var target = G["input.mse.target"];
        // none: (pred − target)² element by element, in float64 from the stored inputs.
        var squares = (pred.to_type(ScalarType.Float64) - target.to_type(ScalarType.Float64)).pow(2);
        var none = Losses.Mse(pred, target, Reduction.None);
        Assert.Equal(pred.shape, none.shape);
        Assert.True((none.to_type(ScalarType.Float64) - squares).abs().max().item<double>() < 1e-6);
        Close("expected.mse.sum", Losses.Mse(pred, target, Reduction.Sum));
        Close("expected.mse.mean", Losses.Mse(pred, target, Reduction.Mean));
        CloseScalar(squares.sum().item<double>(), Losses.Mse(pred, target, Reduction.Sum), "mse sum by hand");
    }

    [Theory]
    [InlineData("bce", 1e-5)]
    [InlineData("bce_extreme", 1e-4)]
    public void BinaryCrossEntropyReductionsArePyTorchs(string variant, double atol)
    {
        var logits = G[$"input.{variant}.logits"]; var target = G[$"input.{variant}.target"];
        Close($"expected.{variant}.none", Losses.BinaryCrossEntropyWithLogits(logits, target, Reduction.None), atol);
        CloseScalar(GoldenSum($"expected.{variant}.none"), Losses.BinaryCrossEntropyWithLogits(logits, target, Reduction.Sum), $"{variant} sum", atol);
        Close($"expected.{variant}.mean", Losses.BinaryCrossEntropyWithLogits(logits, target, Reduction.Mean), atol);
    }

    [Fact]
    public void HingeReductionsArePyTorchs()
    {
        var s = G["input.hinge.scores"]; var y = G["input.hinge.target"];
        Close("expected.hinge.none", Losses.Hinge(s, y, Reduction.None));
        CloseScalar(GoldenSum("expected.hinge.none"), Losses.Hinge(s, y, Reduction.Sum), "hinge sum");
        Close("expected.hinge.mean", Losses.Hinge(s, y, Reduction.Mean));
        var logits = G["input.multimargin.logits"]; var t = G["input.multimargin.target"];
        Close("expected.multimargin.none", Losses.MultiMargin(logits, t, Reduction.None));
        CloseScalar(GoldenSum("expected.multimargin.none"), Losses.MultiMargin(logits, t, Reduction.Sum), "multimargin sum");
        Close("expected.multimargin.mean", Losses.MultiMargin(logits, t, Reduction.Mean));
    }

    [Fact]
    public void TheTwoArgumentLossesStayMeanForTheTrainer()
    {
        // Method groups (what the Trainer takes) bind to the (output, target) overloads, which are mean-reduced.
        Func<Tensor, Tensor, Tensor> ce = Losses.CrossEntropy, mse = Losses.Mse;
        Close("expected.ce.mean", ce(G["input.ce.logits"], G["input.ce.target"]));
        Close("expected.mse.mean", mse(G["input.mse.pred"], G["input.mse.target"]));
        Assert.Throws<ArgumentOutOfRangeException>(() => Losses.Hinge(G["input.hinge.scores"], G["input.hinge.target"], (Reduction)7));
    }
}
