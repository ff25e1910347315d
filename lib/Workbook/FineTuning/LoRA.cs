using System.Globalization;
using TorchSharp.Modules;
using Workbook.Gpt;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Workbook.FineTuning;

/// <summary>Where and how big the adapters are.</summary>
public sealed record LoRAOptions
{
    /// <summary>r, the rank of each weight update.</summary>
    public int Rank { get; init; } = 8;

    /// <summary>α; the update is scaled by α/r.</summary>
    public double Alpha { get; init; } = 16;

    /// <summary>Dropout on the adapters' inputs.</summary>
    public double Dropout { get; init; }

    /// <summary>
    /// The projections that get adapters, as name suffixes: by default all four of every block (the attention's
    /// <c>attn.c_attn</c> and <c>attn.c_proj</c>, the MLP's <c>mlp.c_fc</c> and <c>mlp.c_proj</c>).
    /// </summary>
    public IReadOnlyList<string> Targets { get; init; } = ["attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"];
}

/// <summary>What <see cref="LoRA.Apply"/> did.</summary>
/// <param name="Adapters">Projections wrapped.</param>
/// <param name="TrainableParameters">Scalars that train now (the adapters, plus anything left unfrozen).</param>
/// <param name="TotalParameters">All scalars of the model, base weights and adapters.</param>
/// <param name="Options">The options used.</param>
public sealed record LoRAReport(int Adapters, long TrainableParameters, long TotalParameters, LoRAOptions Options)
{
    /// <summary>Trainable share of all parameters.</summary>
    public double TrainableShare => (double)TrainableParameters / TotalParameters;

    /// <inheritdoc/>
    public override string ToString() => string.Create(CultureInfo.InvariantCulture,
        $"LoRA r = {Options.Rank}, α = {Options.Alpha} on {Adapters} projections: {TrainableParameters:N0} trainable of {TotalParameters:N0} parameters ({100 * TrainableShare:F2}%)");
}

/// <summary>
/// LoRA for <see cref="GptModel"/>: freeze the model, wrap the chosen projections in <see cref="LoRALinear"/>
/// adapters, train only those; then <see cref="MergeAndUnload"/> writes a plain GPT-2 whose weights include the updates.
/// </summary>
public static class LoRA
{
    /// <summary>
    /// Freezes every parameter of <paramref name="model"/> and wraps the projections named by
    /// <see cref="LoRAOptions.Targets"/> with fresh adapters (the model's outputs do not change: B = 0).
    /// </summary>
    /// <exception cref="ArgumentException">No projection matches the targets, or a target is already wrapped.</exception>
    public static LoRAReport Apply(GptModel model, LoRAOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        options ??= new LoRAOptions();
        Freezing.Freeze(model);
        int wrapped = model.ReplaceProjections((name, module) =>
        {
            if (!options.Targets.Any(t => name.EndsWith(t, StringComparison.Ordinal))) return null;
            return module switch
            {
                Linear linear => new LoRALinear(linear, options.Rank, options.Alpha, options.Dropout),
                LoRALinear => throw new ArgumentException($"'{name}' already has a LoRA adapter; merge and unload it first.", nameof(model)),
                _ => throw new ArgumentException($"'{name}' is a {module.GetType().Name}, not a Linear layer LoRA can wrap.", nameof(model)),
            };
        });
        if (wrapped == 0)
            throw new ArgumentException($"No projection matches the LoRA targets [{string.Join(", ", options.Targets)}]; the model has h.i.attn.c_attn, h.i.attn.c_proj, h.i.mlp.c_fc, h.i.mlp.c_proj.", nameof(options));
        return new LoRAReport(wrapped, Freezing.TrainableCount(model), Freezing.TotalCount(model), options);
    }

    /// <summary>The adapters of <paramref name="model"/>, by the name of the projection they wrap.</summary>
    public static IReadOnlyList<(string Name, LoRALinear Adapter)> Adapters(Module model) =>
        model.named_modules().Where(m => m.module is LoRALinear).Select(m => (m.name, (LoRALinear)m.module)).ToList();

    /// <summary>Merges every adapter into its base weight in place (<see cref="LoRALinear.Merge"/>); the wrappers stay.</summary>
    /// <returns>The number of adapters merged.</returns>
    public static int Merge(Module model)
    {
        var adapters = Adapters(model);
        foreach (var (_, a) in adapters) a.Merge();
        return adapters.Count;
    }

    /// <summary>
    /// Replaces every adapter by a plain Linear with the merged weight <c>W₀ + (α/r)·BA</c>, so the model is an ordinary
    /// GPT-2 again (its parameter names are Hugging Face's, and <see cref="GptCheckpoint.Save"/> writes it). Every
    /// parameter is trainable afterwards.
    /// </summary>
    /// <returns>The number of adapters removed.</returns>
    public static int MergeAndUnload(GptModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        int n = model.ReplaceProjections((_, module) => module is LoRALinear a ? a.ToLinear() : null);
        Freezing.Unfreeze(model);
        return n;
    }
}
