using static TorchSharp.torch;

namespace Workbook.Tabular;

/// <summary>Row indices of one split: train on <see cref="Train"/>, evaluate on <see cref="Test"/>.</summary>
/// <param name="Train">Training row indices, ascending.</param>
/// <param name="Test">Held-out row indices, ascending.</param>
public sealed record Split(long[] Train, long[] Test)
{
    /// <summary>The indices as an int64 tensor, for <c>x.index_select(0, ...)</c>.</summary>
    public static Tensor ToTensor(long[] indices) => tensor(indices);
}

/// <summary>
/// Stratified splits: every class keeps (as nearly as possible) its share in every part, so a rare class cannot
/// vanish from a test fold and the folds' scores are comparable. Seeded, so a split is reproducible.
/// </summary>
public static class Splits
{
    /// <summary>A stratified train/test split: about <paramref name="testFraction"/> of each class goes to the test part.</summary>
    /// <param name="labels">Class index (or any class key) of each row.</param>
    /// <param name="testFraction">Fraction of each class held out, in (0, 1).</param>
    /// <param name="seed">Seed of the shuffle.</param>
    /// <exception cref="ArgumentException">Fraction outside (0,1), or a class with fewer than 2 rows (it cannot be in both parts).</exception>
    public static Split StratifiedSplit(long[] labels, double testFraction = 0.2, int seed = 42)
    {
        ArgumentNullException.ThrowIfNull(labels);
        if (!(testFraction > 0 && testFraction < 1))
            throw new ArgumentException($"testFraction must be between 0 and 1 (exclusive), got {testFraction}.", nameof(testFraction));
        var rng = new Random(seed);
        var train = new List<long>();
        var test = new List<long>();
        foreach (var (cls, rows) in ByClass(labels, rng))
        {
            if (rows.Count < 2)
                throw new ArgumentException($"Class {cls} has {rows.Count} row(s); a stratified split needs at least 2 per class.", nameof(labels));
            int nTest = Math.Clamp((int)Math.Round(rows.Count * testFraction), 1, rows.Count - 1);
            test.AddRange(rows.Take(nTest));
            train.AddRange(rows.Skip(nTest));
        }
        return new Split(train.Order().ToArray(), test.Order().ToArray());
    }

    /// <summary>
    /// Stratified k-fold: each row is in exactly one test fold; each class is dealt round-robin over the folds
    /// (continuing where the previous class stopped), so fold sizes differ by at most one and class shares by at most one row.
    /// </summary>
    /// <param name="labels">Class of each row.</param>
    /// <param name="k">Number of folds, at least 2.</param>
    /// <param name="seed">Seed of the shuffle.</param>
    /// <exception cref="ArgumentException">k &lt; 2, or some class has fewer than k rows (a fold would miss it).</exception>
    public static IReadOnlyList<Split> StratifiedKFold(long[] labels, int k = 5, int seed = 42)
    {
        ArgumentNullException.ThrowIfNull(labels);
        if (k < 2) throw new ArgumentException($"k must be at least 2, got {k}.", nameof(k));
        var rng = new Random(seed);
        var folds = Enumerable.Range(0, k).Select(_ => new List<long>()).ToArray();
        int next = 0;
        foreach (var (cls, rows) in ByClass(labels, rng))
        {
            if (rows.Count < k)
                throw new ArgumentException($"Class {cls} has {rows.Count} row(s), fewer than k = {k} folds: use k <= {rows.Count} or gather more rows of that class.", nameof(labels));
            foreach (var r in rows) { folds[next].Add(r); next = (next + 1) % k; }
        }
        var all = Enumerable.Range(0, labels.Length).Select(i => (long)i).ToArray();
        return folds.Select(f =>
        {
            var test = f.Order().ToArray();
            var inTest = test.ToHashSet();
            return new Split(all.Where(i => !inTest.Contains(i)).ToArray(), test);
        }).ToArray();
    }

    /// <summary>Labels tensor [rows] (any integer dtype) as an array for the split functions.</summary>
    /// <exception cref="ArgumentException">The tensor is not 1-D.</exception>
    public static long[] LabelArray(Tensor labels)
    {
        ArgumentNullException.ThrowIfNull(labels);
        if (labels.dim() != 1) throw new ArgumentException($"Labels must be 1-D [rows], got shape [{string.Join(", ", labels.shape)}].", nameof(labels));
        using var l = labels.cpu().to_type(ScalarType.Int64);
        return l.data<long>().ToArray();
    }

    /// <summary>Stratified split of a labels tensor.</summary>
    public static Split StratifiedSplit(Tensor labels, double testFraction = 0.2, int seed = 42) => StratifiedSplit(LabelArray(labels), testFraction, seed);

    /// <summary>Stratified k-fold of a labels tensor.</summary>
    public static IReadOnlyList<Split> StratifiedKFold(Tensor labels, int k = 5, int seed = 42) => StratifiedKFold(LabelArray(labels), k, seed);

    // Rows of each class (classes in ascending order), each list shuffled with the seeded generator.
    static IEnumerable<(long Class, List<long> Rows)> ByClass(long[] labels, Random rng)
    {
        if (labels.Length == 0) throw new ArgumentException("No labels: the dataset is empty.", nameof(labels));
        foreach (var g in Enumerable.Range(0, labels.Length).GroupBy(i => labels[i]).OrderBy(g => g.Key))
        {
            var rows = g.Select(i => (long)i).ToArray();
            rng.Shuffle(rows);
            yield return (g.Key, rows.ToList());
        }
    }
}
