using System.Diagnostics;
using System.Text;
using static Workbook.Tests.Runner.NotebookFixture;

namespace Workbook.Tests.Runner;

/// <summary>
/// A runner that is stopped (a CI timeout, <c>kill</c>, Ctrl+C) must take its kernel with it: the kernel is a
/// process of its own, and left behind it goes on running the cell, here a busy loop, on the machine's cores.
/// </summary>
public class StopTests
{
    /// <summary>Process ids whose command line names <paramref name="folder"/> (the kernel gets it as --working-dir).</summary>
    static List<int> KernelsIn(string folder)
    {
        var found = new List<int>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out int pid)) continue;
            string cmd;
            try { cmd = File.ReadAllText(Path.Combine(dir, "cmdline")).Replace('\0', ' '); } catch (IOException) { continue; } catch (UnauthorizedAccessException) { continue; }
            if (cmd.Contains("Microsoft.DotNet.Interactive.App.dll", StringComparison.Ordinal) && cmd.Contains(folder, StringComparison.Ordinal)) found.Add(pid);
        }
        return found;
    }

    [Theory]
    [InlineData("TERM")]
    [InlineData("INT")]
    public void StoppingTheRunnerStopsItsKernel(string signal)
    {
        var dir = TempDir();
        var nb = Write(dir, "busy.ipynb", FirstCell, "System.Console.WriteLine(\"busy\");\nwhile (true) System.Threading.Thread.SpinWait(1000);");
        // Started as a terminal starts it, with SIGINT and SIGHUP at their default: a test host launched in the background
        // of a script (`cmd &`, nohup) inherits them ignored, and a process that starts with a signal ignored never
        // sees it (Unix's rule, which .NET keeps). python3 resets them and execs the runner under the same process id.
        var psi = new ProcessStartInfo("python3") { RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var a in new[] { "-c", "import os, signal, sys; [signal.signal(s, signal.SIG_DFL) for s in (signal.SIGINT, signal.SIGHUP)]; os.execvp(sys.argv[1], sys.argv[1:])",
                     "dotnet", RunnerDll, nb, "--out", Path.Combine(dir, "out"), "--no-html" }) psi.ArgumentList.Add(a);
        using var runner = Process.Start(psi)!;
        var output = new StringBuilder();
        var reader = Task.Run(() =>
        {
            var buffer = new char[256];
            int n;
            while ((n = runner.StandardOutput.Read(buffer, 0, buffer.Length)) > 0) lock (output) output.Append(buffer, 0, n);
        });
        string Output() { lock (output) return output.ToString(); }
        try
        {
            // The runner prints "cell 2/2" when it submits the busy cell.
            var clock = Stopwatch.StartNew();
            while (!Output().Contains("cell 2/2", StringComparison.Ordinal) && !runner.HasExited && clock.Elapsed < TimeSpan.FromMinutes(4)) Thread.Sleep(200);
            Assert.True(Output().Contains("cell 2/2", StringComparison.Ordinal), $"the busy cell never started:\n{Output()}");
            Thread.Sleep(2000);
            var kernels = KernelsIn(dir);
            Assert.True(kernels.Count > 0, "no kernel process found for the notebook's folder while its cell runs");

            using (var kill = Process.Start("kill", $"-{signal} {runner.Id}")!) kill.WaitForExit();
            Assert.True(runner.WaitForExit(TimeSpan.FromSeconds(30)), $"the runner did not exit after SIG{signal}");
            Assert.Equal(signal == "INT" ? 130 : 143, runner.ExitCode);
            clock.Restart();
            while (KernelsIn(dir).Count > 0 && clock.Elapsed < TimeSpan.FromSeconds(15)) Thread.Sleep(200);
            Assert.True(KernelsIn(dir).Count == 0, $"SIG{signal} to the runner left kernel process(es) {string.Join(", ", KernelsIn(dir))} running");
        }
        finally
        {
            if (!runner.HasExited) runner.Kill(entireProcessTree: true);
            foreach (var pid in KernelsIn(dir)) try { Process.GetProcessById(pid).Kill(entireProcessTree: true); } catch (ArgumentException) { }
            reader.Wait(TimeSpan.FromSeconds(5));
        }
    }
}
