using System.Text.Json;
using System.Text.RegularExpressions;
using System.Xml.Linq;
using Workbook.Runtime;

namespace Workbook.Tests;

/// <summary>
/// One source per version: <c>Directory.Packages.props</c> pins the packages, <c>.config/dotnet-tools.json</c> the
/// kernel tool, <c>lib/Workbook/Workbook.csproj</c> the library's own version. The library carries the pins
/// (<see cref="PinnedVersions"/>); every other place that writes a version (notebooks' first cells, docs, comments)
/// is checked here against them.
/// </summary>
public class PinTests
{
    static string Root => TestSetup.RepoRoot;

    static Dictionary<string, string> CentralPins() =>
        XDocument.Load(Path.Combine(Root, "Directory.Packages.props")).Descendants("PackageVersion")
            .ToDictionary(e => e.Attribute("Include")!.Value, e => e.Attribute("Version")!.Value, StringComparer.OrdinalIgnoreCase);

    static string LibraryVersion() => XDocument.Load(Path.Combine(Root, "lib", "Workbook", "Workbook.csproj")).Descendants("Version").Single().Value;

    static string KernelToolVersion()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(Root, ".config", "dotnet-tools.json")));
        return doc.RootElement.GetProperty("tools").GetProperty("microsoft.dotnet-interactive").GetProperty("version").GetString()!;
    }

    /// <summary>Package (or tool) id → the one version it may be written with anywhere.</summary>
    static Dictionary<string, string> Pins()
    {
        var pins = CentralPins();
        pins["Workbook"] = LibraryVersion();
        // The native packages a notebook may reference instead of TorchSharp-cpu ship with TorchSharp, at its version.
        foreach (var native in new[] { "TorchSharp-cuda-linux", "TorchSharp-cuda-windows" }) pins[native] = pins["TorchSharp"];
        pins["Microsoft.dotnet-interactive"] = KernelToolVersion();
        pins["dotnet-interactive"] = KernelToolVersion();
        return pins;
    }

    /// <summary>
    /// Every "ID VERSION", "ID, VERSION" or "`ID` VERSION" in <paramref name="text"/> whose version differs from the pin
    /// (a shorter version, "TorchSharp 0.107", must be a prefix of the pinned one).
    /// </summary>
    internal static IEnumerable<string> WrongVersions(string text, string where, IReadOnlyDictionary<string, string> pins)
    {
        foreach (var (id, pinned) in pins)
        {
            var mention = new Regex(@"(?<![\w.-])" + Regex.Escape(id) + @"(?![\w.-])[`'""]?(?:\s*,\s*|\s+)(?:version\s+)?v?(?<v>\d+\.\d+(?:\.\d+)*(?:-[0-9A-Za-z]+(?:\.[0-9A-Za-z]+)*)?)",
                RegexOptions.IgnoreCase);
            foreach (Match m in mention.Matches(text))
            {
                var v = m.Groups["v"].Value.TrimEnd('.');
                if (v == pinned || pinned.StartsWith(v + ".", StringComparison.Ordinal)) continue;
                int line = text.AsSpan(0, m.Index).Count('\n') + 1;
                yield return $"{where}:{line}: '{m.Value}' but the pin is {id} {pinned}";
            }
        }
    }

    static readonly string[] Extensions = [".md", ".cs", ".ipynb", ".csproj", ".props", ".json", ".sh", ".py", ".yml", ".yaml", ".txt", ".html"];
    static readonly string[] Skipped = ["bin", "obj", "artifacts", ".git", "node_modules", "data", "Fixtures", "out"];

    static IEnumerable<string> RepositoryTextFiles(string dir)
    {
        foreach (var f in Directory.GetFiles(dir))
            if (Extensions.Contains(Path.GetExtension(f), StringComparer.OrdinalIgnoreCase)) yield return f;
        foreach (var d in Directory.GetDirectories(dir))
            if (!Skipped.Contains(Path.GetFileName(d)))
                foreach (var f in RepositoryTextFiles(d)) yield return f;
    }

    [Fact]
    public void TheLibraryCarriesExactlyTheCentralPins()
    {
        var central = CentralPins();
        var built = PinnedVersions.All.Where(kv => kv.Key != "Workbook").ToDictionary(kv => kv.Key, kv => kv.Value, StringComparer.OrdinalIgnoreCase);
        Assert.Equal(central.OrderBy(kv => kv.Key, StringComparer.OrdinalIgnoreCase), built.OrderBy(kv => kv.Key, StringComparer.OrdinalIgnoreCase));
        Assert.Equal(LibraryVersion(), PinnedVersions.Workbook);
        Assert.Equal($"#r \"nuget: Workbook, {LibraryVersion()}\"\n#r \"nuget: TorchSharp-cpu, {central["TorchSharp-cpu"]}\"", PinnedVersions.NotebookReferences);
        Assert.Contains("not pinned", Assert.Throws<KeyNotFoundException>(() => PinnedVersions.Of("No.Such.Package")).Message);
    }

    [Fact]
    public void EveryPinIsUsedByAProject()
    {
        var referenced = Directory.GetFiles(Root, "*.csproj", SearchOption.AllDirectories)
            .Where(f => !f.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}"))
            .SelectMany(f => XDocument.Load(f).Descendants("PackageReference").Select(e => e.Attribute("Include")!.Value))
            .ToHashSet(StringComparer.OrdinalIgnoreCase);
        var unused = CentralPins().Keys.Where(id => !referenced.Contains(id)).ToList();
        Assert.True(unused.Count == 0, $"Directory.Packages.props pins packages no project references: {string.Join(", ", unused)} (remove the pins or use them)");
    }

    [Fact]
    public void EveryVersionWrittenAnywhereIsThePinnedOne()
    {
        var pins = Pins();
        var sources = new[] { Path.Combine(Root, "Directory.Packages.props"), Path.Combine(Root, ".config", "dotnet-tools.json") };
        var files = RepositoryTextFiles(Root).Where(f => !sources.Contains(f)).ToList();
        Assert.True(files.Count > 100, $"only {files.Count} files scanned");
        var wrong = files.SelectMany(f => WrongVersions(File.ReadAllText(f), Path.GetRelativePath(Root, f), pins)).ToList();
        Assert.True(wrong.Count == 0, string.Join("\n", wrong));
        // The places that must name the version do, so the scan above is not vacuous.
        Assert.Contains(PinnedVersions.NotebookReferences, File.ReadAllText(Path.Combine(Root, "notebooks", "00-tour.cs")));
        Assert.Contains($"Microsoft.dotnet-interactive` {KernelToolVersion()}", File.ReadAllText(Path.Combine(Root, "README.md")));
    }

    [Fact]
    public void TheScanFindsAVersionThatDisagrees()
    {
        var pins = new Dictionary<string, string> { ["TorchSharp-cpu"] = "0.107.0", ["TorchSharp"] = "0.107.0", ["Plotly.NET"] = "6.0.0" };
        // (Versions spliced in, so that the scan of this very file does not find them.)
        string v106 = "0.106" + ".0", v10 = "0" + ".10", v123 = "1.2" + ".3", v510 = "5.1" + ".0";
        var text = $"#r \"nuget: TorchSharp-cpu, {v106}\"\nTorchSharp 0.107's fix\nTorchSharp {v10} is old\nPlotly.NET.Interactive {v123}\n`Plotly.NET` {v510}";
        var wrong = WrongVersions(text, "x.md", pins).ToList();
        Assert.Equal(3, wrong.Count);
        Assert.Contains(wrong, w => w.StartsWith("x.md:1:", StringComparison.Ordinal) && w.Contains(v106));
        Assert.Contains(wrong, w => w.StartsWith("x.md:3:", StringComparison.Ordinal));          // 0.10 is not a prefix of 0.107.0
        Assert.Contains(wrong, w => w.StartsWith("x.md:5:", StringComparison.Ordinal) && w.Contains(v510));
    }
}
