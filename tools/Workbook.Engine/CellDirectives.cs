using System.Text.RegularExpressions;

namespace Workbook.Engine;

/// <summary>A package reference from <c>#r "nuget: Id, Version"</c>.</summary>
/// <param name="Id">Package id.</param>
/// <param name="Version">Version or range; null means the newest.</param>
/// <param name="Line">1-based line in the cell.</param>
public sealed record PackageReference(string Id, string? Version, int Line);

/// <summary>The directives of one cell and the C# left after removing them (line numbers preserved).</summary>
/// <param name="Code">The cell's C# with each directive line blanked.</param>
/// <param name="Packages"><c>#r "nuget: …"</c> references.</param>
/// <param name="Sources"><c>#i "nuget: …"</c> package sources (absolute when they were relative paths).</param>
/// <param name="AssemblyPaths"><c>#r "path.dll"</c> references, absolute.</param>
/// <param name="Errors">Directives that could not be understood, with their line.</param>
public sealed record ParsedCell(string Code, IReadOnlyList<PackageReference> Packages, IReadOnlyList<string> Sources,
    IReadOnlyList<string> AssemblyPaths, IReadOnlyList<(int Line, string Message)> Errors);

/// <summary>
/// Parses the Polyglot/.NET Interactive directives of a C# cell: <c>#r "nuget: Id, Version"</c>,
/// <c>#i "nuget: source"</c>, <c>#r "relative/or/absolute.dll"</c> (relative to the notebook), and a leading
/// <c>#!csharp</c> kernel selector. Directive lines are replaced by empty lines so compiler line numbers still
/// match the cell the reader sees.
/// </summary>
public static partial class CellDirectives
{
    [GeneratedRegex("""^\s*#r\s+"nuget:\s*(?<id>[^,"\s]+)\s*(,\s*(?<ver>[^"]*?))?\s*"\s*$""")]
    private static partial Regex NuGetRef();

    [GeneratedRegex("""^\s*#i\s+"(nuget:\s*)?(?<src>[^"]+)"\s*$""")]
    private static partial Regex Source();

    [GeneratedRegex("""^\s*#r\s+"(?<path>[^"]+)"\s*$""")]
    private static partial Regex PathRef();

    /// <summary>Maps kernel names and aliases to a language: "csharp", "fsharp", "pwsh", "markdown", …</summary>
    public static string NormaliseLanguage(string name) => name.Trim().ToLowerInvariant() switch
    {
        "c#" or "csharp" or "cs" or ".net-csharp" => "csharp",
        "f#" or "fsharp" or "fs" or ".net-fsharp" => "fsharp",
        "pwsh" or "powershell" or ".net-pwsh" => "pwsh",
        "md" or "markdown" => "markdown",
        var other => other,
    };

    /// <summary>The language a <c>#!name</c> magic selects, or null if the magic is not a kernel selector.</summary>
    public static string? LanguageMagic(string magic) => magic.Trim().ToLowerInvariant() switch
    {
        "csharp" or "c#" => "csharp",
        "fsharp" or "f#" => "fsharp",
        "pwsh" or "powershell" => "pwsh",
        "markdown" or "md" => "markdown",
        "javascript" or "js" => "javascript",
        "html" => "html",
        _ => null,
    };

    /// <summary>Parses a cell. Relative paths resolve against <paramref name="baseDirectory"/> (the notebook's folder).</summary>
    public static ParsedCell Parse(string source, string baseDirectory)
    {
        var lines = source.Replace("\r\n", "\n").Split('\n');
        var packages = new List<PackageReference>();
        var sources = new List<string>();
        var paths = new List<string>();
        var errors = new List<(int, string)>();
        for (int i = 0; i < lines.Length; i++)
        {
            var line = lines[i];
            var trimmed = line.TrimStart();
            if (!trimmed.StartsWith('#')) continue;
            if (trimmed.StartsWith("#!", StringComparison.Ordinal))
            {
                if (LanguageMagic(trimmed[2..]) == "csharp") { lines[i] = ""; continue; }
                if (trimmed.StartsWith("#!time", StringComparison.Ordinal)) { lines[i] = ""; continue; }
                errors.Add((i + 1, $"Unsupported magic command '{trimmed.Trim()}': the Workbook engine runs C# cells only (#!csharp, #!time)."));
                lines[i] = "";
                continue;
            }
            Match m;
            if ((m = NuGetRef().Match(line)).Success)
            {
                var ver = m.Groups["ver"].Success && m.Groups["ver"].Value.Trim().Length > 0 ? m.Groups["ver"].Value.Trim() : null;
                packages.Add(new PackageReference(m.Groups["id"].Value, ver, i + 1));
                lines[i] = "";
            }
            else if ((m = Source().Match(line)).Success)
            {
                var src = m.Groups["src"].Value.Trim();
                sources.Add(IsUrl(src) ? src : Path.GetFullPath(Path.Combine(baseDirectory, src)));
                lines[i] = "";
            }
            else if ((m = PathRef().Match(line)).Success)
            {
                var p = m.Groups["path"].Value.Trim();
                if (p.StartsWith("nuget:", StringComparison.OrdinalIgnoreCase))
                    errors.Add((i + 1, $"Malformed package reference '{line.Trim()}': expected #r \"nuget: PackageId, Version\"."));
                else
                    paths.Add(Path.GetFullPath(Path.Combine(baseDirectory, p)));
                lines[i] = "";
            }
        }
        return new ParsedCell(string.Join('\n', lines), packages, sources, paths, errors);
    }

    /// <summary>
    /// Replaces every directive line (<c>#r</c>, <c>#i</c>, <c>#!</c>) with spaces of the same length, so the rest is
    /// plain C# at unchanged positions (what editor services such as completion parse).
    /// </summary>
    public static string MaskDirectives(string source)
    {
        var lines = source.Split('\n');
        for (int i = 0; i < lines.Length; i++)
        {
            var t = lines[i].TrimStart();
            if (t.StartsWith("#r", StringComparison.Ordinal) || t.StartsWith("#i", StringComparison.Ordinal) || t.StartsWith("#!", StringComparison.Ordinal))
                lines[i] = new string(' ', lines[i].TrimEnd('\r').Length) + (lines[i].EndsWith('\r') ? "\r" : "");
        }
        return string.Join('\n', lines);
    }

    static bool IsUrl(string s) => s.StartsWith("http://", StringComparison.OrdinalIgnoreCase) || s.StartsWith("https://", StringComparison.OrdinalIgnoreCase);
}
