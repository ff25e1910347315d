using System.Text.Json.Nodes;
using static Workbook.Tests.Runner.NotebookFixture;

namespace Workbook.Tests.Runner;

/// <summary>
/// Runs each fixture notebook twice on the pinned kernel: through the runner (stdio, as VS Code Polyglot drives
/// it) and through Jupyter's nbclient with the installed kernelspec (as JupyterLab drives it), once each per test
/// run. Each fixture must get the same verdict from both, and a failure the same message: a runner that stands in
/// for the kernel must never be more lenient than the kernel.
/// </summary>
public sealed class FidelityRuns
{
    /// <summary>Fixture file name → cells.</summary>
    public static readonly (string Name, string[] Cells)[] Fixtures =
    [
        ("relative-source.ipynb", ["#i \"nuget: ../artifacts/packages\"\n#r \"nuget: Workbook, 0.1.0\""]),
        ("no-using-system-io.ipynb", ["var text = File.ReadAllText(\"NuGet.config\");\ntext.Length"]),
        ("missing-package.ipynb", ["#r \"nuget: Workbook.NoSuchPackage, 9.9.9\""]),
        ("runtime-error.ipynb", ["int Ratio(int a, int b) => a / b;", "var n = 3;\nvar m = 0;\nvar r = Ratio(n, m);\nr"]),
        ("display-update.ipynb", ["var view = display(\"first\");\nview.Update(\"second\");"]),
        ("chart-and-dataframe.ipynb",
        [
            FirstCell,
            "Plot.Line(new double[] { 0, 1, 2 }, new double[] { 1, 4, 9 }, title: \"squares\")",
            "using Microsoft.Data.Analysis;\nnew DataFrame(new DoubleDataFrameColumn(\"v\", new[] { 1.5, 2.5 }))",
            "var live = Notebook.Display(\"starting\");\nfor (int i = 1; i <= 3; i++) live.Update($\"step {i} of 3\");",
        ]),
        ("variables-across-cells.ipynb", ["var answer = 41;", "md:Between the two cells, a markdown cell.", "answer + 1"]),
    ];

    /// <summary>The fixture that outlives the time limit, run with its own short limit.</summary>
    public static readonly (string Name, string[] Cells) Slow =
        ("cell-timeout.ipynb", ["var started = DateTime.UtcNow;", "while (true) { System.Threading.Thread.Sleep(50); }", "\"never reached\""]);

    /// <summary>Seconds the slow fixture may run per cell.</summary>
    public const int SlowTimeout = 8;

    public FidelityRuns()
    {
        var dir = TempDir();
        var fixtures = Fixtures.Select(f => Write(dir, f.Name, f.Cells)).ToList();
        var slowDir = TempDir();
        var slow = Write(slowDir, Slow.Name, Slow.Cells);

        RunnerOut = Path.Combine(dir, "out");
        (RunnerExit, RunnerOutput) = RunRunner(TimeSpan.FromMinutes(10), dir, "--out", RunnerOut, "--keep-going", "--no-html", "--profile", "Quick");
        SlowOut = Path.Combine(slowDir, "out");
        (SlowExit, SlowOutput) = RunRunner(TimeSpan.FromMinutes(3), slow, "--out", SlowOut, "--no-html", "--cell-timeout", SlowTimeout.ToString());

        Jupyter = RunJupyter(fixtures, 300, Path.Combine(dir, "jupyter"), TimeSpan.FromMinutes(10));
        foreach (var (k, v) in RunJupyter([slow], SlowTimeout, Path.Combine(slowDir, "jupyter"), TimeSpan.FromMinutes(3))) Jupyter[k] = v;
        Paths = fixtures.Append(slow).ToDictionary(p => Path.GetFileName(p), p => p);
    }

    public string RunnerOut { get; }
    public int RunnerExit { get; }
    public string RunnerOutput { get; }
    public string SlowOut { get; }
    public int SlowExit { get; }
    public string SlowOutput { get; }
    public Dictionary<string, JupyterRun> Jupyter { get; }
    public Dictionary<string, string> Paths { get; }

