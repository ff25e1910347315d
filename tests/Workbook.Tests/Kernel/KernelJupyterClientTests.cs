using System.Diagnostics;
using System.Text;
using Xunit.Abstractions;

namespace Workbook.Tests.Kernel;

/// <summary>
/// A fact that needs Jupyter's Python client (Debian's python3-jupyter-client) under /usr/bin/python3; it is
/// skipped, with the reason and the install command, only when that module is missing. CI installs it.
/// </summary>
public sealed class JupyterClientFactAttribute : FactAttribute
{
    /// <summary>Sets <see cref="FactAttribute.Skip"/> when /usr/bin/python3 cannot import jupyter_client.</summary>
    public JupyterClientFactAttribute()
    {
        if (JupyterClient.MissingReason is { } why) Skip = why;
    }
}

/// <summary>Finds the Python that has Jupyter's client and builds the kernel it drives.</summary>
static class JupyterClient
{
    /// <summary>Debian's Python, which has the Debian packages (not a pyenv python3 on PATH).</summary>
    public const string Python = "/usr/bin/python3";

    static readonly Lazy<string?> Missing = new(() =>
    {
        const string install = "apt-get install -y python3-jupyter-client python3-nbclient python3-nbformat";
        if (!File.Exists(Python)) return $"{Python} does not exist; the kernel tests need Debian's Python with Jupyter's client ({install}).";
        var (code, output) = Run(Python, new[] { "-c", "import jupyter_client" }, TimeSpan.FromSeconds(60));
        return code == 0 ? null : $"{Python} lacks jupyter_client ({output.Trim().Split('\n').LastOrDefault()}); install it with: {install}";
    });

    /// <summary>Why the tests cannot run here, or null when they can.</summary>
    public static string? MissingReason => Missing.Value;

    static readonly Lazy<string> Kernel = new(() =>
    {
        var configuration = TestSetup.Configuration;
        var tools = Path.Combine(TestSetup.RepoRoot, "tools");
        var project = Path.Combine(tools, "Workbook.Kernel", "Workbook.Kernel.csproj");
        var dll = Path.Combine(tools, "Workbook.Kernel", "bin", configuration, "net10.0", "Workbook.Kernel.dll");
        // Build the kernel unless its build is newer than every kernel and engine source (a no-op build still costs
        // seconds); building it also packs the Workbook library into artifacts/packages for the notebooks.
        var sources = new[] { "Workbook.Kernel", "Workbook.Engine" }
            .SelectMany(p => Directory.EnumerateFiles(Path.Combine(tools, p), "*.*", SearchOption.AllDirectories))
            .Where(f => (f.EndsWith(".cs", StringComparison.Ordinal) || f.EndsWith(".csproj", StringComparison.Ordinal))
                        && !f.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}", StringComparison.Ordinal));
        var package = Path.Combine(TestSetup.RepoRoot, "artifacts", "packages", "Workbook.0.1.0.nupkg");
        if (!File.Exists(dll) || !File.Exists(package) || sources.Any(f => File.GetLastWriteTimeUtc(f) > File.GetLastWriteTimeUtc(dll)))
        {
            var (code, output) = Run("dotnet", new[] { "build", project, "-c", configuration, "--nologo", "-v", "q" }, TimeSpan.FromMinutes(10));
            if (code != 0) throw new InvalidOperationException($"dotnet build {project} failed ({code}):\n{output}");
        }
        if (!File.Exists(dll)) throw new FileNotFoundException($"The kernel build did not produce {dll}.", dll);
        return dll;
    });

    /// <summary>The built kernel's dll.</summary>
    public static string KernelDll => Kernel.Value;

    /// <summary>Runs a process to completion (killed after <paramref name="timeout"/>); returns its exit code and output.</summary>
    public static (int Code, string Output) Run(string file, IEnumerable<string> args, TimeSpan timeout, ITestOutputHelper? live = null)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        // The test host's MSBuild variables would leak into nested builds and the kernel's package restores.
        foreach (var key in psi.Environment.Keys.Where(k => k.StartsWith("MSBUILD", StringComparison.OrdinalIgnoreCase) || k == "DOTNET_HOST_PATH").ToList())
            psi.Environment.Remove(key);
        var output = new StringBuilder();
        using var process = new Process { StartInfo = psi };
        void OnLine(object _, DataReceivedEventArgs e)
        {
            if (e.Data is null) return;
            lock (output) output.AppendLine(e.Data);
            try { live?.WriteLine(e.Data); } catch (InvalidOperationException) { } // the test already ended
        }
        process.OutputDataReceived += OnLine;
        process.ErrorDataReceived += OnLine;
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        if (!process.WaitForExit(timeout))
        {
            process.Kill(entireProcessTree: true);
            process.WaitForExit();
            lock (output) output.AppendLine($"KILLED after {timeout.TotalSeconds:F0} s");
            return (-1, output.ToString());
        }
        process.WaitForExit(); // drain the output events
        lock (output) return (process.ExitCode, output.ToString());
    }
}

