using System.Diagnostics;

namespace Workbook.Tests;

/// <summary>The PyTorch golden fixtures are what their generator computes from their stored inputs.</summary>
public class GoldenFixtureTests
{
    [Fact]
    public void TheGeneratorReproducesEveryGoldenTensor()
    {
        var script = Path.Combine(TestSetup.RepoRoot, "tests", "golden", "make_golden.py");
        var psi = new ProcessStartInfo("/usr/bin/python3", [script]) { RedirectStandardOutput = true, RedirectStandardError = true };
        Process p;
        try { p = Process.Start(psi)!; }
        catch (System.ComponentModel.Win32Exception e)
        {
            Assert.Fail($"/usr/bin/python3 is needed to check the golden fixtures ({e.Message}): run ./test.sh, or apt install python3-torch.");
            return;
        }
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        Assert.True(p.WaitForExit(TimeSpan.FromMinutes(5)), "make_golden.py did not finish in 5 minutes");
        Assert.True(p.ExitCode == 0, $"make_golden.py exit {p.ExitCode} (needs python3-torch: apt install python3-torch):\n{stdout.Result}\n{stderr.Result}");
        var lines = stdout.Result.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(12, lines.Length); // 11 golden files and the hub checkpoint of gpt2_tiny
        Assert.All(lines, l => Assert.StartsWith("ok ", l));
        // Every fixture in the folder is covered.
        var files = Directory.GetFiles(Path.Combine(TestSetup.RepoRoot, "tests", "Workbook.Tests", "Fixtures", "golden"), "*.safetensors");
        Assert.All(files, f => Assert.Contains(lines, l => l.Contains(" " + Path.GetFileNameWithoutExtension(f) + ":", StringComparison.Ordinal)));
    }
}