    /// <summary>The runner's report entry of a fixture.</summary>
    public JsonObject Runner(string name) =>
        ReportOf(Report(name == Slow.Name ? SlowOut : RunnerOut), name);

    /// <summary>The runner's executed copy of a fixture.</summary>
    public JsonObject RunnerNotebook(string name) =>
        Load(Path.Combine(name == Slow.Name ? SlowOut : RunnerOut, "notebooks", name));

    /// <summary>nbclient's verdict on a fixture.</summary>
    public JupyterRun JupyterOf(string name) => Jupyter[Paths[name]];
}

public class FidelityTests(FidelityRuns runs) : IClassFixture<FidelityRuns>
{
    /// <summary>Same verdict (ok or failed, and at which cell) from both front ends; a failure's message appears in both.</summary>
    void SameVerdict(string name, bool expectOk)
    {
        var runner = runs.Runner(name);
        var jupyter = runs.JupyterOf(name);
        var context = $"{name}\nrunner: {Pretty(runner)}\nnbclient: ok={jupyter.Ok} kind={jupyter.Kind} cell={jupyter.Cell}\n{jupyter.Text}";
        Assert.True(runner["ok"]!.GetValue<bool>() == expectOk, $"runner verdict differs from the expected one\n{context}");
        Assert.True(jupyter.Ok == expectOk, $"nbclient verdict differs from the expected one\n{context}");
        if (expectOk) return;
        Assert.True(runner["failed_cell"]!.GetValue<int>() == jupyter.Cell + 1, $"the two stopped at different cells\n{context}");
        // The kernel's own words reach the reader in both: the runner's message is part of what Jupyter showed.
        var message = runner["message"]!.GetValue<string>();
        if (runner["error"]!.GetValue<string>() != "Timeout")
            Assert.True(Normalise(jupyter.Text).Contains(Normalise(message), StringComparison.Ordinal), $"the runner's message is not what the kernel said in Jupyter\n{context}");
    }

    // Whitespace aside, and the restore's per-process scratch project (…/nuget/Projects/<pid>--<guid>/…), the same words.
    static string Normalise(string s) => System.Text.RegularExpressions.Regex.Replace(
        string.Join(' ', s.Split((char[])[' ', '\n', '\r', '\t'], StringSplitOptions.RemoveEmptyEntries)), @"Projects/[^/]+/", "Projects/*/");

    [Fact]
    public void RelativePackageSourceIsRejectedAsTheKernelRejectsIt()
    {
        SameVerdict("relative-source.ipynb", expectOk: false);
        Assert.Contains("Invalid URI", runs.Runner("relative-source.ipynb")["message"]!.GetValue<string>());
    }

    [Fact]
    public void SystemIoIsNotImportedByDefault()
    {
        SameVerdict("no-using-system-io.ipynb", expectOk: false);
        var r = runs.Runner("no-using-system-io.ipynb");
        Assert.Equal("CompilationError", r["error"]!.GetValue<string>());
        Assert.Equal(1, r["line"]!.GetValue<int>());
        Assert.Contains("CS0103: The name 'File' does not exist", r["message"]!.GetValue<string>());
    }

    [Fact]
    public void MissingPackageFailsTheCell()
    {
        SameVerdict("missing-package.ipynb", expectOk: false);
        Assert.Contains("Workbook.NoSuchPackage", runs.Runner("missing-package.ipynb")["message"]!.GetValue<string>());
    }

    [Fact]
    public void RuntimeErrorNamesTheCellAndTheException()
    {
        SameVerdict("runtime-error.ipynb", expectOk: false);
        var r = runs.Runner("runtime-error.ipynb");
        Assert.Equal(2, r["failed_cell"]!.GetValue<int>());
        Assert.Equal("System.DivideByZeroException", r["error"]!.GetValue<string>());
        // The kernel compiles cells without debug information, so neither front end can name the line.
        Assert.Null(r["line"]?.GetValue<int?>());
        Assert.Contains("runtime-error.ipynb, cell 2: System.DivideByZeroException: Attempted to divide by zero.", runs.RunnerOutput);
    }

