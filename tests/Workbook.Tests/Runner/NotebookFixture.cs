using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Workbook.Tests.Runner;

/// <summary>Builds fixture notebooks in temporary folders and runs them on the real kernel, through the runner and through Jupyter.</summary>
public static class NotebookFixture
{
    /// <summary>The first cell every workbook notebook starts with.</summary>
    public static readonly string FirstCell = Workbook.Runtime.PinnedVersions.NotebookReferences + "\nusing TorchSharp;\nusing static TorchSharp.torch;\nusing Workbook;\nusing Workbook.Plots;\nNotebook.Setup(seed: 42)";

    /// <summary>
    /// A fresh folder whose NuGet.config adds the repository's local feed, as notebooks/NuGet.config does. It lies
    /// inside the checkout (under the ignored artifacts/), where the kernelspec's <c>dotnet interactive</c> finds the
    /// pinned tool, as it does for the workbook's own notebooks.
    /// </summary>
    public static string TempDir()
    {
        var dir = Path.Combine(TestSetup.RepoRoot, "artifacts", "test-notebooks", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "NuGet.config"), $"""
            <?xml version="1.0" encoding="utf-8"?>
            <configuration>
              <packageSources>
                <add key="workbook-local" value="{Path.Combine(TestSetup.RepoRoot, "artifacts", "packages")}" />
              </packageSources>
            </configuration>
            """);
        return dir;
    }

    /// <summary>Writes a Polyglot C# notebook; a cell starting with "md:" is markdown.</summary>
    public static string Write(string dir, string name, params string[] cells)
    {
        var arr = new JsonArray();
        int i = 0;
        foreach (var c in cells)
        {
            bool md = c.StartsWith("md:", StringComparison.Ordinal);
            var cell = new JsonObject
            {
                ["cell_type"] = md ? "markdown" : "code", ["id"] = $"c{i++}",
                ["metadata"] = md ? new JsonObject() : new JsonObject { ["polyglot_notebook"] = new JsonObject { ["kernelName"] = "csharp" } },
                ["source"] = md ? c[3..] : c,
            };
            if (!md) { cell["outputs"] = new JsonArray(); cell["execution_count"] = null; }
            arr.Add(cell);
        }
        var nb = new JsonObject
        {
            ["cells"] = arr,
            ["metadata"] = new JsonObject
            {
                ["kernelspec"] = new JsonObject { ["display_name"] = ".NET (C#)", ["language"] = "C#", ["name"] = ".net-csharp" },
                ["language_info"] = new JsonObject { ["name"] = "C#" },
            },
            ["nbformat"] = 4, ["nbformat_minor"] = 5,
        };
        var path = Path.Combine(dir, name);
        File.WriteAllText(path, nb.ToJsonString());
        return path;
    }

    /// <summary>An executed notebook's JSON.</summary>
    public static JsonObject Load(string path) => JsonNode.Parse(File.ReadAllText(path))!.AsObject();

    /// <summary>The outputs of the cell at <paramref name="cellIndex"/> (0-based over all cells).</summary>
    public static List<JsonObject> Outputs(JsonObject nb, int cellIndex) =>
        (nb["cells"]![cellIndex]!["outputs"] as JsonArray ?? new JsonArray()).OfType<JsonObject>().ToList();

    /// <summary>nbformat multiline strings: a string or a list of strings.</summary>
    public static string Join(JsonNode? node) => node switch
    {
        null => "",
        JsonArray a => string.Concat(a.Select(x => x?.GetValue<string>() ?? "")),
        _ => node.GetValue<string>(),
    };

    /// <summary>A MIME type's text from an output.</summary>
    public static string MimeText(JsonObject output, string mime) => Join(output["data"]?[mime]);

    /// <summary>Everything a cell shows as text: streams, every MIME type, error names, values and tracebacks.</summary>
    public static string AllText(JsonObject nb, int cellIndex) => string.Join("\n", Outputs(nb, cellIndex).Select(o =>
        Join(o["text"]) + string.Concat((o["data"] as JsonObject ?? new JsonObject()).Select(kv => Join(kv.Value))) +
        (o["ename"]?.GetValue<string>() ?? "") + " " + (o["evalue"]?.GetValue<string>() ?? "") + " " +
        string.Join("\n", (o["traceback"] as JsonArray ?? new JsonArray()).Select(t => t?.GetValue<string>()))));

    /// <summary>The built runner's DLL.</summary>
    public static string RunnerDll => Path.Combine(TestSetup.RepoRoot, "tools", "Workbook.Runner", "bin", TestSetup.Configuration, "net10.0", "Workbook.Runner.dll");

    /// <summary>Runs the real runner executable (as the README tells users to) and returns its exit code and output.</summary>
    public static (int ExitCode, string Output) RunRunner(TimeSpan timeout, params string[] args) => Run("dotnet", [RunnerDll, .. args], timeout);

    /// <summary>Runs a process to its end; returns its exit code and merged output.</summary>
    public static (int ExitCode, string Output) Run(string file, IEnumerable<string> args, TimeSpan timeout, IDictionary<string, string>? env = null, string? cwd = null)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        if (cwd is not null) psi.WorkingDirectory = cwd;
        foreach (var a in args) psi.ArgumentList.Add(a);
        foreach (var (k, v) in env ?? new Dictionary<string, string>()) psi.Environment[k] = v;
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(timeout)) { p.Kill(entireProcessTree: true); Assert.Fail($"{file} {string.Join(' ', args)} did not finish within {timeout}:\n{stdout.Result}{stderr.Result}"); }
        p.WaitForExit();
        return (p.ExitCode, stdout.Result + stderr.Result);
    }

    /// <summary>
    /// The pinned kernel's Jupyter kernelspec, installed once per test run into a private prefix by the runner's
    /// <c>kernelspec install</c> (the command the README gives readers). Returns the folder to put on JUPYTER_PATH.
    /// </summary>
    public static string JupyterPath => LazyJupyterPath.Value;

    static readonly Lazy<string> LazyJupyterPath = new(() =>
    {
        var prefix = Path.Combine(Path.GetTempPath(), "wb-jupyter-" + Guid.NewGuid().ToString("N"));
        var (code, output) = RunRunner(TimeSpan.FromMinutes(5), "kernelspec", "install", "--prefix", prefix);
        Assert.True(code == 0, output);
        return Path.Combine(prefix, "share", "jupyter");
    });

    /// <summary>What Jupyter's nbclient made of a notebook: the verdict and the executed notebook.</summary>
    public sealed record JupyterRun(bool Ok, string Kind, int? Cell, string Text, string Executed);

    /// <summary>
    /// Executes notebooks with Jupyter's own nbclient (Debian's python3-nbclient) on the installed kernelspec, as
    /// JupyterLab and <c>jupyter nbconvert --execute</c> do: the kernel starts in the notebook's folder.
    /// </summary>
    public static Dictionary<string, JupyterRun> RunJupyter(IReadOnlyList<string> notebooks, int cellTimeout, string outDir, TimeSpan limit)
    {
        Directory.CreateDirectory(outDir);
        var script = Path.Combine(AppContext.BaseDirectory, "Runner", "nbclient_run.py");
        var (code, output) = Run("/usr/bin/python3", [script, "--timeout", cellTimeout.ToString(), "--out", outDir, .. notebooks], limit,
            new Dictionary<string, string> { ["JUPYTER_PATH"] = JupyterPath, ["WORKBOOK_PROFILE"] = "Quick" });
        var json = output.Split('\n').LastOrDefault(l => l.StartsWith("{\"results\"", StringComparison.Ordinal));
        Assert.True(code == 0 && json is not null, $"nbclient driver failed (needs Debian's python3-nbclient and python3-jupyter-client):\n{output}");
        var results = new Dictionary<string, JupyterRun>(StringComparer.Ordinal);
        foreach (var r in JsonNode.Parse(json!)!["results"]!.AsArray())
            results[r!["notebook"]!.GetValue<string>()] = new JupyterRun(r["ok"]!.GetValue<bool>(), r["kind"]!.GetValue<string>(),
                r["cell"]?.GetValue<int?>(), r["text"]!.GetValue<string>(), r["executed"]!.GetValue<string>());
        return results;
    }

    /// <summary>Validates a notebook against the official nbformat 4 JSON schema with Jupyter's own nbformat package.</summary>
    public static void ValidateNbformat(string path)
    {
        var (code, output) = Run("/usr/bin/python3",
            ["-c", "import sys, nbformat; nb = nbformat.read(sys.argv[1], as_version=4); nbformat.validate(nb); print('valid', nb.nbformat, nb.nbformat_minor)", path],
            TimeSpan.FromMinutes(1));
        Assert.True(code == 0, $"nbformat validation of {path} failed (needs Debian's python3-nbformat: apt-get install python3-nbformat):\n{output}");
        Assert.Contains("valid 4", output);
    }

    /// <summary>Reads report.json of a runner output folder.</summary>
    public static JsonObject Report(string outDir) => JsonNode.Parse(File.ReadAllText(Path.Combine(outDir, "report.json")))!.AsObject();

    /// <summary>The report entry of one notebook.</summary>
    public static JsonObject ReportOf(JsonObject report, string relative) =>
        report["notebooks"]!.AsArray().OfType<JsonObject>().Single(n => n["relative"]!.GetValue<string>() == relative);

    /// <summary>Indented JSON for assertion messages.</summary>
    public static string Pretty(JsonNode node) => node.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
}
