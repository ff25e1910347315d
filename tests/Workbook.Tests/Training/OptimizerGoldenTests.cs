using TorchSharp;
using Workbook.IO;
using Workbook.Tests.Attention;
using Workbook.Training;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Workbook.Tests.Training;

/// <summary>Optimizer updates equal PyTorch's, step for step (goldens computed with torch.optim in float64).</summary>
public class OptimizerGoldenTests
{
    const double Atol = 1e-5;

    public static TheoryData<string> Names => new() { "sgd", "sgd_momentum", "adam", "adam_l2", "adamw" };

    static torch.optim.Optimizer Make(string name, IEnumerable<Parameter> ps) => name switch
    {
        "sgd" => Optimizers.Sgd(ps, lr: 0.1),
        "sgd_momentum" => Optimizers.Sgd(ps, lr: 0.1, momentum: 0.9),
        "adam" => Optimizers.Adam(ps, lr: 0.01),
        "adam_l2" => Optimizers.Adam(ps, lr: 0.01, weightDecay: 0.1),
        "adamw" => Optimizers.AdamW(ps, lr: 0.01, weightDecay: 0.1),
        _ => throw new ArgumentException(name),
    };

    static void AssertClose(Tensor expected, Tensor actual, string what) => Golden.AssertClose(expected, actual.detach(), Atol, what);

    [Theory]
    [MemberData(nameof(Names))]
    public void MlpStepsMatchPyTorch(string opt)
    {
        var g = SafeTensors.Load(TestSetup.Fixture("golden", "optim_mlp.safetensors"));
        var x = g["input.x"]; var y = g["input.y"];
        var model = new TinyMlp((int)g["fc1.weight"].shape[1], (int)g["fc1.weight"].shape[0], (int)g["fc2.weight"].shape[0]);
        var names = model.named_parameters().Select(np => np.name).ToList();
        Assert.Equal(new[] { "fc1.bias", "fc1.weight", "fc2.bias", "fc2.weight" }, names.OrderBy(n => n, StringComparer.Ordinal));
        using (torch.no_grad())
            foreach (var (name, p) in model.named_parameters()) p.copy_(g[name]);

        var optimizer = Make(opt, model.parameters());
        var expectedLoss = g[$"expected.{opt}.loss"];
        for (int k = 1; k <= expectedLoss.shape[0]; k++)
        {
            optimizer.zero_grad();
            var loss = nn.functional.mse_loss(model.call(x), y);
            if (k == 1)
            {
                AssertClose(g["expected.initial_loss"], loss, "initial loss");
                loss.backward();
                foreach (var (name, p) in model.named_parameters()) AssertClose(g[$"expected.initial_grad.{name}"], p.grad!, $"initial grad {name}");
            }
            else loss.backward();
            AssertClose(expectedLoss[k - 1], loss, $"{opt} loss before step {k}");
            optimizer.step();
            foreach (var (name, p) in model.named_parameters())
                AssertClose(g[$"expected.{opt}.step_{k}.{name}"], p, $"{opt} step {k} {name}");
        }
    }

    [Theory]
    [MemberData(nameof(Names))]
    public void QuadraticStepsMatchPyTorch(string opt)
    {
        var g = SafeTensors.Load(TestSetup.Fixture("golden", "optim_quadratic.safetensors"));
        var a = g["input.a"]; var c = g["input.c"];
        var w = new Parameter(g["w"].clone());
        var optimizer = Make(opt, new[] { w });
        var expectedLoss = g[$"expected.{opt}.loss"];
        for (int k = 1; k <= expectedLoss.shape[0]; k++)
        {
            optimizer.zero_grad();
            var loss = 0.5 * (a * (w - c).pow(2)).sum();
            AssertClose(expectedLoss[k - 1], loss, $"{opt} loss before step {k}");
            loss.backward();
            if (k == 1) AssertClose(g["expected.initial_grad.w"], w.grad!, "initial grad");
            optimizer.step();
            AssertClose(g[$"expected.{opt}.step_{k}.w"], w, $"{opt} step {k} w");
        }
    }

    [Fact]
    public void AdamUsesPyTorchDefaultBetas()
    {
        var w = new Parameter(torch.zeros(3));
        var adam = (TorchSharp.Modules.Adam)Optimizers.Adam(new[] { w });
        Assert.Equal((0.9, 0.999), adam.Betas);
        var adamw = (TorchSharp.Modules.AdamW)Optimizers.AdamW(new[] { w });
        Assert.Equal((0.9, 0.999), adamw.Betas);
    }

    [Fact]
    public void LearningRateCanBeReadAndSet()
    {
        var w = new Parameter(torch.zeros(3));
        var sgd = Optimizers.Sgd(new[] { w }, lr: 0.5);
        Assert.Equal(0.5, Optimizers.GetLearningRate(sgd));
        Optimizers.SetLearningRate(sgd, 0.25);
        Assert.Equal(0.25, Optimizers.GetLearningRate(sgd));
    }
}
