using System.Diagnostics;
using System.Text.Json.Nodes;

namespace Workbook.Engine;

/// <summary>How one notebook run went.</summary>
/// <param name="Notebook">The notebook's path.</param>
/// <param name="Ok">True when every code cell ran.</param>
/// <param name="CellsRun">Code cells executed (including a failing one).</param>
/// <param name="FailedCell">1-based index of the failing cell among all cells, or null.</param>
/// <param name="Error">The failing cell's error.</param>
/// <param name="Elapsed">Total wall time.</param>
public sealed record NotebookReport(string Notebook, bool Ok, int CellsRun, int? FailedCell, CellError? Error, TimeSpan Elapsed)
{
    /// <summary>"notebook, cell N, line L: error" for the console and CI logs.</summary>
    public string Describe() => Ok
        ? $"{Path.GetFileName(Notebook)}: ok, {CellsRun} cells in {Elapsed.TotalSeconds:F1}s"
        : $"{Notebook}, cell {FailedCell}{(Error?.Line is { } l ? $", line {l}" : "")}: {Error?.Name}: {Error?.Message}";
}

/// <summary>
/// Executes a notebook's C# cells in order in one <see cref="ScriptSession"/> and writes what they produce into
/// the notebook as nbformat 4 outputs: streams, display data (updated in place by <c>.Update</c>), execute results
/// with execution counts, errors, and per-cell timing in the cell metadata (Jupyter's <c>execution</c> fields).
/// Markdown cells are skipped. The first failing cell stops the run.
/// </summary>
public sealed class NotebookExecutor
{
    /// <summary>Longest a single cell may run (default 10 minutes).</summary>
    public TimeSpan CellTimeout { get; init; } = TimeSpan.FromMinutes(10);

    /// <summary>Progress lines ("cell 3/12 … 1.2s") go here; null for silence.</summary>
    public TextWriter? Progress { get; init; }

    /// <summary>Package restores are shared through this (and its cache).</summary>
    public PackageRestorer Restorer { get; init; } = new();

    /// <summary>Runs <paramref name="doc"/> in place; its cells get fresh outputs.</summary>
    public async Task<NotebookReport> RunAsync(NotebookDocument doc, CancellationToken cancellation = default)
    {
        var total = Stopwatch.StartNew();
        doc.ClearOutputs();
        var dir = Path.GetDirectoryName(doc.Path)!;
        var previous = Directory.GetCurrentDirectory();
        Directory.SetCurrentDirectory(dir); // as in VS Code: relative paths are the notebook's folder
        try
        {
            var session = new ScriptSession(dir, Restorer, Progress);
            var language = doc.DefaultLanguage;
            var codeCells = doc.Cells.Where(c => c.CellType == "code").ToList();
            int run = 0;
            foreach (var cell in codeCells)
            {
                var lang = cell.Language(language);
                if (lang != "csharp")
                {
                    var err = new CellError("UnsupportedLanguage", $"Cell language '{lang}' is not supported; the Workbook engine runs C# cells.", null, Array.Empty<string>());
                    WriteError(cell, err);
                    return new NotebookReport(doc.Path, false, run, cell.Index + 1, err, total.Elapsed);
                }
                run++;
                var sink = new NotebookSink(cell);
                var startedAt = DateTime.UtcNow;
                Progress?.Write($"  cell {cell.Index + 1}/{doc.Cells.Count} ");
                var result = await session.ExecuteAsync(cell.Source, sink, CellTimeout, cancellation).ConfigureAwait(false);
                cell.Json["execution_count"] = session.ExecutionCount;
                sink.Flush();
                var meta = cell.Json["metadata"] as JsonObject ?? new JsonObject();
                cell.Json["metadata"] = meta;
                meta["execution"] = new JsonObject
                {
                    ["iopub.execute_input"] = startedAt.ToString("o"),
                    ["shell.execute_reply"] = DateTime.UtcNow.ToString("o"),
                };
                meta["workbook"] = new JsonObject { ["duration_s"] = Math.Round(result.Elapsed.TotalSeconds, 3) };
                Progress?.WriteLine($"{result.Elapsed.TotalSeconds,6:F1}s{(result.Ok ? "" : "  FAILED")}");
                if (!result.Ok)
                {
                    WriteError(cell, result.Error!);
                    return new NotebookReport(doc.Path, false, run, cell.Index + 1, result.Error, total.Elapsed);
                }
            }
            return new NotebookReport(doc.Path, true, run, null, null, total.Elapsed);
        }
        finally
        {
            Directory.SetCurrentDirectory(previous);
        }
    }

