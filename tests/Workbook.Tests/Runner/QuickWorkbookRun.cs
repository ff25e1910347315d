using System.Text.Json.Nodes;
using static Workbook.Tests.Runner.NotebookFixture;

namespace Workbook.Tests.Runner;

/// <summary>
/// One run of the whole workbook in the Quick profile on the real kernel, through the runner executable, shared by the
/// tests that read its executed notebooks (every notebook runs; the errata cells ran), so a test run pays for it once.
/// </summary>
public static class QuickWorkbookRun
{
    /// <summary>The runner's exit code, its output, and the output folder with report.json and the executed notebooks.</summary>
    public sealed record Result(int ExitCode, string Output, string OutDir)
    {
        /// <summary>report.json.</summary>
        public JsonObject Report => NotebookFixture.Report(OutDir);

        /// <summary>The executed copy of a notebook, by its path relative to notebooks/ ("02-positional-encoding.ipynb").</summary>
        public JsonObject Executed(string relative) => Load(ReportOf(Report, relative)["executed"]!.GetValue<string>());
    }

    static readonly Lazy<Result> Run = new(() =>
    {
        var outDir = Path.Combine(Path.GetTempPath(), "wb-all-" + Guid.NewGuid().ToString("N"));
        var (code, output) = RunRunner(TimeSpan.FromMinutes(40), Path.Combine(TestSetup.RepoRoot, "notebooks"), "--out", outDir, "--profile", "Quick", "--keep-going");
        return new Result(code, output, outDir);
    });

    /// <summary>Runs the workbook the first time it is asked for, then returns the same result.</summary>
    public static Result Get() => Run.Value;
}
