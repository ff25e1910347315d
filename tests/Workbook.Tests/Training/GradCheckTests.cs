using TorchSharp;
using TorchSharp.Modules;
using Workbook.Training;
using static TorchSharp.torch;

namespace Workbook.Tests.Training;

/// <summary>x³ with a wrong backward: 2x² instead of 3x² (a custom autograd function, as a hand-written kernel would be).</summary>
sealed class WrongCube : autograd.SingleTensorFunction<WrongCube>
{
    public override string Name => nameof(WrongCube);

    public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
    {
        var x = (Tensor)vars[0];
        ctx.save_for_backward([x]);
        return x.pow(3);
    }

    public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor gradOutput)
    {
        var x = ctx.get_saved_variables()[0];
        return [gradOutput * 2 * x.pow(2)]; // the bug: d(x³)/dx is 3x²
    }
}

/// <summary>fc2(f(fc1(x))) in float64, with the middle step chosen by the test.</summary>
sealed class CheckedMlp : nn.Module<Tensor, Tensor>
{
    readonly Linear fc1, fc2;
    readonly Func<Tensor, Tensor> _middle;

    public CheckedMlp(Func<Tensor, Tensor> middle, int inputs = 3, int hidden = 4, int outputs = 2) : base(nameof(CheckedMlp))
    {
        _middle = middle;
        fc1 = nn.Linear(inputs, hidden);
        fc2 = nn.Linear(hidden, outputs);
        RegisterComponents();
        this.to(float64);
    }

    public override Tensor forward(Tensor x) => fc2.call(_middle(fc1.call(x)));
}

[Collection(TorchGlobalStateCollection.Name)]
public class GradCheckTests
{
    static (Tensor X, Tensor Y) Data()
    {
        using var g = new Generator(7);
        return (randn([6, 3], dtype: float64, generator: g), randn([6, 2], dtype: float64, generator: g));
    }

    static GradCheckResult CheckMlp(Func<Tensor, Tensor> middle, GradCheckOptions? options = null)
    {
        manual_seed(3);
        var model = new CheckedMlp(middle);
        var (x, y) = Data();
        return GradCheck.Check(model, m => Losses.Mse(m.call(x), y), options);
    }

    [Fact]
    public void CorrectGradientsPassWithTinyRelativeErrors()
    {
        var result = CheckMlp(torch.tanh);
        Assert.True(result.Passed, result.ToString());
        Assert.Equal(["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"], result.Entries.Select(e => e.Name));
        Assert.All(result.Entries, e => Assert.InRange(e.RelativeError, 0, 1e-8));
        Assert.All(result.Entries, e => Assert.Equal(e.Elements, e.Checked));
        Assert.Equal(12, result["fc1.weight"].Elements);
        Assert.True(result["fc1.weight"].AutogradNorm > 1e-3); // a real gradient, not two zeros
    }

    [Fact]
    public void CatchesACustomFunctionWithAWrongBackward()
    {
        var result = CheckMlp(h => WrongCube.apply(h));
        Assert.False(result.Passed);
        // Every gradient below the cube is scaled by 2/3, so ‖a − n‖ / ‖n‖ is exactly 1/3; above it, all is right.
        Assert.Equal(1.0 / 3, result["fc1.weight"].RelativeError, 6);
        Assert.Equal(1.0 / 3, result["fc1.bias"].RelativeError, 6);
        Assert.False(result["fc1.weight"].Passed);
        Assert.True(result["fc2.weight"].Passed, result["fc2.weight"].ToString());
        Assert.True(result["fc2.bias"].Passed);
        Assert.Contains("fc1.weight", result.ToString());
        Assert.Equal(2 / 3.0, result["fc1.weight"].WorstAutograd / result["fc1.weight"].WorstNumerical, 5);
    }

    [Fact]
    public void CatchesADetachBug()
    {
        // A hand-rolled normalisation that detaches the standard deviation, as if it were a constant: it is not.
        var result = CheckMlp(h => (h - h.mean([-1], keepdim: true)) / h.std(-1, keepdim: true).detach());
        Assert.False(result["fc1.weight"].Passed);
        Assert.InRange(result["fc1.weight"].RelativeError, 1e-3, 2);
        Assert.True(result["fc1.weight"].HasGradient);
        Assert.True(result["fc2.weight"].Passed);

        // Detached entirely: backward leaves fc1's .grad empty; autograd's gradient counts as 0, the relative error is 1.
        var cut = CheckMlp(h => h.tanh().detach());
        Assert.False(cut["fc1.weight"].HasGradient);
        Assert.Equal(1.0, cut["fc1.weight"].RelativeError, 12);
        Assert.False(cut["fc1.weight"].Passed);
        Assert.True(cut["fc2.weight"].Passed);
    }

    [Fact]
    public void ChecksInputsAndSamplesElementsReproducibly()
    {
        using var g = new Generator(1);
        var w = randn([5, 4], dtype: float64, generator: g).requires_grad_(true);
        var x = randn([4], dtype: float64, generator: g).requires_grad_(true);
        var options = new GradCheckOptions(MaxElementsPerTensor: 7, Seed: 5);
        Tensor Loss() => w.matmul(x).sin().sum();
        var a = GradCheck.Check(Loss, [("w", w), ("x", x)], options);
        var b = GradCheck.Check(Loss, [("w", w), ("x", x)], options);
        Assert.True(a.Passed, a.ToString());
        Assert.Equal(7, a["w"].Checked);
        Assert.Equal(4, a["x"].Checked); // fewer elements than the sample size: all of them
        Assert.Equal(a["w"].WorstIndex, b["w"].WorstIndex);
        Assert.Equal(a["w"].NumericalNorm, b["w"].NumericalNorm);
        // The check restores every perturbed element exactly, and leaves .grad as it found it.
        Assert.Equal(a.Loss, Loss().item<double>());
        Assert.Null(w.grad);
        Loss().backward();
        var before = w.grad!.clone();
        GradCheck.Check(Loss, [("w", w), ("x", x)], options);
        Assert.Equal(before.data<double>().ToArray(), w.grad!.data<double>().ToArray());
    }

    [Fact]
    public void RefusesFloat32NonDeterministicLossesAndBadOptions()
    {
        manual_seed(1);
        var single = nn.Linear(3, 2);
        var x32 = randn(4, 3);
        var e = Assert.Throws<ArgumentException>(() => GradCheck.Check(single, m => m.call(x32).sum()));
        Assert.Contains("'weight' is Float32", e.Message);
        Assert.Contains("float64", e.Message);

        var dropout = nn.Sequential(nn.Linear(3, 8), nn.Dropout(0.5), nn.Linear(8, 1));
        dropout.to(float64);
        dropout.train();
        var x = randn([16, 3], dtype: float64);
        var nd = Assert.Throws<InvalidOperationException>(() => GradCheck.Check(dropout, m => m.call(x).pow(2).mean()));
        Assert.Contains("not deterministic", nd.Message);
        Assert.Contains("model.eval()", nd.Message);
        dropout.eval();
        Assert.True(GradCheck.Check(dropout, m => m.call(x).pow(2).mean()).Passed);

        var bad = Assert.Throws<ArgumentException>(() => GradCheck.Check(dropout, m => m.call(x).sum(), new GradCheckOptions(Epsilon: 0)));
        Assert.Contains("Epsilon must be > 0, got 0", bad.Message);
        var vector = Assert.Throws<InvalidOperationException>(() => GradCheck.Check(dropout, m => m.call(x)));
        Assert.Contains("must be a scalar, got shape [16, 1]", vector.Message);
    }
}
