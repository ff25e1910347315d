using System.Text.Json.Nodes;
using Workbook.Engine;
using static Workbook.Tests.Engine.NotebookFixture;

namespace Workbook.Tests.Engine;

/// <summary>The runner executable, run as users run it, on fixture notebooks and on every notebook of the workbook.</summary>
public class RunnerTests
{
    static string PackagesDir => Path.Combine(TestSetup.RepoRoot, "artifacts", "packages");

    [Fact]
    public void ChartsAndDataFramesRenderThroughTheLibraryAndOutputIsValidNbformat()
    {
        var dir = TempDir();
        var nb = Write(dir, "rich.ipynb",
            $"#i \"nuget: {PackagesDir}\"\n#r \"nuget: Workbook, 0.1.0\"\n#r \"nuget: TorchSharp-cpu, 0.107.0\"\nusing Workbook;\nusing Workbook.Plots;\nNotebook.Setup(seed: 1)",
            "Plot.Line(new double[] { 0, 1, 2 }, new double[] { 1, 4, 9 }, title: \"squares\")",
            "using Microsoft.Data.Analysis;\nnew DataFrame(new DoubleDataFrameColumn(\"v\", new[] { 1.5, 2.5 }))",
            "var t = TorchSharp.torch.ones(2, 3);\nt");
        var outDir = Path.Combine(dir, "out");
        var (code, output) = RunRunner(TimeSpan.FromMinutes(5), nb, "--out", outDir, "--profile", "Quick");
        Assert.True(code == 0, output);
        var executed = Path.Combine(outDir, "notebooks", "rich.ipynb");
        ValidateNbformat(executed);
        var doc = NotebookDocument.Load(executed);
        Assert.Contains("libtorch", MimeText(Outputs(doc, 0)[0], "text/plain"));
        var chart = MimeText(Outputs(doc, 1)[0], "text/html");
        Assert.Contains("Plotly.newPlot", chart);
        Assert.Contains("data-wb-plotly", chart);       // plotly.js itself travels with the first chart: works offline
        Assert.DoesNotMatch("<script[^>]*src=", chart); // nothing loaded from a CDN
        Assert.Contains("\"squares\"", chart);
        var table = MimeText(Outputs(doc, 2)[0], "text/html");
        Assert.Contains("<table", table);
        Assert.Contains("2.5", table);
        Assert.Equal("tensor [2, 3] Float32 on cpu: [1, 1, 1, 1, 1, 1]", MimeText(Outputs(doc, 3)[0], "text/plain"));
        var page = File.ReadAllText(Path.Combine(outDir, "site", "rich.html"));
        Assert.Contains("Plotly.newPlot", page);
        Assert.Contains("rich.ipynb", File.ReadAllText(Path.Combine(outDir, "site", "index.html")));
    }

    [Fact]
    public void FailingNotebookStopsReportsCellAndLineAndExitsNonZero()
    {
        var dir = TempDir();
        var bad = Write(dir, "a-bad.ipynb", "var a = 1;", "var b = a +;\n");
        var good = Write(dir, "b-good.ipynb", "1 + 1");
        var (code, output) = RunRunner(TimeSpan.FromMinutes(3), dir, "--out", Path.Combine(dir, "out"), "--keep-going", "--no-html");
        Assert.Equal(1, code);
        Assert.Contains("a-bad.ipynb, cell 2, line 1: CompilationError", output);
        Assert.Contains("1 of 2 notebooks ran", output);
        var report = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "out", "report.json")))!;
        Assert.False(report["ok"]!.GetValue<bool>());
        ValidateNbformat(Path.Combine(dir, "out", "notebooks", "a-bad.ipynb"));
        _ = good;
    }

    [Fact]
    public void CommittedNotebooksCarryNoOutputsAndUseTheCSharpKernel()
    {
        var notebooks = Directory.GetFiles(Path.Combine(TestSetup.RepoRoot, "notebooks"), "*.ipynb", SearchOption.AllDirectories);
        Assert.NotEmpty(notebooks);
        foreach (var path in notebooks)
        {
            var doc = NotebookDocument.Load(path);
            Assert.True(doc.OutputCount == 0, $"{path} carries {doc.OutputCount} outputs: clear them before committing (executed copies belong in the runner's output folder).");
            Assert.True(doc.KernelName == ".net-csharp", $"{path}: kernelspec is '{doc.KernelName}', expected '.net-csharp'.");
            Assert.All(doc.Cells.Where(c => c.CellType == "code"), c => Assert.Null(c.Json["execution_count"]?.GetValue<int?>()));
        }
    }

    [Fact]
    public async Task EveryNotebookRunsTopToBottomInQuickProfile()
    {
        var outDir = Path.Combine(TempDir(), "out");
        var (code, output) = RunRunner(TimeSpan.FromMinutes(40), Path.Combine(TestSetup.RepoRoot, "notebooks"), "--out", outDir, "--profile", "Quick", "--keep-going");
        Assert.True(code == 0, output);
        foreach (var executed in Directory.GetFiles(Path.Combine(outDir, "notebooks"), "*.ipynb", SearchOption.AllDirectories))
            ValidateNbformat(executed);
        // The site of the whole workbook, as a reader sees it in a browser (math typeset, code highlighted, charts drawn, offline).
        Assert.Contains("0 formula error(s)", output);
        var site = await Site.SiteChecks.CheckAsync(Path.Combine(outDir, "site"));
        Assert.True(!site.Failures.Any(), site.ToString());
    }
}
