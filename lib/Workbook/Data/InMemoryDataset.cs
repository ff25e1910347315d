using TorchSharp;
using static TorchSharp.torch;

namespace Workbook.Data;

/// <summary>
/// Inputs and targets as two tensors whose first dimension indexes the samples (like PyTorch's <c>TensorDataset</c>):
/// e.g. images <c>[N, 1, 28, 28]</c> float32 and labels <c>[N]</c> int64. The dataset owns its tensors (they are
/// detached from any dispose scope); dispose it to free them.
/// </summary>
public sealed class InMemoryDataset : IDisposable
{
    /// <summary>Creates a dataset; both tensors must have the same first dimension.</summary>
    /// <exception cref="ArgumentException">A tensor is 0-d or the sample counts differ.</exception>
    public InMemoryDataset(Tensor inputs, Tensor targets)
    {
        if (inputs.dim() == 0) throw new ArgumentException("inputs must have a sample dimension, got a 0-d tensor.", nameof(inputs));
        if (targets.dim() == 0) throw new ArgumentException("targets must have a sample dimension, got a 0-d tensor.", nameof(targets));
        if (inputs.shape[0] != targets.shape[0])
            throw new ArgumentException($"inputs has {inputs.shape[0]} samples (shape [{string.Join(", ", inputs.shape)}]) but targets has " +
                $"{targets.shape[0]} (shape [{string.Join(", ", targets.shape)}]).", nameof(targets));
        Inputs = inputs.DetachFromDisposeScope();
        Targets = targets.DetachFromDisposeScope();
    }

    /// <summary>The inputs, samples along dimension 0.</summary>
    public Tensor Inputs { get; }

    /// <summary>The targets, samples along dimension 0.</summary>
    public Tensor Targets { get; }

    /// <summary>The number of samples.</summary>
    public long Count => Inputs.shape[0];

    /// <summary>The samples at <paramref name="indices"/> (an int64 tensor or array), copied into a new dataset.</summary>
    public InMemoryDataset Subset(long[] indices)
    {
        using var scope = torch.NewDisposeScope();
        using var idx = torch.tensor(indices, device: Inputs.device);
        return new InMemoryDataset(Inputs.index_select(0, idx), Targets.index_select(0, idx.to(Targets.device)));
    }

    /// <summary>The first <paramref name="count"/> samples (all of them when count ≥ <see cref="Count"/>).</summary>
    public InMemoryDataset Take(long count)
    {
        if (count < 0) throw new ArgumentOutOfRangeException(nameof(count), count, "count must be ≥ 0.");
        long n = Math.Min(count, Count);
        using var scope = torch.NewDisposeScope();
        return new InMemoryDataset(Inputs.narrow(0, 0, n).clone(), Targets.narrow(0, 0, n).clone());
    }

    /// <summary>
    /// Splits into a training and a validation part at random (seeded): a permutation of the samples, the first
    /// <c>round(Count·validationFraction)</c> of it go to validation, the rest to training.
    /// </summary>
    /// <param name="validationFraction">In (0, 1), e.g. 0.1.</param>
    /// <param name="seed">Seed of the permutation; the same seed always gives the same split.</param>
    /// <exception cref="ArgumentOutOfRangeException">The fraction leaves one part empty.</exception>
    public (InMemoryDataset Train, InMemoryDataset Validation) Split(double validationFraction, int seed = 0)
    {
        long nVal = (long)Math.Round(Count * validationFraction);
        if (validationFraction <= 0 || validationFraction >= 1 || nVal == 0 || nVal == Count)
            throw new ArgumentOutOfRangeException(nameof(validationFraction), validationFraction,
                $"The validation fraction must leave both parts non-empty; {Count} samples × {validationFraction} = {nVal} validation samples.");
        var perm = BatchLoader.Permutation(Count, seed, 0);
        return (Subset(perm[(int)nVal..]), Subset(perm[..(int)nVal]));
    }

    /// <summary>A copy of the dataset on <paramref name="device"/> (e.g. to keep a small dataset on the GPU).</summary>
    public InMemoryDataset To(Device device) => new(Inputs.to(device), Targets.to(device));

    /// <inheritdoc/>
    public override string ToString() =>
        $"InMemoryDataset: {Count} samples, inputs [{string.Join(", ", Inputs.shape)}] {Inputs.dtype}, targets [{string.Join(", ", Targets.shape)}] {Targets.dtype}";

    /// <summary>Frees both tensors.</summary>
    public void Dispose()
    {
        Inputs.Dispose();
        Targets.Dispose();
    }
}