/// <summary>
/// The Workbook kernel driven by a Jupyter client none of us wrote: Debian's jupyter_client and nbclient run
/// tests/Workbook.Tests/Kernel/jupyter_client_checks.py against the built kernel, with its kernelspec installed by
/// the kernel's own <c>install --prefix</c> into a temporary folder found through JUPYTER_PATH. Every named check
/// must report PASS (a check that did not run fails the test too).
/// </summary>
public class KernelJupyterClientTests
{
    readonly ITestOutputHelper _output;

    /// <summary>xunit gives each test its output.</summary>
    public KernelJupyterClientTests(ITestOutputHelper output) => _output = output;

    /// <summary>
    /// nbclient executes notebooks/00-tour.ipynb (and 01-attention when it exists) and a fixture notebook with our
    /// kernel: execution counts 1..n, no error output, the setup summary, "Quick: 1 epoch(s)", the tensor summary,
    /// column sums 12, 15, 18, 21, a Plotly chart, a DataFrame table, a display updated in place to
    /// "step 50/50, loss 0.067", stdout/stderr streams, state across cells, #r of a dll, HTML and a display updated
    /// from a later cell.
    /// </summary>
    [JupyterClientFact]
    public void Notebooks_run_through_nbclient_with_their_outputs()
    {
        var expected = new List<string> { "install", "notebook_00", "notebook_fixture" };
        if (File.Exists(Path.Combine(TestSetup.RepoRoot, "notebooks", "01-attention.ipynb"))) expected.Add("notebook_01");
        RunChecks("notebooks", expected);
    }

    /// <summary>
    /// The kernelspec installer keeps a Polyglot kernelspec of the same name aside, installs beside it with --name and
    /// restores it on uninstall. Then jupyter_client against one kernel: heartbeat echo, kernel_info (protocol 5.3, C#), execute with execute_input,
    /// stream, execute_result and display/update_display_data sharing a display_id; completion (Console.Wri gives
    /// Write and WriteLine at cursor 8..11, a global from an earlier cell, members of a local, types of a namespace);
    /// inspection with overloads, documentation and a variable's value; is_complete; a runtime error with a traceback
    /// naming line 2 after which the kernel answers with the state intact, and a compile error; interrupts by
    /// interrupt_request and by SIGINT (also of a loop inside a method from an earlier cell) and of a blocked cell,
    /// each followed by a working cell; forged, unsigned and malformed messages ignored and logged; shutdown exits 0.
    /// </summary>
    [JupyterClientFact]
    public void Protocol_interrupt_completion_errors_and_bad_signatures()
    {
        RunChecks("protocol", new[]
        {
            "install", "install_replaces_and_restores", "heartbeat", "kernel_info", "execute_outputs", "completion", "inspection", "is_complete",
            "runtime_error", "interrupt_message", "interrupt_sigint", "interrupt_blocked", "bad_signature", "shutdown",
        });
    }

    void RunChecks(string mode, IReadOnlyCollection<string> expected)
    {
        var script = Path.Combine(TestSetup.RepoRoot, "tests", "Workbook.Tests", "Kernel", "jupyter_client_checks.py");
        var work = Path.Combine(Path.GetTempPath(), $"workbook-kernel-{mode}-{Guid.NewGuid():N}");
        try
        {
            var (code, output) = JupyterClient.Run(JupyterClient.Python,
                new[] { script, "--kernel-dll", JupyterClient.KernelDll, "--repo", TestSetup.RepoRoot, "--work", work, "--mode", mode },
                TimeSpan.FromMinutes(15), _output);
            var passed = output.Split('\n').Where(l => l.StartsWith("CHECK ", StringComparison.Ordinal) && l.Contains(" PASS", StringComparison.Ordinal))
                .Select(l => l.Split(' ')[1]).ToHashSet();
            var missing = expected.Where(e => !passed.Contains(e)).ToList();
            Assert.True(missing.Count == 0 && code == 0,
                $"jupyter_client_checks.py --mode {mode} exited {code}; checks not passed: {string.Join(", ", missing)}\n{output}");
        }
        finally
        {
            try { Directory.Delete(work, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
    }
}
