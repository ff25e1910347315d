using System.Security.Cryptography;
using System.Text;

namespace Workbook.Doctor.Checks;

/// <summary>
/// The checksum manifest of <c>data/</c>: <c>data/checksums.sha256</c>, one line per file, "SHA256  relative/path",
/// the format of <c>sha256sum</c>, so <c>cd data &amp;&amp; sha256sum -c checksums.sha256</c> verifies it too.
/// Regenerate it after adding data with <c>dotnet run --project tools/Workbook.Doctor -- --write-manifest</c>.
/// </summary>
public static class DataManifest
{
    /// <summary>The manifest's file name inside the data folder.</summary>
    public const string FileName = "checksums.sha256";

    /// <summary>Lowercase hex SHA-256 of a file.</summary>
    public static string Sha256(string path)
    {
        using var s = File.OpenRead(path);
        return Convert.ToHexString(SHA256.HashData(s)).ToLowerInvariant();
    }

    /// <summary>Every file under <paramref name="dataDirectory"/> except the manifest and hidden files, as sorted relative paths with '/'.</summary>
    public static IReadOnlyList<string> ListFiles(string dataDirectory) =>
        Directory.GetFiles(dataDirectory, "*", SearchOption.AllDirectories)
            .Select(f => Path.GetRelativePath(dataDirectory, f).Replace('\\', '/'))
            .Where(r => r != FileName && !r.Split('/').Any(p => p.StartsWith('.')))
            .OrderBy(r => r, StringComparer.Ordinal).ToList();

    /// <summary>Writes the manifest of every file in <paramref name="dataDirectory"/>; returns the number of files.</summary>
    public static int Write(string dataDirectory, string? manifestPath = null)
    {
        var files = ListFiles(dataDirectory);
        var sb = new StringBuilder();
        foreach (var rel in files) sb.Append(Sha256(Path.Combine(dataDirectory, rel))).Append("  ").Append(rel).Append('\n');
        File.WriteAllText(manifestPath ?? Path.Combine(dataDirectory, FileName), sb.ToString());
        return files.Count;
    }

    /// <summary>Reads a manifest into (relative path, sha256) pairs.</summary>
    /// <exception cref="InvalidDataException">A line is not "HASH  path"; the message gives the line number.</exception>
    public static IReadOnlyList<(string Path, string Sha256)> Read(string manifestPath)
    {
        var list = new List<(string, string)>();
        int n = 0;
        foreach (var raw in File.ReadLines(manifestPath))
        {
            n++;
            var line = raw.TrimEnd('\r');
            if (line.Length == 0 || line.StartsWith('#')) continue;
            int sp = line.IndexOf(' ');
            if (sp != 64 || line.Length < 67 || !line[..64].All(Uri.IsHexDigit))
                throw new InvalidDataException($"'{manifestPath}' line {n} is not '<64 hex digits>  <path>': '{line}'.");
            list.Add((line[66..].TrimStart('*'), line[..64].ToLowerInvariant()));
        }
        return list;
    }
}

/// <summary>Every file listed in the data manifest is present with the listed SHA-256; files missing from the manifest are reported.</summary>
/// <param name="dataDirectory">The data folder (<c>data/</c>).</param>
/// <param name="manifestPath">The manifest; default <c>data/checksums.sha256</c>.</param>
public sealed class DataFilesCheck(string dataDirectory, string? manifestPath = null) : PreflightCheck
{
    const string Regenerate = "dotnet run --project tools/Workbook.Doctor -- --write-manifest";

    /// <inheritdoc/>
    public override string Name => "data files";

    /// <inheritdoc/>
    protected override IEnumerable<CheckResult> Evaluate()
    {
        var manifest = manifestPath ?? Path.Combine(dataDirectory, DataManifest.FileName);
        if (!Directory.Exists(dataDirectory))
        {
            yield return CheckResult.Fail(Name, $"data folder '{dataDirectory}' does not exist",
                "Run the doctor from the repository root (or pass --repo), or restore data/ with 'git checkout -- data'.");
            yield break;
        }
        if (!File.Exists(manifest))
        {
            yield return CheckResult.Fail(Name, $"manifest '{manifest}' is missing", $"Restore it with 'git checkout -- data/{DataManifest.FileName}', or create it with '{Regenerate}'.");
            yield break;
        }
        var entries = DataManifest.Read(manifest);
        var missing = new List<string>();
        var lfs = new List<string>();
        var wrong = new List<string>();
        long bytes = 0;
        foreach (var (rel, sha) in entries)
        {
            var path = Path.Combine(dataDirectory, rel);
            if (!File.Exists(path)) { missing.Add(rel); continue; }
            bytes += new FileInfo(path).Length;
            var actual = DataManifest.Sha256(path);
            if (actual == sha) continue;
            if (IsLfsPointer(path)) lfs.Add(rel);
            else wrong.Add($"{rel} (expected {sha[..12]}…, got {actual[..12]}…)");
        }
        var listed = entries.Select(e => e.Path).ToHashSet(StringComparer.Ordinal);
        var unlisted = DataManifest.ListFiles(dataDirectory).Where(f => !listed.Contains(f)).ToList();

        if (missing.Count > 0)
            yield return CheckResult.Fail(Name, $"{missing.Count} of {entries.Count} file(s) missing: {Join(missing)}",
                $"Restore them: 'git checkout -- {string.Join(" ", missing.Take(5).Select(m => "data/" + m))}' (or 'git lfs pull' if your clone skipped large files).");
        if (lfs.Count > 0)
            yield return CheckResult.Fail(Name, $"{lfs.Count} file(s) are Git LFS pointers, not data: {Join(lfs)}", "Run 'git lfs install && git lfs pull' in the repository.");
        if (wrong.Count > 0)
            yield return CheckResult.Fail(Name, $"{wrong.Count} file(s) with a wrong checksum: {Join(wrong)}",
                $"The file is damaged or was changed: restore it with 'git checkout -- data/<file>'. If you changed data on purpose, regenerate the manifest with '{Regenerate}'.");
        if (unlisted.Count > 0)
            yield return CheckResult.Warn(Name, $"{unlisted.Count} file(s) not in the manifest: {Join(unlisted)}", $"If they belong to the repository, add them with '{Regenerate}'.");
        if (missing.Count + lfs.Count + wrong.Count == 0)
            yield return CheckResult.Pass(Name, $"{entries.Count} file(s), {bytes / 1048576.0:F1} MiB, all checksums match");
    }

    static bool IsLfsPointer(string path)
    {
        if (new FileInfo(path).Length > 1024) return false;
        return File.ReadAllText(path).StartsWith("version https://git-lfs", StringComparison.Ordinal);
    }

    static string Join(List<string> items) => string.Join(", ", items.Take(6)) + (items.Count > 6 ? $" and {items.Count - 6} more" : "");
}
