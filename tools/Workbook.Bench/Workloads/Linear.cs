using F = TorchSharp.torch.nn.functional;

namespace Workbook.Bench.Workloads;

/// <summary>
/// Diagnostic: a linear layer on a 3-D activation (the GPT case, <c>[B, T, in]</c>), forward + backward. TorchSharp's
/// <c>Linear</c> goes through libtorch's C++-frontend <c>torch::nn::functional::linear</c>, which for inputs that are not
/// 2-D runs <c>matmul</c> and then a separate in-place bias <c>add_</c> (an extra pass over the output, and an extra
/// autograd node); PyTorch's <c>F.linear</c> folds the batch dimensions and fuses the bias into the GEMM (<c>addmm</c>).
/// The second row does that fold by hand, to measure what the difference costs.
/// </summary>
public sealed class LinearWorkload() : Workload("linear",
    "diagnostic: Linear 128->384 on [12,64,128], forward+backward: nn.Linear vs addmm on the folded 2-D view, ms",
    [new("linear3d_module", "ms", false), new("linear3d_addmm", "ms", false)])
{

    /// <inheritdoc/>
    public override JsonObject Parameters(bool smoke) => new()
    {
        ["shape"] = smoke ? new JsonArray(2, 8, 16) : new JsonArray(12, 64, 128), ["out"] = smoke ? 24 : 384,
        ["iters"] = smoke ? 2 : 200, ["reps"] = smoke ? 3 : 5,
    };

    /// <summary><c>x W^T + b</c> with the bias fused into one GEMM over the flattened batch: what PyTorch's <c>F.linear</c> does.</summary>
    public static Tensor FoldedLinear(Tensor x, Tensor weight, Tensor bias)
    {
        var shape = x.shape.ToArray();
        shape[^1] = weight.shape[0];
        using var flat = x.reshape(-1, x.shape[^1]);
        using var wt = weight.t();
        using var y = addmm(bias, flat, wt, beta: 1, alpha: 1);
        return y.view(shape);
    }

    /// <inheritdoc/>
    public override IReadOnlyList<Figure> Run(JsonObject p)
    {
        var shape = p.Longs("shape");
        int outF = p.Int("out"), iters = p.Int("iters"), reps = p.Int("reps");
        torch.manual_seed(0);
        using var layer = nn.Linear(shape[^1], outF);
        using var x = randn(shape, requires_grad: true);
        double[] Ms(Func<Tensor> f) => Stats.TimeReps(reps, 1, () =>
        {
            for (int i = 0; i < iters; i++)
            {
                using var scope = NewDisposeScope();
                f().sum().backward();
            }
        }).Select(s => s * 1000 / iters).ToArray();
        var module = Ms(() => layer.forward(x));
        var folded = Ms(() => FoldedLinear(x, layer.weight!, layer.bias!));
        using var diff = (layer.forward(x) - FoldedLinear(x, layer.weight!, layer.bias!)).abs().max();
        return [new Figure("linear3d_module", module, new JsonObject { ["max_abs_diff"] = diff.item<float>() }), new Figure("linear3d_addmm", folded)];
    }
}
