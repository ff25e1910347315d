using System.Reflection;
using System.Security.Cryptography;
using System.Text;

namespace Workbook.Runtime;

/// <summary>
/// Detects a notebook running an older build of the library than the sources in the checkout, which otherwise
/// shows up as a confusing missing-member error. The build stamps a hash of <c>lib/Workbook/**/*.cs</c> into the
/// assembly (see Workbook.csproj); this recomputes it from the checkout the notebook runs in.
/// </summary>
public static class StaleBuild
{
    /// <summary>The stamp compiled into the loaded library, or null for a build without one.</summary>
    public static string? CompiledStamp =>
        typeof(StaleBuild).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
            .FirstOrDefault(a => a.Key == "WorkbookSourceStamp")?.Value;

    /// <summary>Hash of the library sources under <paramref name="libDirectory"/>; same algorithm as the build's.</summary>
    public static string ComputeStamp(string libDirectory)
    {
        var files = Directory.GetFiles(libDirectory, "*.cs", SearchOption.AllDirectories)
            .Select(f => Path.GetRelativePath(libDirectory, f).Replace('\\', '/'))
            .Where(r => !r.StartsWith("obj/") && !r.StartsWith("bin/"))
            .OrderBy(r => r, StringComparer.Ordinal).ToList();
        var sb = new StringBuilder();
        foreach (var rel in files)
            sb.Append(rel).Append('\n').Append(File.ReadAllText(Path.Combine(libDirectory, rel)).Replace("\r", "")).Append('\0');
        return Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(sb.ToString())))[..16];
    }

    /// <summary>The checkout's <c>lib/Workbook</c> folder above <paramref name="start"/> (default: the current directory), or null.</summary>
    public static string? FindLibSources(string? start = null)
    {
        for (var dir = new DirectoryInfo(start ?? Directory.GetCurrentDirectory()); dir is not null; dir = dir.Parent)
        {
            var lib = Path.Combine(dir.FullName, "lib", "Workbook");
            if (File.Exists(Path.Combine(lib, "Workbook.csproj"))) return lib;
        }
        return null;
    }

    /// <summary>Throws when the loaded library was built from other sources than the checkout's; silent outside a checkout.</summary>
    /// <exception cref="InvalidOperationException">The build is stale; the message gives the command that fixes it.</exception>
    public static void ThrowIfStale(string? start = null)
    {
        var compiled = CompiledStamp;
        var lib = FindLibSources(start);
        if (compiled is null || lib is null) return;
        var current = ComputeStamp(lib);
        if (current != compiled)
            throw new InvalidOperationException(
                $"The Workbook library this notebook loaded (sources {compiled}) is older than the sources in '{lib}' ({current}). " +
                "Rebuild it with 'dotnet build lib/Workbook -c Release' from the repository root, then restart the kernel " +
                "(in VS Code: 'Polyglot Notebook: Restart the current notebook's kernel').");
    }
}
