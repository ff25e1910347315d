using TorchSharp;
using Workbook.IO;
using Workbook.Training;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

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
}