    [Fact]
    public void DisplayUpdateBehavesAsInTheKernel()
    {
        SameVerdict("display-update.ipynb", expectOk: true);
        // The kernel's display(x) returns a handle with a new id, so Update adds an output in VS Code (the runner
        // follows VS Code) and changes nothing in JupyterLab. Notebook.Display (tested below) keeps one output.
        var shown = Outputs(runs.RunnerNotebook("display-update.ipynb"), 0).Select(o => MimeText(o, "text/plain")).ToList();
        Assert.Equal(["first", "second"], shown);
        var jupyter = Outputs(Load(runs.JupyterOf("display-update.ipynb").Executed), 0)
            .Where(o => o["output_type"]!.GetValue<string>() == "display_data" && o["data"]?["text/plain"] is not null)
            .Select(o => MimeText(o, "text/plain")).ToList();
        Assert.Equal(["first"], jupyter);
    }

    [Fact]
    public void ChartsAndDataFramesRenderOfflineInBothFrontEnds()
    {
        SameVerdict("chart-and-dataframe.ipynb", expectOk: true);
        foreach (var nb in new[] { runs.RunnerNotebook("chart-and-dataframe.ipynb"), Load(runs.JupyterOf("chart-and-dataframe.ipynb").Executed) })
        {
            var chart = Outputs(nb, 1).Select(o => MimeText(o, "text/html")).Single(h => h.Length > 0);
            Assert.Contains("Plotly.newPlot", chart);
            Assert.Contains("data-wb-plotly", chart);        // plotly.js travels with the first chart
            Assert.DoesNotMatch("<script[^>]*src=", chart);   // nothing loaded from a CDN (Plotly.NET.Interactive's way)
            Assert.DoesNotContain("require.config", chart);
            Assert.DoesNotContain("dni-treeview", chart);    // not shown as an object tree
            Assert.Contains("\"squares\"", chart);
            var table = Outputs(nb, 2).Select(o => MimeText(o, "text/html")).Single(h => h.Length > 0);
            Assert.Contains("wb-dataframe", table);
            Assert.Contains("2.5", table);
        }
        // Notebook.Display updates its own output in place: one output, in its final state.
        var live = Outputs(runs.RunnerNotebook("chart-and-dataframe.ipynb"), 3).Select(o => MimeText(o, "text/plain")).ToList();
        Assert.Equal(["step 3 of 3"], live);
    }

    [Fact]
    public void VariablesCarryAcrossCells()
    {
        SameVerdict("variables-across-cells.ipynb", expectOk: true);
        var result = Outputs(runs.RunnerNotebook("variables-across-cells.ipynb"), 2).Single(o => o["output_type"]!.GetValue<string>() == "execute_result");
        // The kernel formats an int as HTML plain text, in both front ends.
        Assert.Contains("<pre>42</pre>", MimeText(result, "text/html"));
        Assert.Equal(2, result["execution_count"]!.GetValue<int>());
    }

    [Fact]
    public void ACellThatOutlivesTheTimeLimitFailsTheNotebook()
    {
        var r = runs.Runner(FidelityRuns.Slow.Name);
        var j = runs.JupyterOf(FidelityRuns.Slow.Name);
        Assert.True(!r["ok"]!.GetValue<bool>() && r["error"]!.GetValue<string>() == "Timeout" && r["failed_cell"]!.GetValue<int>() == 2, Pretty(r));
        Assert.True(!j.Ok && j.Kind == "timeout" && j.Cell == 1, $"nbclient: {j}");
        Assert.Equal(1, runs.SlowExit);
        Assert.Contains($"time limit of {FidelityRuns.SlowTimeout} s", runs.SlowOutput);
    }

    [Fact]
    public void TheRunnerExitsNonZeroWhenAFixtureFailsAndValidNotebooksComeOut()
    {
        Assert.Equal(1, runs.RunnerExit);
        Assert.Contains($"3 of {FidelityRuns.Fixtures.Length} notebooks ran", runs.RunnerOutput);
        foreach (var (name, _) in FidelityRuns.Fixtures) ValidateNbformat(Path.Combine(runs.RunnerOut, "notebooks", name));
    }
}
