using static TorchSharp.torch;

namespace Workbook.Tabular;

/// <summary>
/// Feature standardisation z = (x - mean) / std with statistics fitted ONCE, on the training rows, and then applied
/// unchanged to training, validation, test and future data. Fitting on all rows would leak the test rows'
/// statistics into training and make the evaluation optimistic. Immutable: there is no way to refit an instance.
/// The standard deviation is the population one (divide by n, like scikit-learn's StandardScaler); a constant
/// column gets std 1 so it maps to 0 instead of dividing by zero. With <c>imputeMissing</c>, NaNs are ignored when
/// fitting and replaced by 0 after scaling, i.e. by the training mean (mean imputation without leakage).
/// </summary>
public sealed class Standardizer : IDisposable
{
    /// <summary>Per-feature training mean, float64 [features].</summary>
    public Tensor Mean { get; }
    /// <summary>Per-feature training standard deviation (1 for constant columns), float64 [features].</summary>
    public Tensor Std { get; }
    /// <summary>How many rows the statistics came from.</summary>
    public long FittedRows { get; }
    /// <summary>True when NaNs are imputed with the training mean.</summary>
    public bool ImputeMissing { get; }
    /// <summary>Number of features.</summary>
    public long Features => Mean.shape[0];

    Standardizer(Tensor mean, Tensor std, long rows, bool impute)
    {
        Mean = mean.DetachFromDisposeScope();
        Std = std.DetachFromDisposeScope();
        FittedRows = rows;
        ImputeMissing = impute;
    }

    /// <summary>Fits mean and std per column of <paramref name="train"/> [rows, features]: pass the TRAINING rows only.</summary>
    /// <param name="train">Training features, [rows, features], at least 1 row.</param>
    /// <param name="imputeMissing">Ignore NaNs when fitting and replace them by the training mean when transforming.</param>
    /// <exception cref="ArgumentException">Not 2-D, no rows, NaNs without <paramref name="imputeMissing"/>, or a column with no observed value.</exception>
    public static Standardizer Fit(Tensor train, bool imputeMissing = false)
    {
        ArgumentNullException.ThrowIfNull(train);
        if (train.dim() != 2 || train.shape[0] < 1)
            throw new ArgumentException($"Standardizer.Fit expects training features [rows >= 1, features], got shape [{string.Join(", ", train.shape)}].", nameof(train));
        using var scope = NewDisposeScope();
        var x = train.detach().to_type(ScalarType.Float64);
        if (First(x.isinf()) is var (infRow, infCol))
            throw new ArgumentException($"The training features contain ±∞ (first at row {infRow}, feature column {infCol}); a feature must be finite: fix or drop those rows.", nameof(train));
        var nan = x.isnan();
        long nanCount = nan.sum().item<long>();
        if (nanCount > 0 && !imputeMissing)
            throw new ArgumentException($"The training features contain {nanCount} NaN value(s) (first at row {First(nan)!.Value.Row}, feature column {First(nan)!.Value.Column}); " +
                "pass imputeMissing: true to fill them with the training mean, or clean the data first.", nameof(train));
        var observed = (~nan).to_type(ScalarType.Float64);
        var count = observed.sum(dim: 0);
        var empty = (count == 0).nonzero();
        if (empty.shape[0] > 0)
            throw new ArgumentException($"Feature column {empty[0, 0].item<long>()} has no observed (non-NaN) value in the training rows; drop it.", nameof(train));
        var filled = x.nan_to_num(0.0);
        var mean = filled.sum(dim: 0) / count;
        var centered = (filled - mean) * observed;
        var std = (centered.pow(2).sum(dim: 0) / count).sqrt();
        std = where(std > 1e-12, std, ones_like(std));
        return new Standardizer(mean, std, train.shape[0], imputeMissing);
    }

    /// <summary>Applies the fitted statistics: (x - mean) / std, in <paramref name="x"/>'s dtype and device.</summary>
    /// <exception cref="ArgumentException">Wrong number of features, or NaNs when the standardiser does not impute.</exception>
    public Tensor Transform(Tensor x)
    {
        ArgumentNullException.ThrowIfNull(x);
        if (x.dim() != 2 || x.shape[1] != Features)
            throw new ArgumentException($"This Standardizer was fitted on {Features} features; got shape [{string.Join(", ", x.shape)}], expected [rows, {Features}].", nameof(x));
        using var scope = NewDisposeScope();
        var x64 = x.to_type(ScalarType.Float64);
        if (First(x64.isinf()) is var (infRow, infCol))
            throw new ArgumentException($"The features contain ±∞ (first at row {infRow}, feature column {infCol}); a feature must be finite.", nameof(x));
        var z = (x64 - Mean.to(x.device)) / Std.to(x.device);
        if (ImputeMissing) z = z.nan_to_num(0.0);
        else if (First(z.isnan()) is var (nanRow, nanCol))
            throw new ArgumentException($"The features contain NaN values (first at row {nanRow}, feature column {nanCol}), but this Standardizer was fitted without imputeMissing.", nameof(x));
        return z.to_type(x.dtype).MoveToOuterDisposeScope();
    }

    /// <summary>The first (row, column) where the bool matrix is true, or null.</summary>
    static (long Row, long Column)? First(Tensor mask)
    {
        using var scope = NewDisposeScope();
        if (!mask.any().item<bool>()) return null;
        var at = mask.nonzero()[0].cpu().data<long>().ToArray();
        return (at[0], at[1]);
    }

    /// <summary>Undoes <see cref="Transform"/>: z * std + mean.</summary>
    public Tensor InverseTransform(Tensor z)
    {
        ArgumentNullException.ThrowIfNull(z);
        if (z.dim() != 2 || z.shape[1] != Features)
            throw new ArgumentException($"Expected [rows, {Features}], got shape [{string.Join(", ", z.shape)}].", nameof(z));
        using var scope = NewDisposeScope();
        return (z.to_type(ScalarType.Float64) * Std.to(z.device) + Mean.to(z.device)).to_type(z.dtype).MoveToOuterDisposeScope();
    }

    /// <summary>Frees the statistics tensors.</summary>
    public void Dispose()
    {
        Mean.Dispose();
        Std.Dispose();
    }
}
