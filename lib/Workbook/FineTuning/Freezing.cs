using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Workbook.FineTuning;

/// <summary>
/// Which parameters train. A frozen parameter (<c>requires_grad = false</c>) gets no gradient, so autograd does not
/// compute its weight gradient and the optimizer (built from <see cref="Trainable"/>) never moves it.
/// Build the optimizer after freezing.
/// </summary>
public static class Freezing
{
    /// <summary>Freezes every parameter of <paramref name="module"/>.</summary>
    public static void Freeze(nn.Module module) => SetTrainable(module, false);

    /// <summary>Makes every parameter of <paramref name="module"/> trainable.</summary>
    public static void Unfreeze(nn.Module module) => SetTrainable(module, true);

    /// <summary>Freezes every parameter whose name does not satisfy <paramref name="keepTrainable"/>, and unfreezes those that do.</summary>
    /// <returns>The number of parameters (tensors) left trainable.</returns>
    public static int FreezeAllBut(nn.Module module, Func<string, bool> keepTrainable)
    {
        ArgumentNullException.ThrowIfNull(module);
        ArgumentNullException.ThrowIfNull(keepTrainable);
        int kept = 0;
        foreach (var (name, p) in module.named_parameters())
        {
            bool keep = keepTrainable(name);
            p.requires_grad = keep;
            if (keep) kept++;
        }
        return kept;
    }

    /// <summary>The parameters that train (<c>requires_grad</c>), in <c>named_parameters</c> order: pass these to the optimizer.</summary>
    public static List<Parameter> Trainable(nn.Module module) =>
        module.named_parameters().Where(p => p.parameter.requires_grad).Select(p => p.parameter).ToList();

    /// <summary>Number of trainable scalars.</summary>
    public static long TrainableCount(nn.Module module) => Trainable(module).Sum(p => p.numel());

    /// <summary>Number of scalars in all parameters.</summary>
    public static long TotalCount(nn.Module module) => module.parameters().Sum(p => p.numel());

    static void SetTrainable(nn.Module module, bool trainable)
    {
        ArgumentNullException.ThrowIfNull(module);
        foreach (var p in module.parameters()) p.requires_grad = trainable;
    }
}
