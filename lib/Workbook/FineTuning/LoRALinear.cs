using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Workbook.FineTuning;

/// <summary>
/// A low-rank adapter around a frozen <see cref="TorchSharp.Modules.Linear"/> (LoRA, Hu et al. 2021):
/// <c>y = W₀x + b + (α/r)·B(A·dropout(x))</c> with <c>A</c> <c>[r, in]</c> and <c>B</c> <c>[out, r]</c>. The update of the
/// weight, <c>ΔW = (α/r)·BA</c>, has rank at most r, and only A and B are trained: <c>r·(in + out)</c> parameters instead
/// of <c>in·out</c>. <c>B</c> starts at zero, so at initialisation the layer computes exactly what the base layer does;
/// <c>A</c> starts like a Linear layer's weight (Kaiming-uniform), so the gradient reaching <c>B</c> is not zero.
/// <see cref="Merge"/> folds ΔW into the base weight, after which the layer costs what the base layer costs.
/// Names follow Hugging Face PEFT: <c>base_layer.*</c>, <c>lora_A.weight</c>, <c>lora_B.weight</c>.
/// </summary>
public sealed class LoRALinear : Module<Tensor, Tensor>
{
    readonly Linear base_layer, lora_A, lora_B;
    readonly Dropout lora_dropout;

    /// <summary>Wraps <paramref name="baseLayer"/> and freezes its weight and bias.</summary>
    /// <param name="baseLayer">The pretrained layer.</param>
    /// <param name="rank">r, the rank of the update (≥ 1, at most min(in, out)).</param>
    /// <param name="alpha">α: the update is scaled by α/r, so that changing r does not change the update's size at initialisation of training.</param>
    /// <param name="dropout">Dropout on the adapter's input (0 = none).</param>
    /// <exception cref="ArgumentException">A rank outside [1, min(in, out)], a non-positive α, or a dropout outside [0, 1).</exception>
    public LoRALinear(Linear baseLayer, int rank, double alpha, double dropout = 0) : base(nameof(LoRALinear))
    {
        ArgumentNullException.ThrowIfNull(baseLayer);
        var w = baseLayer.weight ?? throw new ArgumentException("The base layer has no weight.", nameof(baseLayer));
        InFeatures = (int)w.shape[1];
        OutFeatures = (int)w.shape[0];
        if (rank < 1 || rank > Math.Min(InFeatures, OutFeatures))
            throw new ArgumentException($"rank must be in [1, min(in {InFeatures}, out {OutFeatures})], got {rank}.", nameof(rank));
        if (!(alpha > 0)) throw new ArgumentException($"alpha must be positive, got {alpha}.", nameof(alpha));
        if (dropout is < 0 or >= 1) throw new ArgumentException($"dropout must be in [0, 1), got {dropout}.", nameof(dropout));
        Rank = rank;
        Alpha = alpha;
        base_layer = baseLayer;
        lora_A = Linear(InFeatures, rank, hasBias: false, device: w.device);
        lora_B = Linear(rank, OutFeatures, hasBias: false, device: w.device);
        using (no_grad()) lora_B.weight!.zero_();
        lora_dropout = Dropout(dropout);
        RegisterComponents();
        foreach (var p in base_layer.parameters()) p.requires_grad = false;
    }

    /// <summary>Input features of the base layer.</summary>
    public int InFeatures { get; }

    /// <summary>Output features of the base layer.</summary>
    public int OutFeatures { get; }

    /// <summary>r.</summary>
    public int Rank { get; }

    /// <summary>α.</summary>
    public double Alpha { get; }

    /// <summary>α/r, the factor of the update.</summary>
    public double Scaling => Alpha / Rank;

    /// <summary>True after <see cref="Merge"/>: the update is inside the base weight and the adapter path is skipped.</summary>
    public bool Merged { get; private set; }

    /// <summary>The wrapped layer.</summary>
    public Linear BaseLayer => base_layer;

    /// <summary>A <c>[r, in]</c>.</summary>
    public Tensor A => lora_A.weight!;

    /// <summary>B <c>[out, r]</c>.</summary>
    public Tensor B => lora_B.weight!;

    /// <summary>Parameters the adapter adds: <c>r·(in + out)</c>.</summary>
    public long AdapterParameterCount => (long)Rank * (InFeatures + OutFeatures);

    /// <summary>The weight update <c>ΔW = (α/r)·BA</c> <c>[out, in]</c> (a new tensor, without gradient).</summary>
    public Tensor DeltaWeight()
    {
        using var _ = no_grad();
        return lora_B.weight!.matmul(lora_A.weight!).mul_(Scaling);
    }

    /// <summary><c>W₀x + b + (α/r)·B(A·dropout(x))</c>, or <c>Wx + b</c> once merged.</summary>
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var y = base_layer.forward(x);
        if (!Merged) y = y + lora_B.forward(lora_A.forward(lora_dropout.forward(x))).mul(Scaling);
        return y.MoveToOuterDisposeScope();
    }

    /// <summary>Adds ΔW to the base weight in place; the forward pass then skips the adapter (same outputs up to float rounding).</summary>
    /// <exception cref="InvalidOperationException">Already merged.</exception>
    public void Merge()
    {
        if (Merged) throw new InvalidOperationException("The adapter is already merged into the base weight.");
        using (no_grad())
        using (var delta = DeltaWeight()) base_layer.weight!.add_(delta);
        Merged = true;
    }

    /// <summary>Subtracts ΔW from the base weight again (undoes <see cref="Merge"/>, up to float rounding).</summary>
    /// <exception cref="InvalidOperationException">Not merged.</exception>
    public void Unmerge()
    {
        if (!Merged) throw new InvalidOperationException("The adapter is not merged.");
        using (no_grad())
        using (var delta = DeltaWeight()) base_layer.weight!.sub_(delta);
        Merged = false;
    }

    /// <summary>A new plain <see cref="TorchSharp.Modules.Linear"/> with weight <c>W₀ + ΔW</c> (or W if merged) and the base bias: the layer without the wrapper.</summary>
    public Linear ToLinear()
    {
        var w = base_layer.weight!;
        var linear = Linear(InFeatures, OutFeatures, hasBias: base_layer.bias is not null, device: w.device);
        using var _ = no_grad();
        using (var delta = DeltaWeight())
            linear.weight!.copy_(Merged ? w : w + delta);
        if (base_layer.bias is { } b) linear.bias!.copy_(b);
        return linear;
    }
}
