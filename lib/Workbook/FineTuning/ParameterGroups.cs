using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Workbook.FineTuning;

/// <summary>Parameters trained with their own learning rate and weight decay (one optimizer parameter group).</summary>
/// <param name="Name">What the group is, for messages ("head", "backbone").</param>
/// <param name="Parameters">Its parameters.</param>
/// <param name="LearningRate">Its peak learning rate. A <see cref="Training.Trainer"/> schedule keeps each group's rate in this ratio to the first group's.</param>
/// <param name="WeightDecay">AdamW's decoupled weight decay for the group.</param>
public sealed record ParameterGroup(string Name, IReadOnlyList<Parameter> Parameters, double LearningRate, double WeightDecay = 0.01);

/// <summary>
/// Optimizers over several parameter groups, for discriminative fine-tuning: a newly initialised head learns fast,
/// pretrained layers slowly, frozen ones not at all.
/// </summary>
public static class ParameterGroups
{
    /// <summary>AdamW (PyTorch's defaults) with one parameter group per <paramref name="groups"/> entry; empty groups are left out.</summary>
    /// <exception cref="ArgumentException">No parameters at all, a parameter in two groups, a frozen parameter, or a non-positive rate.</exception>
    public static optim.Optimizer AdamW(IEnumerable<ParameterGroup> groups, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8)
    {
        ArgumentNullException.ThrowIfNull(groups);
        var list = groups.Where(g => g.Parameters.Count > 0).ToList();
        if (list.Count == 0) throw new ArgumentException("No parameters to optimise: every group is empty.", nameof(groups));
        var seen = new HashSet<IntPtr>();
        foreach (var g in list)
        {
            if (!(g.LearningRate > 0)) throw new ArgumentException($"Group '{g.Name}': the learning rate must be positive, got {g.LearningRate}.", nameof(groups));
            foreach (var p in g.Parameters)
            {
                if (!p.requires_grad) throw new ArgumentException($"Group '{g.Name}' holds a frozen parameter of shape [{string.Join(", ", p.shape)}]; pass Freezing.Trainable(...) parameters.", nameof(groups));
                if (!seen.Add(p.Handle)) throw new ArgumentException($"Group '{g.Name}' holds a parameter of shape [{string.Join(", ", p.shape)}] that is already in another group.", nameof(groups));
            }
        }
        var paramGroups = list.Select(g => new TorchSharp.Modules.AdamW.ParamGroup(g.Parameters,
            new TorchSharp.Modules.AdamW.Options { LearningRate = g.LearningRate, weight_decay = g.WeightDecay })).ToList();
        return optim.AdamW(paramGroups, lr: list[0].LearningRate, beta1: beta1, beta2: beta2, eps: eps);
    }
}
