using System.Text.Json.Nodes;
using static Workbook.Tests.Runner.NotebookFixture;

namespace Workbook.Tests.Runner;

/// <summary>The JupyterLab path: the real kernel's kernelspec, installed as the README says, run by Jupyter's own client.</summary>
public class JupyterTests
{
    [Fact]
    public void KernelspecIsTheToolsOwnWithItsHttpApiOnLoopbackOnly()
    {
        var spec = JsonNode.Parse(File.ReadAllText(Path.Combine(JupyterPath, "kernels", ".net-csharp", "kernel.json")))!;
        var argv = spec["argv"]!.AsArray().Select(a => a!.GetValue<string>()).ToList();
        Assert.Equal(["dotnet", "interactive", "jupyter"], argv.Take(3));
        Assert.Contains("--http-local-only", argv);
        Assert.Equal(argv.IndexOf("{connection_file}") + 1, argv.IndexOf("--http-local-only"));

        // Started by jupyter_client in the repository (where `dotnet interactive` finds the pinned tool), every
        // socket the kernel listens on is a loopback one: its HTTP API and Jupyter's channels.
        var (code, output) = Run("/usr/bin/python3", [Path.Combine(AppContext.BaseDirectory, "Runner", "kernel_sockets.py")], TimeSpan.FromMinutes(3),
            new Dictionary<string, string> { ["JUPYTER_PATH"] = JupyterPath }, cwd: Path.Combine(TestSetup.RepoRoot, "notebooks"));
        var line = output.Split('\n').LastOrDefault(l => l.StartsWith("{\"argv\"", StringComparison.Ordinal));
        Assert.True(code == 0 && line is not null, output);
        var listening = JsonNode.Parse(line!)!["listening"]!.AsArray().Select(s => s!.GetValue<string>()).ToList();
        Assert.True(listening.Count >= 5, $"expected the five Jupyter channels and the HTTP API, found: {string.Join(", ", listening)}");
        Assert.All(listening, s => Assert.True(s.StartsWith("127.", StringComparison.Ordinal) || s.StartsWith("0000:0000:0000:0000:0000:0000:0000:0001:", StringComparison.Ordinal),
            $"the kernel listens on a non-loopback address: {s} (all: {string.Join(", ", listening)})"));
    }

    [Theory]
    [InlineData("00-tour.ipynb")]
    [InlineData("05-gpt2-generation.ipynb")]
    public void NotebookRunsUnchangedInJupyterWithChartsDrawn(string name)
    {
        var path = Path.Combine(TestSetup.RepoRoot, "notebooks", name);
        var outDir = Path.Combine(Path.GetTempPath(), "wb-jupyter-out-" + Guid.NewGuid().ToString("N"));
        var run = RunJupyter([path], 600, outDir, TimeSpan.FromMinutes(15))[path];
        Assert.True(run.Ok, $"{name} failed in Jupyter at cell {run.Cell}:\n{run.Text}");
        var nb = Load(run.Executed);
        ValidateNbformat(run.Executed);
        var html = nb["cells"]!.AsArray().OfType<JsonObject>()
            .SelectMany(c => (c["outputs"] as JsonArray ?? new JsonArray()).OfType<JsonObject>())
            .Select(o => MimeText(o, "text/html")).Where(h => h.Contains("wb-plotly", StringComparison.Ordinal)).ToList();
        Assert.NotEmpty(html);
        Assert.Contains(html, h => h.Contains("data-wb-plotly", StringComparison.Ordinal)); // plotly.js inline, once
        Assert.All(html, h =>
        {
            Assert.Contains("Plotly.newPlot", h);
            Assert.DoesNotMatch("<script[^>]*src=", h);
            Assert.DoesNotContain("require.config", h);
        });
    }
}
