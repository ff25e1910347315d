using System.Diagnostics;

namespace Workbook.Tests.Doctor;

/// <summary>The doctor executable, run as attendees and CI run it.</summary>
public sealed class DoctorCliTests : IDisposable
{
    readonly string _dir = Path.Combine(Path.GetTempPath(), "wb-doctor-cli-" + Guid.NewGuid().ToString("N")[..8]);

    public DoctorCliTests() => Directory.CreateDirectory(_dir);
    public void Dispose() => Directory.Delete(_dir, recursive: true);

    static (int ExitCode, string Output) RunDoctor(params string[] args)
    {
        var dll = Path.Combine(TestSetup.RepoRoot, "tools", "Workbook.Doctor", "bin", TestSetup.Configuration, "net10.0", "doctor.dll");
        Assert.True(File.Exists(dll), $"doctor not built at {dll}: build tools/Workbook.Doctor (it is part of Workbook.sln).");
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(dll);
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(TimeSpan.FromMinutes(5))) { p.Kill(entireProcessTree: true); Assert.Fail("doctor did not finish within 5 minutes"); }
        return (p.ExitCode, stdout.Result + stderr.Result);
    }

    [Fact]
    public void Doctor_passes_on_this_machine()
    {
        var (code, output) = RunDoctor("--repo", TestSetup.RepoRoot, "--calibration-seconds", "1.5");
        Assert.True(code == 0, output);
        Assert.Contains("Ready", output);
        foreach (var row in new[] { ".NET SDK", "notebook kernel", "restore (NuGet feeds)", "restore (offline cache)", "TorchSharp", "CPU / CUDA", "data files", "free disk", "calibration", "08-your-own-data.ipynb" })
            Assert.Contains(row, output);
        Assert.Contains("Patched=", output);
    }

    [Fact]
    public void Doctor_fails_with_the_fix_when_a_data_file_is_missing()
    {
        File.WriteAllText(Path.Combine(_dir, "Workbook.sln"), "");
        Directory.CreateDirectory(Path.Combine(_dir, "data", "tabular"));
        File.WriteAllText(Path.Combine(_dir, "data", "tabular", "mine.csv"), "a,b\n1,2\n");
        var (written, log) = RunDoctor("--repo", _dir, "--write-manifest");
        Assert.True(written == 0, log);
        Assert.Contains("tabular/mine.csv", File.ReadAllText(Path.Combine(_dir, "data", "checksums.sha256")));

        File.Delete(Path.Combine(_dir, "data", "tabular", "mine.csv"));
        var (code, output) = RunDoctor("--repo", _dir, "--skip-restore", "--calibration-seconds", "0");
        Assert.True(code == 1, output);
        Assert.Contains("FAIL data files: 1 of 1 file(s) missing: tabular/mine.csv", output);
        Assert.Contains("fix: Restore them: 'git checkout -- data/tabular/mine.csv'", output);
        Assert.Contains("1 check(s) failed", output);
    }

    [Fact]
    public void Doctor_rejects_unknown_options()
    {
        var (code, output) = RunDoctor("--frobnicate");
        Assert.Equal(2, code);
        Assert.Contains("Unknown option '--frobnicate'", output);
    }
}
