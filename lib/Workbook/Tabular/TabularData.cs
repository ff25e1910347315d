using Microsoft.Data.Analysis;
using TorchSharp;
using static TorchSharp.torch;

namespace Workbook.Tabular;

/// <summary>What <see cref="TabularData.ToTensor"/> does with a missing (null) cell.</summary>
public enum MissingValues
{
    /// <summary>Throw, naming the column and how many cells are missing (the default: silent NaNs poison training).</summary>
    Throw,
    /// <summary>Write NaN, for a later imputation step such as <see cref="Standardizer"/> with <c>imputeMissing: true</c>.</summary>
    AsNaN,
}

/// <summary>Class labels as a tensor of indices plus the class names the indices stand for.</summary>
/// <param name="Labels">int64 tensor [rows] of class indices 0..C-1.</param>
/// <param name="Classes">Class names; <c>Classes[i]</c> is the name of index i.</param>
public sealed record EncodedLabels(Tensor Labels, IReadOnlyList<string> Classes);

/// <summary>
/// Moves tables between <see cref="DataFrame"/> (Microsoft.Data.Analysis) and TorchSharp tensors: feature columns
/// to a float tensor [rows, features], a label column to class indices, and model outputs back to a DataFrame.
/// Every failure names the column and what was expected, because a wrong column is the most common first error
/// with one's own data.
/// </summary>
public static class TabularData
{
    static readonly HashSet<Type> Numeric = new()
    {
        typeof(double), typeof(float), typeof(int), typeof(long), typeof(short), typeof(byte), typeof(sbyte),
        typeof(uint), typeof(ulong), typeof(ushort), typeof(decimal), typeof(bool),
    };

    /// <summary>True when the column holds numbers (or booleans, read as 0/1).</summary>
    public static bool IsNumeric(DataFrameColumn column) => Numeric.Contains(column.DataType);

    /// <summary>Names of the numeric columns of <paramref name="frame"/>, in order, except <paramref name="exclude"/>.</summary>
    /// <exception cref="ArgumentException">An excluded name is not a column (a typo would otherwise leak the label into the features).</exception>
    public static string[] NumericColumns(DataFrame frame, params string[] exclude)
    {
        ArgumentNullException.ThrowIfNull(frame);
        foreach (var name in exclude) Column(frame, name, nameof(exclude));
        return frame.Columns.Where(c => IsNumeric(c) && !exclude.Contains(c.Name)).Select(c => c.Name).ToArray();
    }

    /// <summary>The column called <paramref name="name"/>, or an error listing the columns there are.</summary>
    /// <exception cref="ArgumentException">No such column.</exception>
    public static DataFrameColumn Column(DataFrame frame, string name, string argument = "column")
    {
        ArgumentNullException.ThrowIfNull(frame);
        int i = frame.Columns.IndexOf(name);
        if (i < 0)
            throw new ArgumentException(
                $"Column '{name}' is not in the DataFrame. Its {frame.Columns.Count} columns are: {string.Join(", ", frame.Columns.Select(c => $"'{c.Name}'"))}.", argument);
        return frame.Columns[i];
    }

    /// <summary>
    /// Copies numeric columns into a tensor [rows, columns.Length], row-major, in the order given.
    /// </summary>
    /// <param name="frame">The table.</param>
    /// <param name="columns">Feature columns; every one must exist and be numeric.</param>
    /// <param name="missing">What to do with null cells (default: throw).</param>
    /// <param name="dtype">Element type of the result (default float32).</param>
    /// <exception cref="ArgumentException">A column is missing, not numeric, or (with <see cref="MissingValues.Throw"/>) has nulls.</exception>
    public static Tensor ToTensor(DataFrame frame, IReadOnlyList<string> columns, MissingValues missing = MissingValues.Throw, ScalarType dtype = ScalarType.Float32)
    {
        ArgumentNullException.ThrowIfNull(frame);
        ArgumentNullException.ThrowIfNull(columns);
        if (columns.Count == 0) throw new ArgumentException("At least one feature column is needed; got an empty list.", nameof(columns));
        var cols = columns.Select(n => Column(frame, n, nameof(columns))).ToArray();
        foreach (var c in cols)
        {
            if (!IsNumeric(c))
                throw new ArgumentException(
                    $"Column '{c.Name}' holds {c.DataType.Name} values, not numbers, so it cannot be a feature. " +
                    "Leave it out of the feature list, or encode it first (e.g. one-hot, or TabularData.EncodeLabels for a class column).", nameof(columns));
            if (missing == MissingValues.Throw && c.NullCount > 0)
                throw new ArgumentException(
                    $"Column '{c.Name}' has {c.NullCount} missing value(s) in {c.Length} rows. Fill them (column.FillNulls(value)), " +
                    "drop those rows (frame.DropNulls()), or pass missing: MissingValues.AsNaN and impute with a Standardizer fitted on the training rows.", nameof(columns));
        }
        long rows = frame.Rows.Count;
        int d = cols.Length;
        var data = new double[rows * d];
        for (int j = 0; j < d; j++)
        {
            var c = cols[j];
            for (long i = 0; i < rows; i++)
            {
                var v = c[i];
                data[i * d + j] = v is null ? double.NaN : v is bool b ? (b ? 1 : 0) : Convert.ToDouble(v);
            }
        }
        using var t = tensor(data, new[] { rows, (long)d }, ScalarType.Float64);
        return t.to_type(dtype);
    }

