using System.Text.Json.Nodes;
using static Workbook.Tests.Runner.NotebookFixture;

namespace Workbook.Tests.Runner;

/// <summary>The runner executable, run as users run it, on every notebook of the workbook and on small fixtures.</summary>
public class RunnerTests
{
    static string Notebooks => Path.Combine(TestSetup.RepoRoot, "notebooks");

    [Fact]
    public async Task EveryNotebookRunsTopToBottomOnTheRealKernelInQuickProfile()
    {
        var outDir = Path.Combine(Path.GetTempPath(), "wb-all-" + Guid.NewGuid().ToString("N"));
        var (code, output) = RunRunner(TimeSpan.FromMinutes(40), Notebooks, "--out", outDir, "--profile", "Quick", "--keep-going");
        Assert.True(code == 0, output);
        var report = Report(outDir);
        Assert.Equal("Quick", report["profile"]!.GetValue<string>());
        Assert.StartsWith("microsoft.dotnet-interactive ", report["kernel"]!.GetValue<string>());
        var expected = Directory.GetFiles(Notebooks, "*.ipynb", SearchOption.AllDirectories).Length;
        Assert.Equal(expected, report["notebooks"]!.AsArray().Count);
        foreach (var nb in report["notebooks"]!.AsArray().OfType<JsonObject>())
        {
            Assert.True(nb["ok"]!.GetValue<bool>(), Pretty(nb));
            Assert.Equal(nb["code_cells"]!.GetValue<int>(), nb["cells"]!.GetValue<int>());
            Assert.InRange(nb["kernel_start_s"]!.GetValue<double>(), 0.1, 120);
            var executed = nb["executed"]!.GetValue<string>();
            ValidateNbformat(executed);
            // Every code cell ran: it has an execution count and Jupyter's timing metadata.
            foreach (var cell in Load(executed)["cells"]!.AsArray().OfType<JsonObject>().Where(c => c["cell_type"]!.GetValue<string>() == "code"))
            {
                Assert.NotNull(cell["execution_count"]?.GetValue<int?>());
                Assert.NotNull(cell["metadata"]?["execution"]?["shell.execute_reply"]);
            }
        }
        // The site of the whole workbook, as a reader sees it in a browser (math typeset, code highlighted, charts drawn, offline).
        Assert.Contains("0 formula error(s)", output);
        var site = await Site.SiteChecks.CheckAsync(Path.Combine(outDir, "site"));
        Assert.True(!site.Failures.Any(), site.ToString());
    }

    [Fact]
    public void CommittedNotebooksCarryNoOutputsAndUseTheCSharpKernel()
    {
        foreach (var path in Directory.GetFiles(Notebooks, "*.ipynb", SearchOption.AllDirectories))
        {
            var nb = Load(path);
            Assert.True(nb["metadata"]?["kernelspec"]?["name"]?.GetValue<string>() == ".net-csharp", $"{path}: kernelspec is not '.net-csharp'.");
            foreach (var cell in nb["cells"]!.AsArray().OfType<JsonObject>().Where(c => c["cell_type"]!.GetValue<string>() == "code"))
            {
                Assert.True((cell["outputs"] as JsonArray)?.Count is null or 0, $"{path} carries outputs: clear them before committing (executed copies belong in the runner's output folder).");
                Assert.Null(cell["execution_count"]?.GetValue<int?>());
            }
        }
    }

    [Fact]
    public void EveryNotebookStartsWithTheSameFirstCellAndNoRelativePackageSource()
    {
        foreach (var path in Directory.GetFiles(Notebooks, "*.ipynb", SearchOption.AllDirectories))
        {
            var cells = Load(path)["cells"]!.AsArray().OfType<JsonObject>().ToList();
            var first = cells.First(c => c["cell_type"]!.GetValue<string>() == "code");
            Assert.True(Join(first["source"]) == FirstCell, $"{path}: the first code cell is not the workbook's first cell:\n{Join(first["source"])}");
            foreach (var c in cells)
                Assert.DoesNotMatch(@"#i\s+""nuget:\s*\.", Join(c["source"]));
        }
        // The kernel restores from notebooks/NuGet.config, which adds the local feed relative to itself.
        var config = File.ReadAllText(Path.Combine(Notebooks, "NuGet.config"));
        Assert.Contains("value=\"../artifacts/packages\"", config);
    }

    [Fact]
    public void BadArgumentsAndMissingNotebooksExitWithTwo()
    {
        var (code, output) = RunRunner(TimeSpan.FromMinutes(2), "--profile", "Fast");
        Assert.Equal(2, code);
        Assert.Contains("--profile must be Quick or Full, got 'Fast'", output);
        (code, output) = RunRunner(TimeSpan.FromMinutes(2), "/nonexistent/notebook.ipynb");
        Assert.Equal(2, code);
        Assert.Contains("No notebook or folder '/nonexistent/notebook.ipynb'", output);
        (code, output) = RunRunner(TimeSpan.FromMinutes(2), "--cell-timeout", "soon");
        Assert.Equal(2, code);
        Assert.Contains("--cell-timeout must be a positive number of seconds, got 'soon'", output);
    }

    [Fact]
    public void ACorruptNotebookIsReportedAndTheOthersStillRun()
    {
        var dir = TempDir();
        File.WriteAllText(Path.Combine(dir, "a-corrupt.ipynb"), "{ \"cells\": [ { \"cell_type\": ");
        Write(dir, "b-good.ipynb", "1 + 1");
        var (code, output) = RunRunner(TimeSpan.FromMinutes(3), dir, "--out", Path.Combine(dir, "out"), "--keep-going", "--no-html");
        Assert.Equal(1, code);
        Assert.Contains("a-corrupt.ipynb' is not a readable .ipynb notebook", output);
        Assert.Contains("1 of 2 notebooks ran", output);
        Assert.True(ReportOf(Report(Path.Combine(dir, "out")), "b-good.ipynb")["ok"]!.GetValue<bool>());
    }

    [Fact]
    public void PlotlyNetInteractiveTakesChartsOverUntilSetupRunsAgain()
    {
        var dir = TempDir();
        const string chart = "Plot.Line(new double[] { 0, 1 }, new double[] { 1, 2 })";
        var nb = Write(dir, "plotly-interactive.ipynb", FirstCell, chart, "#r \"nuget: Plotly.NET.Interactive, 6.0.0\"", chart, "Notebook.Setup(seed: 42);\n" + chart);
        var (code, output) = RunRunner(TimeSpan.FromMinutes(10), nb, "--out", Path.Combine(dir, "out"), "--no-html", "--profile", "Quick");
        Assert.True(code == 0, output);
        var executed = Load(Path.Combine(dir, "out", "notebooks", "plotly-interactive.ipynb"));
        string Chart(int cell) => Outputs(executed, cell).Select(o => MimeText(o, "text/html")).Single(h => h.Length > 0);
        Assert.Contains("wb-plotly", Chart(1));
        // Plotly.NET.Interactive's formatter: plotly.js through require.js from a CDN (nothing draws offline).
        Assert.DoesNotContain("wb-plotly", Chart(3));
        Assert.Contains("require", Chart(3));
        Assert.Contains("cdn.plot.ly", Chart(3));
        Assert.Contains("wb-plotly", Chart(4));
    }
}