    static void WriteError(NotebookCell cell, CellError error)
    {
        var outputs = cell.Json["outputs"] as JsonArray ?? new JsonArray();
        cell.Json["outputs"] = outputs;
        var traceback = new JsonArray();
        traceback.Add(error.Line is { } l ? $"Cell {cell.Index + 1}, line {l}: {error.Name}: {error.Message}" : $"Cell {cell.Index + 1}: {error.Name}: {error.Message}");
        foreach (var t in error.Traceback) traceback.Add(t);
        outputs.Add(new JsonObject { ["output_type"] = "error", ["ename"] = error.Name, ["evalue"] = error.Message, ["traceback"] = traceback });
    }

    /// <summary>Collects a cell's outputs into its JSON; display updates find their output in any earlier cell.</summary>
    sealed class NotebookSink : IOutputSink
    {
        static readonly Dictionary<string, JsonObject> Displays = new();
        readonly NotebookCell _cell;
        readonly JsonArray _outputs;
        readonly object _gate = new();

        public NotebookSink(NotebookCell cell)
        {
            _cell = cell;
            _outputs = cell.Json["outputs"] as JsonArray ?? new JsonArray();
            cell.Json["outputs"] = _outputs;
        }

        public void Stream(string name, string text)
        {
            lock (_gate)
            {
                if (_outputs.Count > 0 && _outputs[^1] is JsonObject last && last["output_type"]?.GetValue<string>() == "stream" && last["name"]?.GetValue<string>() == name)
                {
                    last["text"] = NotebookDocument.SplitLines(NotebookDocument.JoinSource(last["text"]) + text);
                    return;
                }
                _outputs.Add(new JsonObject { ["output_type"] = "stream", ["name"] = name, ["text"] = NotebookDocument.SplitLines(text) });
            }
        }

        public void Display(MimeBundle data, string displayId)
        {
            var output = new JsonObject { ["output_type"] = "display_data", ["data"] = ToJson(data), ["metadata"] = new JsonObject() };
            lock (_gate) _outputs.Add(output);
            lock (Displays) Displays[displayId] = output;
        }

        public void UpdateDisplay(MimeBundle data, string displayId)
        {
            JsonObject? output;
            lock (Displays) Displays.TryGetValue(displayId, out output);
            if (output is not null) lock (_gate) output["data"] = ToJson(data);
        }

        public void Result(MimeBundle data)
        {
            lock (_gate)
                _outputs.Add(new JsonObject
                {
                    ["output_type"] = "execute_result", ["data"] = ToJson(data), ["metadata"] = new JsonObject(),
                    ["execution_count"] = null,
                });
        }

        public void Flush()
        {
            lock (_gate)
                foreach (var o in _outputs.OfType<JsonObject>().Where(o => o["output_type"]?.GetValue<string>() == "execute_result"))
                    o["execution_count"] = _cell.Json["execution_count"]?.DeepClone();
        }

        static JsonObject ToJson(MimeBundle data)
        {
            var obj = new JsonObject();
            foreach (var (k, v) in data) obj[k] = k.StartsWith("text/", StringComparison.Ordinal) ? NotebookDocument.SplitLines(v) : v;
            return obj;
        }
    }
}