    /// <summary>
    /// Encodes a class column as indices 0..C-1. Classes are the distinct values sorted (numbers numerically,
    /// text ordinally), unless <paramref name="classes"/> fixes the order (then an unknown value is an error).
    /// </summary>
    /// <exception cref="ArgumentException">The column is missing, has nulls, or has a value outside <paramref name="classes"/>.</exception>
    public static EncodedLabels EncodeLabels(DataFrame frame, string column, IReadOnlyList<string>? classes = null)
    {
        var c = Column(frame, column, nameof(column));
        if (c.NullCount > 0)
            throw new ArgumentException($"Label column '{column}' has {c.NullCount} missing value(s); drop those rows first (frame.DropNulls()).", nameof(column));
        var values = Enumerable.Range(0, (int)c.Length).Select(i => c[i]!).ToArray();
        string Key(object v) => Convert.ToString(v, System.Globalization.CultureInfo.InvariantCulture)!;
        IReadOnlyList<string> names = classes ?? (IsNumeric(c)
            ? values.Select(Convert.ToDouble).Distinct().OrderBy(x => x).Select(x => Key(x)).ToArray()
            : values.Select(Key).Distinct().OrderBy(x => x, StringComparer.Ordinal).ToArray());
        var index = names.Select((n, i) => (n, i)).ToDictionary(p => p.n, p => (long)p.i);
        var labels = new long[values.Length];
        for (int i = 0; i < values.Length; i++)
        {
            var key = IsNumeric(c) ? Key(Convert.ToDouble(values[i])) : Key(values[i]);
            if (!index.TryGetValue(key, out labels[i]))
                throw new ArgumentException($"Label column '{column}' has value '{key}' in row {i}, which is not one of the classes {string.Join(", ", names)}.", nameof(classes));
        }
        return new EncodedLabels(tensor(labels), names);
    }

    /// <summary>Copies a tensor [rows, columns] (or [rows]) into a DataFrame of double columns with the given names.</summary>
    /// <exception cref="ArgumentException">The tensor is not 1-D/2-D, or the names do not match its column count.</exception>
    public static DataFrame ToDataFrame(Tensor values, IReadOnlyList<string> columnNames)
    {
        ArgumentNullException.ThrowIfNull(values);
        ArgumentNullException.ThrowIfNull(columnNames);
        if (values.dim() is not (1 or 2))
            throw new ArgumentException($"Expected a tensor [rows, columns] or [rows], got shape [{string.Join(", ", values.shape)}].", nameof(values));
        long cols = values.dim() == 1 ? 1 : values.shape[1];
        if (columnNames.Count != cols)
            throw new ArgumentException($"The tensor has {cols} column(s) but {columnNames.Count} name(s) were given: {string.Join(", ", columnNames)}.", nameof(columnNames));
        using var cpu = values.detach().cpu().to_type(ScalarType.Float64).reshape(values.shape[0], cols);
        var flat = cpu.data<double>().ToArray();
        long rows = values.shape[0];
        var frame = new DataFrame();
        for (int j = 0; j < cols; j++)
        {
            var col = new double[rows];
            for (long i = 0; i < rows; i++) col[i] = flat[i * cols + j];
            frame.Columns.Add(new DoubleDataFrameColumn(columnNames[j], col));
        }
        return frame;
    }

    /// <summary>The rows of <paramref name="frame"/> at <paramref name="indices"/>, in that order (e.g. a split's train rows).</summary>
    public static DataFrame Rows(DataFrame frame, IReadOnlyList<long> indices)
    {
        ArgumentNullException.ThrowIfNull(frame);
        foreach (var i in indices)
            if (i < 0 || i >= frame.Rows.Count)
                throw new ArgumentOutOfRangeException(nameof(indices), $"Row index {i} is outside the DataFrame's {frame.Rows.Count} rows.");
        return frame[new PrimitiveDataFrameColumn<long>("index", indices)];
    }

    /// <summary>Per column: its type, how many cells are missing, and the fraction missing. One row per column.</summary>
    public static DataFrame MissingReport(DataFrame frame)
    {
        ArgumentNullException.ThrowIfNull(frame);
        return new DataFrame(
            new StringDataFrameColumn("column", frame.Columns.Select(c => c.Name)),
            new StringDataFrameColumn("type", frame.Columns.Select(c => c.DataType.Name)),
            new Int64DataFrameColumn("missing", frame.Columns.Select(c => c.NullCount)),
            new DoubleDataFrameColumn("fraction", frame.Columns.Select(c => frame.Rows.Count == 0 ? 0.0 : (double)c.NullCount / frame.Rows.Count)));
    }
}
