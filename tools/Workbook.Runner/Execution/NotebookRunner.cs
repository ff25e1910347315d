using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using Microsoft.DotNet.Interactive.Documents;
using Microsoft.DotNet.Interactive.Documents.Jupyter;
using Workbook.Runner.Kernel;

namespace Workbook.Runner.Execution;

/// <summary>Where and why a notebook stopped.</summary>
/// <param name="Cell">1-based position of the failing cell among all cells (as a notebook editor counts them).</param>
/// <param name="Line">1-based line in the cell, where the kernel reports one (compilation errors).</param>
/// <param name="Name">The error's kind: the exception type, <c>CompilationError</c>, <c>PackageRestoreError</c>, <c>Timeout</c> or <c>KernelExited</c>.</param>
/// <param name="Message">The first line of the kernel's message.</param>
/// <param name="Traceback">The whole message, line by line.</param>
public sealed record CellFailure(int Cell, int? Line, string Name, string Message, IReadOnlyList<string> Traceback)
{
    /// <summary>"cell 3, line 2: CompilationError: …".</summary>
    public override string ToString() => $"cell {Cell}{(Line is { } l ? $", line {l}" : "")}: {Name}: {Message}";
}

/// <summary>How one notebook run went.</summary>
/// <param name="Notebook">The notebook's path.</param>
/// <param name="Ok">Every code cell ran without error.</param>
/// <param name="CellsRun">Code cells submitted, the failing one included.</param>
/// <param name="CodeCells">Code cells in the notebook.</param>
/// <param name="Elapsed">Wall time, kernel start included.</param>
/// <param name="KernelStart">Time until the fresh kernel was ready.</param>
/// <param name="Failure">The first failure, if any.</param>
public sealed record NotebookResult(string Notebook, bool Ok, int CellsRun, int CodeCells, TimeSpan Elapsed, TimeSpan KernelStart, CellFailure? Failure)
{
    /// <summary>"notebook, cell N, line L: error" for consoles and CI logs.</summary>
    public string Describe() => Ok
        ? $"{Path.GetFileName(Notebook)}: ok, {CellsRun} cells in {Elapsed.TotalSeconds:F1}s"
        : $"{Notebook}, {Failure}";
}

/// <summary>
/// Runs a notebook top to bottom on a fresh kernel, as a reader does with "Run All": each code cell is submitted
/// unchanged to the kernel its metadata names, in order, and the first failure stops the run. The executed
/// document carries the outputs, execution counts and Jupyter's per-cell timing metadata.
/// </summary>
public sealed partial class NotebookRunner
{
    /// <summary>The kernel tool.</summary>
    public required KernelTool Tool { get; init; }

    /// <summary>Longest a single cell may run.</summary>
    public TimeSpan CellTimeout { get; init; } = TimeSpan.FromMinutes(10);

    /// <summary>Variables for the kernel process (null removes one).</summary>
    public IReadOnlyDictionary<string, string?> Environment { get; init; } = new Dictionary<string, string?>();

    /// <summary>Progress lines ("  cell 3/12   1.2s") go here; null for silence.</summary>
    public TextWriter? Progress { get; init; }

    /// <summary>The kernels this runner knows how to name when a notebook's metadata lists none.</summary>
    static readonly KernelInfoCollection Kernels = new()
    {
        new KernelInfo("csharp", "C#", ["c#", "C#", "cs"]),
        new KernelInfo("fsharp", "F#", ["f#", "F#", "fs"]),
        new KernelInfo("pwsh", "PowerShell", ["powershell"]),
        new KernelInfo("html", "HTML"),
        new KernelInfo("javascript", "JavaScript", ["js"]),
        new KernelInfo("mermaid", "Mermaid"),
        new KernelInfo("markdown", "Markdown", ["md"]),
    };

    /// <summary>Reads an .ipynb file with the kernel's own reader.</summary>
    /// <exception cref="InvalidDataException">Not a readable notebook.</exception>
    public static InteractiveDocument Read(string path)
    {
        try
        {
            using var stream = File.OpenRead(path);
            return Notebook.Read(stream, Kernels);
        }
        catch (Exception e) when (e is System.Text.Json.JsonException or InvalidOperationException or FormatException)
        {
            throw new InvalidDataException($"'{path}' is not a readable .ipynb notebook: {e.Message}", e);
        }
    }

