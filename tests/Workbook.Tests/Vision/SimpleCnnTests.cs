using TorchSharp;
using Workbook.IO;
using Workbook.Tests.Attention;
using Workbook.Vision;
using static TorchSharp.torch;

namespace Workbook.Tests.Vision;

public class SimpleCnnTests
{
    static void AssertClose(Tensor expected, Tensor actual, double atol, string what) => Golden.AssertClose(expected, actual, atol, what);

    static (SimpleCNN Model, Dictionary<string, Tensor> Golden) LoadGolden()
    {
        var g = SafeTensors.Load(TestSetup.Fixture("golden", "simple_cnn.safetensors"));
        var x = g["input.x"];
        int classes = (int)g["fc.weight"].shape[0];
        var model = new SimpleCNN((int)x.shape[1], (int)x.shape[2], (int)x.shape[3], classes,
            channels1: (int)g["conv1.weight"].shape[0], channels2: (int)g["conv2.weight"].shape[0]);
        var parameters = model.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        Assert.Equal(new[] { "conv1.bias", "conv1.weight", "conv2.bias", "conv2.weight", "fc.bias", "fc.weight" }, parameters.Keys.OrderBy(k => k, StringComparer.Ordinal));
        using (torch.no_grad())
            foreach (var (name, p) in parameters) p.copy_(g[name]);
        return (model, g);
    }

    [Fact]
    public void FlattenSizeIsComputedFromTheInputSize()
    {
        Assert.Equal(16 * 7 * 7, new SimpleCNN(1, 28, 28).FlattenSize);
        Assert.Equal(128 * 56 * 56, new SimpleCNN(3, 224, 224, 2, 64, 128, hidden: 512).FlattenSize);   // the seed's hard-coded size
        var odd = new SimpleCNN(3, 30, 45, 5);
        Assert.Equal((7, 11), odd.FeatureSize);                     // 30→15→7, 45→22→11
        Assert.Equal(new long[] { 2, 5 }, odd.forward(torch.randn(2, 3, 30, 45)).shape);
        Assert.Equal(new long[] { 2, 10 }, new BatchNormCNN(1, 28, 28).forward(torch.randn(2, 1, 28, 28)).shape);
    }

    [Fact]
    public void LogitsStagesLossAndGradientsMatchPyTorch()
    {
        var (model, g) = LoadGolden();
        var x = g["input.x"];
        AssertClose(g["expected.pool1"], model.Stage1(x), 1e-5, "pool1");
        AssertClose(g["expected.pool2"], model.Features(x), 1e-5, "pool2");
        var logits = model.forward(x);
        AssertClose(g["expected.logits"], logits, 1e-5, "logits");

        var loss = nn.functional.cross_entropy(logits, g["input.target"]);
        AssertClose(g["expected.loss"], loss, 1e-5, "loss");
        loss.backward();
        foreach (var (name, p) in model.named_parameters())
            AssertClose(g["expected.grad." + name], p.grad!, 1e-5, "grad " + name);
    }

    [Fact]
    public void EvalPredictMatchesForwardAndRestoresMode()
    {
        var (model, g) = LoadGolden();
        model.train();
        var logits = Evaluation.Predict(model, g["input.x"], batchSize: 3);   // 4 samples: batches of 3 and 1
        AssertClose(g["expected.logits"], logits, 1e-5, "batched logits");
        Assert.True(model.training);
    }
}
