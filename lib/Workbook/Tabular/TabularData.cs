using System.Globalization;
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
                double x = v is null ? double.NaN : v is bool b ? (b ? 1 : 0) : Convert.ToDouble(v, CultureInfo.InvariantCulture);
                // An "Infinity" or "NaN" cell parses as a number; left in, it surfaces much later as "features contain NaN".
                if (double.IsInfinity(x))
                    throw new ArgumentException($"Column '{c.Name}' has {(x > 0 ? "+∞" : "-∞")} (Infinity) in row {i}; a feature must be finite. " +
                        "Fix or drop that row, or replace the value (e.g. with a large finite number).", nameof(frame));
                if (v is not null && double.IsNaN(x) && missing == MissingValues.Throw)
                    throw new ArgumentException($"Column '{c.Name}' has NaN in row {i}. Fix or drop that row, or pass missing: MissingValues.AsNaN " +
                        "and impute with a Standardizer fitted on the training rows.", nameof(frame));
                data[i * d + j] = x;
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
            throw new ArgumentException($"Label column '{column}' has {c.NullCount} missing value(s), the first in row {FirstRow(c, v => v is null)}; " +
                "drop those rows first (frame.DropNulls()).", nameof(column));
        // DataFrame.LoadCsv reads an empty text cell as "", which would otherwise become a class of its own.
        if (!IsNumeric(c) && FirstRow(c, v => v is string text && string.IsNullOrWhiteSpace(text)) is long blank and >= 0)
            throw new ArgumentException($"Label column '{column}' is empty in row {blank}; every row needs a class. Drop or fix the rows with empty labels.", nameof(column));
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

    static long FirstRow(DataFrameColumn c, Func<object?, bool> test)
    {
        for (long i = 0; i < c.Length; i++) if (test(c[i])) return i;
        return -1;
    }

    /// <summary>
    /// Reads a CSV file (RFC 4180: a header row, <paramref name="separator"/>-separated cells, <c>"quoted"</c> cells
    /// that may hold separators, newlines and <c>""</c> for a quote) into a DataFrame of double columns (every
    /// non-empty cell a number in <paramref name="culture"/>, default invariant) and string columns (anything else);
    /// empty cells are missing (null). Unlike <c>DataFrame.LoadCsv</c>, which reads the quoted cell <c>"2,5"</c> as
    /// 25, a number written with a comma in an otherwise numeric column is an error naming the row and column, and a
    /// row with more or fewer cells than the header is an error too. Rows are numbered from 0, as in the DataFrame;
    /// the message also gives the file's line.
    /// </summary>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="InvalidDataException">An unterminated quote, a row of the wrong width, a duplicate or empty
    /// header, or an ambiguous number; the message names the file, the row and the column.</exception>
    public static DataFrame LoadCsv(string path, char separator = ',', CultureInfo? culture = null)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"CSV file not found: '{path}'.", path);
        culture ??= CultureInfo.InvariantCulture;
        var records = ReadCsv(File.ReadAllText(path), separator, path);
        if (records.Count == 0) throw new InvalidDataException($"'{path}' is empty: a CSV file needs a header row.");
        var (header, headerLine) = records[0];
        for (int j = 0; j < header.Count; j++)
        {
            if (string.IsNullOrWhiteSpace(header[j])) throw new InvalidDataException($"'{path}': column {j} of the header (line {headerLine}) has no name.");
            int first = header.IndexOf(header[j]);
            if (first != j) throw new InvalidDataException($"'{path}': the header (line {headerLine}) names two columns '{header[j]}' (columns {first} and {j}).");
        }
        var rows = records.Skip(1).ToList();
        for (int i = 0; i < rows.Count; i++)
            if (rows[i].Cells.Count != header.Count)
                throw new InvalidDataException($"'{path}': row {i} (line {rows[i].Line}) has {rows[i].Cells.Count} cells, but the header has {header.Count} columns ({string.Join(", ", header)}).");

        var frame = new DataFrame();
        for (int j = 0; j < header.Count; j++)
        {
            var numbers = new double?[rows.Count];
            bool numeric = true;
            int commaRow = -1;
            for (int i = 0; i < rows.Count && numeric; i++)
            {
                var cell = rows[i].Cells[j].Trim();
                if (cell.Length == 0) continue;
                if (double.TryParse(cell, NumberStyles.Float, culture, out var x)) numbers[i] = x;
                else if (double.TryParse(cell, NumberStyles.Float | NumberStyles.AllowThousands, culture, out _)
                    || double.TryParse(cell.Replace(',', '.'), NumberStyles.Float, CultureInfo.InvariantCulture, out _))
                { if (commaRow < 0) commaRow = i; }
                else numeric = false;
            }
            if (numeric && commaRow >= 0)
                throw new InvalidDataException($"'{path}': row {commaRow} (line {rows[commaRow].Line}), column '{header[j]}' holds \"{rows[commaRow].Cells[j]}\", " +
                    $"which is not a number in the {(culture.Name.Length == 0 ? "invariant" : culture.Name)} culture (a decimal comma or a thousands separator?) " +
                    "although the column's other cells are numbers. Write it as 2.5 (or 2500), or pass the file's culture.");
            frame.Columns.Add(numeric
                ? new DoubleDataFrameColumn(header[j], numbers)
                : new StringDataFrameColumn(header[j], rows.Select(r => r.Cells[j].Length == 0 ? null : r.Cells[j])));
        }
        return frame;
    }

    /// <summary>RFC 4180 records with the file line each starts on (1-based); blank lines are skipped.</summary>
    static List<(List<string> Cells, int Line)> ReadCsv(string text, char separator, string path)
    {
        var records = new List<(List<string>, int)>();
        var cells = new List<string>();
        var cell = new System.Text.StringBuilder();
        int line = 1, recordLine = 1, quoteLine = 0;
        bool quoted = false, wasQuoted = false;
        void EndCell() { cells.Add(wasQuoted ? cell.ToString() : cell.ToString().Trim()); cell.Clear(); wasQuoted = false; }
        void EndRecord()
        {
            EndCell();
            if (!(cells.Count == 1 && cells[0].Length == 0)) records.Add((cells, recordLine));
            cells = new List<string>();
        }
        if (text.Length > 0 && text[0] == '\uFEFF') text = text[1..]; // a UTF-8 byte order mark
        for (int i = 0; i < text.Length; i++)
        {
            char ch = text[i];
            if (quoted)
            {
                if (ch == '"' && i + 1 < text.Length && text[i + 1] == '"') { cell.Append('"'); i++; }
                else if (ch == '"') quoted = false;
                else { if (ch == '\n') line++; cell.Append(ch); }
            }
            else if (ch == '"' && cell.ToString().Trim().Length == 0) { quoted = wasQuoted = true; cell.Clear(); quoteLine = line; }
            else if (ch == separator) EndCell();
            else if (ch == '\n' || ch == '\r')
            {
                if (ch == '\r' && i + 1 < text.Length && text[i + 1] == '\n') i++;
                EndRecord();
                recordLine = ++line;
            }
            else cell.Append(ch);
        }
        if (quoted) throw new InvalidDataException($"'{path}': the quote opened on line {quoteLine} is never closed.");
        EndRecord();
        return records;
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
