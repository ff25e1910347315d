using System.Reflection;
using System.Text.Json.Nodes;
using Workbook.Runner.Site;

namespace Workbook.Runner;

/// <summary>
/// The runner's call into the site generator (<see cref="Site.HtmlSite"/>): turns the child reports into pages, states
/// the run's profile, date and versions, and prints what the build found wrong (bad formulas with notebook, cell and formula).
/// </summary>
static class HtmlSite
{
    /// <summary>Builds <c>OUT/site</c> from the runner's per-notebook reports.</summary>
    public static SiteBuildResult Write(string outDir, IReadOnlyList<JsonObject> reports)
    {
        var pages = reports.Select(r => new SitePage(
            r["executed"]?.GetValue<string>() ?? "",
            r["relative"]!.GetValue<string>(),
            r["ok"]?.GetValue<bool>() == true,
            r["seconds"]?.GetValue<double>() ?? 0,
            r["describe"]?.GetValue<string>()) { SourcePath = r["notebook"]?.GetValue<string>() }).ToList();
        // report.json is written before the site: it holds the profile the run used.
        var summary = Path.Combine(outDir, "report.json");
        var profile = File.Exists(summary) ? JsonNode.Parse(File.ReadAllText(summary))?["profile"]?.GetValue<string>() : null;
        var info = new SiteInfo(profile ?? "Full", DateTimeOffset.Now, Metadata("WorkbookVersion"), Metadata("TorchSharpVersion"));
        var result = Site.HtmlSite.Build(Path.Combine(outDir, "site"), pages, info);
        Report(result);
        return result;
    }

    /// <summary>Prints the build's problems, one line each, after a count of typeset formulas.</summary>
    public static void Report(SiteBuildResult result)
    {
        var errors = result.MathErrors.Count();
        Console.WriteLine($"Site: {result.Pages.Count} page(s), {result.Formulas} formula(s) typeset, {errors} formula error(s), {result.Problems.Count} problem(s) in all.");
        foreach (var p in result.Problems) Console.WriteLine("  " + p);
    }

    static string Metadata(string key) =>
        typeof(HtmlSite).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().FirstOrDefault(a => a.Key == key)?.Value is { Length: > 0 } v ? v : "unknown";
}
