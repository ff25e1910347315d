using TorchSharp.Modules;
using Workbook.Kernels;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Workbook.Gpt;

/// <summary>
/// How GPT-2's blocks run their linear projections. A plain <see cref="TorchSharp.Modules.Linear"/> goes through
/// <see cref="InferenceLinear"/> (the fastest CPU path without gradients, <c>F.linear</c> with them); anything that
/// stands in for one (a LoRA wrapper, see <see cref="GptModel.ReplaceProjections"/>) runs its own forward.
/// </summary>
internal static class Projections
{
    internal static Tensor Apply(Module<Tensor, Tensor> layer, Tensor x) =>
        layer is Linear linear ? InferenceLinear.Forward(linear, x) : layer.call(x);

    /// <summary>Swaps <paramref name="field"/> for what <paramref name="replace"/> returns, re-registered under <paramref name="name"/>.</summary>
    internal static int Replace(Module owner, string fullName, string name, ref Module<Tensor, Tensor> field,
        Func<string, Module<Tensor, Tensor>, Module<Tensor, Tensor>?> replace)
    {
        var next = replace(fullName, field);
        if (next is null || ReferenceEquals(next, field)) return 0;
        owner.register_module(name, null!); // TorchSharp: a null module unregisters the name, so it can be registered again
        owner.register_module(name, next);
        next.train(owner.training);
        field = next;
        return 1;
    }
}
