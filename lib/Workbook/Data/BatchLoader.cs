using System.Collections;
using TorchSharp;
using static TorchSharp.torch;

namespace Workbook.Data;

/// <summary>One mini-batch: the model's input and the target the loss compares its output with.</summary>
/// <param name="Input">E.g. images <c>[B, 1, 28, 28]</c> or token ids <c>[B, T]</c>.</param>
/// <param name="Target">E.g. class ids <c>[B]</c> or next-token ids <c>[B, T]</c>.</param>
public readonly record struct Batch(Tensor Input, Tensor Target);

/// <summary>
/// Anything the <see cref="Training.Trainer"/> can train on: a fixed number of batches per epoch, and for each epoch
/// a deterministic sequence of batches (the same epoch number must give the same batches, which is what makes
/// resuming from a checkpoint exact). <see cref="BatchLoader"/> implements it for tensors in memory; a text or
/// streaming source implements it by sampling with a generator seeded from the epoch number.
/// </summary>
public interface IBatchSource
{
    /// <summary>Batches in one epoch.</summary>
    int BatchCount { get; }

    /// <summary>Samples in one epoch (for samples/s and averages).</summary>
    long SampleCount { get; }

    /// <summary>
    /// The batches of epoch <paramref name="epoch"/> (0-based). Each batch's tensors are created when the enumerator
    /// moves to it, so a consumer that opens a dispose scope before <c>MoveNext()</c> owns and frees them.
    /// </summary>
    IEnumerable<Batch> Batches(int epoch);
}

/// <summary>
/// Batches a <see cref="InMemoryDataset"/>, optionally shuffled. The order of epoch <c>e</c> is a permutation drawn
/// from a private generator seeded with (<see cref="Seed"/>, e), so it does not touch or depend on torch's global
/// RNG (dropout's): the same loader gives the same batches for the same epoch, in any run, resumed or not.
/// <c>foreach (var (x, y) in loader)</c> walks epoch 0, then 1, ... on successive loops; the
/// <see cref="Training.Trainer"/> asks for epochs by number. Batch tensors are new tensors: iterate inside a
/// dispose scope (the Trainer does) or dispose them.
/// </summary>
public sealed class BatchLoader : IBatchSource, IEnumerable<Batch>
{
    int _nextEpoch;

    /// <summary>Creates a loader.</summary>
    /// <param name="dataset">The samples.</param>
    /// <param name="batchSize">Samples per batch (the last one may be smaller unless <paramref name="dropLast"/>).</param>
    /// <param name="shuffle">A new random order every epoch (use for training, not for evaluation).</param>
    /// <param name="seed">Seed of the shuffling.</param>
    /// <param name="dropLast">Skip a final batch smaller than <paramref name="batchSize"/>.</param>
    /// <param name="device">Move every batch there (null: leave on the dataset's device).</param>
    /// <exception cref="ArgumentOutOfRangeException">batchSize &lt; 1, or no batch would come out.</exception>
    public BatchLoader(InMemoryDataset dataset, int batchSize, bool shuffle = false, int seed = 0, bool dropLast = false, Device? device = null)
    {
        if (batchSize < 1) throw new ArgumentOutOfRangeException(nameof(batchSize), batchSize, "batchSize must be ≥ 1.");
        Dataset = dataset;
        BatchSize = batchSize;
        Shuffle = shuffle;
        Seed = seed;
        DropLast = dropLast;
        Device = device;
        long n = dataset.Count;
        BatchCount = (int)(dropLast ? n / batchSize : (n + batchSize - 1) / batchSize);
        if (BatchCount == 0)
            throw new ArgumentOutOfRangeException(nameof(batchSize), batchSize, $"The dataset has {n} samples: no batch of {batchSize} with dropLast={dropLast}.");
    }

    /// <summary>The samples.</summary>
    public InMemoryDataset Dataset { get; }

    /// <summary>Samples per batch.</summary>
    public int BatchSize { get; }

    /// <summary>Whether each epoch has its own random order.</summary>
    public bool Shuffle { get; }

    /// <summary>Seed of the shuffling.</summary>
    public int Seed { get; }

    /// <summary>Whether a final short batch is skipped.</summary>
    public bool DropLast { get; }

    /// <summary>Where batches go (null: the dataset's device).</summary>
    public Device? Device { get; }

    /// <inheritdoc/>
    public int BatchCount { get; }

    /// <inheritdoc/>
    public long SampleCount => DropLast ? (long)BatchCount * BatchSize : Dataset.Count;

    /// <summary>
    /// The sample order of an epoch: a random permutation of 0..count-1 from a generator seeded with a mix of
    /// <paramref name="seed"/> and <paramref name="epoch"/> (same arguments, same permutation).
    /// </summary>
    public static long[] Permutation(long count, int seed, int epoch)
    {
        // splitmix64-style mixing so that neighbouring (seed, epoch) pairs give unrelated generator seeds.
        ulong z = (ulong)(uint)seed * 0x9E3779B97F4A7C15UL + (ulong)(uint)epoch + 1;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        z ^= z >> 31;
        using var g = new torch.Generator(z & 0x7FFF_FFFF_FFFF_FFFFUL);
        using var scope = torch.NewDisposeScope();
        return torch.randperm(count, generator: g).data<long>().ToArray();
    }

    /// <inheritdoc/>
    public IEnumerable<Batch> Batches(int epoch)
    {
        if (epoch < 0) throw new ArgumentOutOfRangeException(nameof(epoch), epoch, "epoch must be ≥ 0.");
        long n = Dataset.Count;
        long[]? order = Shuffle ? Permutation(n, Seed, epoch) : null;
        for (int b = 0; b < BatchCount; b++)
        {
            long start = (long)b * BatchSize, len = Math.Min(BatchSize, n - start);
            Tensor x, y;
            if (order is null)
            {
                // Contiguous slices are views: no copy until the device move (if any).
                x = Dataset.Inputs.narrow(0, start, len);
                y = Dataset.Targets.narrow(0, start, len);
            }
            else
            {
                using var idx = torch.tensor(order.AsSpan((int)start, (int)len).ToArray(), device: Dataset.Inputs.device);
                x = Dataset.Inputs.index_select(0, idx);
                y = Dataset.Targets.index_select(0, OnDevice(idx, Dataset.Targets.device) ? idx : idx.to(Dataset.Targets.device));
            }
            if (Device is not null && !OnDevice(x, Device)) x = x.to(Device);
            if (Device is not null && !OnDevice(y, Device)) y = y.to(Device);
            yield return new Batch(x, y);
        }
    }

    static bool OnDevice(Tensor t, Device d) => t.device_type == d.type && (d.index < 0 || t.device_index == d.index);

    /// <summary>Enumerates the next epoch's batches (epoch 0 on the first loop, then 1, 2, ...).</summary>
    public IEnumerator<Batch> GetEnumerator() => Batches(_nextEpoch++).GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    /// <inheritdoc/>
    public override string ToString() =>
        $"BatchLoader: {BatchCount} batches of {BatchSize}{(Shuffle ? $", shuffled (seed {Seed})" : "")}{(DropLast ? ", last short batch dropped" : "")} over {Dataset.Count} samples";
}
