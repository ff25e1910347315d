using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Workbook.Gpt;

/// <summary>How GPT-2's blocks swap a linear projection for a module standing in for it (see <see cref="GptModel.ReplaceProjections"/>).</summary>
internal static class Projections
{
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
