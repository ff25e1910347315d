using System.Diagnostics;
using System.Text.Json.Nodes;
using Workbook.Engine;

namespace Workbook.Tests.Engine;

/// <summary>Builds fixture notebooks in temporary folders and runs the real runner on them.</summary>
static class NotebookFixture
{
    /// <summary>A fresh temporary folder.</summary>
    public static string TempDir()
    {
        var dir = Path.Combine(Path.GetTempPath(), "wb-nb-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
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
                ["source"] = NotebookDocument.SplitLines(md ? c[3..] : c),
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

    /// <summary>Runs a notebook in this process with the engine.</summary>
    public static (NotebookReport Report, NotebookDocument Doc) RunInProcess(string path, TimeSpan? cellTimeout = null)
    {
        var doc = NotebookDocument.Load(path);
        var report = new NotebookExecutor { CellTimeout = cellTimeout ?? TimeSpan.FromMinutes(5) }.RunAsync(doc).GetAwaiter().GetResult();
        return (report, doc);
    }

    /// <summary>The outputs of the code cell at <paramref name="cellIndex"/> (0-based over all cells).</summary>
    public static List<JsonObject> Outputs(NotebookDocument doc, int cellIndex) =>
        (doc.Cells[cellIndex].Json["outputs"] as JsonArray ?? new JsonArray()).OfType<JsonObject>().ToList();

    /// <summary>A MIME type's text from an output.</summary>
    public static string MimeText(JsonObject output, string mime) => NotebookDocument.JoinSource(output["data"]?[mime]);

    /// <summary>Runs the real runner executable (as the README tells users to) and returns its exit code and output.</summary>
    public static (int ExitCode, string Output) RunRunner(TimeSpan timeout, params string[] args)
    {
        var dll = Path.Combine(TestSetup.RepoRoot, "tools", "Workbook.Runner", "bin", TestSetup.Configuration, "net10.0", "Workbook.Runner.dll");
        Assert.True(File.Exists(dll), $"runner not built at {dll}");
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(dll);
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(timeout)) { p.Kill(entireProcessTree: true); Assert.Fail($"runner did not finish within {timeout}"); }
        return (p.ExitCode, stdout.Result + stderr.Result);
    }

    /// <summary>Validates a notebook against the official nbformat 4 JSON schema with Jupyter's own nbformat package.</summary>
    public static void ValidateNbformat(string path)
    {
        var psi = new ProcessStartInfo("/usr/bin/python3") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add("import sys, nbformat; nb = nbformat.read(sys.argv[1], as_version=4); nbformat.validate(nb); print('valid', nb.nbformat, nb.nbformat_minor)");
        psi.ArgumentList.Add(path);
        using var p = Process.Start(psi)!;
        var output = p.StandardOutput.ReadToEnd() + p.StandardError.ReadToEnd();
        p.WaitForExit();
        Assert.True(p.ExitCode == 0, $"nbformat validation of {path} failed (needs Debian's python3-nbformat: apt-get install python3-nbformat):\n{output}");
        Assert.Contains("valid 4", output);
    }
}