    /// <summary>Writes an executed document as .ipynb.</summary>
    public static void Write(InteractiveDocument document, string path)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        File.WriteAllText(path, Notebook.ToJupyterJson(document) + "\n");
    }

    /// <summary>Runs <paramref name="path"/>; returns the result and the executed document.</summary>
    public async Task<(NotebookResult Result, InteractiveDocument Executed)> RunAsync(string path, CancellationToken cancellation = default)
    {
        var clock = Stopwatch.StartNew();
        var doc = Read(path);
        var cells = doc.Elements;
        int codeCells = cells.Count(c => c.KernelName != "markdown"), run = 0;
        var outputs = new CellOutputs();
        foreach (var c in cells.Where(c => c.KernelName != "markdown")) { c.Outputs.Clear(); c.ExecutionOrder = 0; }

        KernelSession kernel;
        try
        {
            kernel = await KernelSession.StartAsync(Tool, Path.GetDirectoryName(Path.GetFullPath(path))!, Environment, cancellation: cancellation).ConfigureAwait(false);
        }
        catch (InvalidOperationException e)
        {
            var failure = new CellFailure(0, null, "KernelStartFailed", FirstLine(e.Message), Lines(e.Message));
            return (new NotebookResult(path, false, 0, codeCells, clock.Elapsed, clock.Elapsed, failure), doc);
        }
        await using (kernel.ConfigureAwait(false))
        {
            kernel.UnroutedEvent += outputs.Add;
            kernel.StrayOutput += line => Progress?.WriteLine($"  kernel: {line}");
            var defaultKernel = DefaultKernel(doc);
            for (int i = 0; i < cells.Count; i++)
            {
                var cell = cells[i];
                if (cell.KernelName == "markdown") continue;
                run++;
                outputs.Begin(cell, run);
                outputs.Errors.Clear();
                var started = DateTime.UtcNow;
                Progress?.Write($"  cell {i + 1}/{cells.Count} ");
                var result = await kernel.SubmitAsync(cell.Contents, cell.KernelName ?? defaultKernel, outputs.Add, CellTimeout, cancellation).ConfigureAwait(false);
                cell.Metadata ??= new Dictionary<string, object>();
                cell.Metadata["execution"] = new Dictionary<string, object>
                {
                    ["iopub.execute_input"] = started.ToString("o", CultureInfo.InvariantCulture),
                    ["shell.execute_reply"] = DateTime.UtcNow.ToString("o", CultureInfo.InvariantCulture),
                };
                Progress?.WriteLine($"{result.Elapsed.TotalSeconds,6:F1}s{(result.Outcome == SubmissionOutcome.Succeeded ? "" : "  FAILED")}");
                if (result.Outcome == SubmissionOutcome.Succeeded) continue;
                var failure = Describe(result, i + 1, outputs.Errors);
                outputs.Fail(failure);
                return (new NotebookResult(path, false, run, codeCells, clock.Elapsed, kernel.StartupTime, failure), doc);
            }
            return (new NotebookResult(path, true, run, codeCells, clock.Elapsed, kernel.StartupTime, null), doc);
        }
    }

    static string DefaultKernel(InteractiveDocument doc) =>
        doc.GetDefaultKernelName() is { Length: > 0 } name && name != "markdown" ? name : "csharp";

    /// <summary>Names a failure from what the kernel said: compilation diagnostics carry the line.</summary>
    internal static CellFailure Describe(SubmissionResult result, int cell, IReadOnlyList<Microsoft.DotNet.Interactive.Diagnostic> errors)
    {
        var message = result.Message ?? "";
        switch (result.Outcome)
        {
            case SubmissionOutcome.TimedOut: return new CellFailure(cell, null, "Timeout", message, Lines(message));
            case SubmissionOutcome.KernelExited: return new CellFailure(cell, null, "KernelExited", FirstLine(message), Lines(message));
        }
        if (errors.Count > 0)
            return new CellFailure(cell, errors[0].LinePositionSpan.Start.Line + 1, "CompilationError",
                $"{errors[0].Code}: {errors[0].Message}", Lines(message));
        var first = FirstLine(message);
        // NuGet's own words: "…/Project.fsproj : error NU1101: Unable to find package …".
        if (first.Contains(": error NU", StringComparison.Ordinal) || first.StartsWith("PackageManagement Error", StringComparison.Ordinal))
            return new CellFailure(cell, null, "PackageRestoreError", first, Lines(message));
        // "System.IO.FileNotFoundException: Could not find …\n   at …": the type, then the message.
        var m = ExceptionLine().Match(first);
        return m.Success
            ? new CellFailure(cell, null, m.Groups["type"].Value, m.Groups["message"].Value, Lines(message))
            : new CellFailure(cell, null, "Error", first, Lines(message));
    }

    [GeneratedRegex(@"^(?<type>[A-Za-z_][\w.`]*(Exception|Error))(: (?<message>.*))?$")]
    private static partial Regex ExceptionLine();

    static string FirstLine(string text) => text.Split('\n', 2)[0].TrimEnd('\r');

    static string[] Lines(string text) => text.Replace("\r", "").Split('\n');
}
