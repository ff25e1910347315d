using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;

namespace Workbook.Engine;

/// <summary>What a restore produced: managed assemblies to reference and folders holding native libraries.</summary>
/// <param name="Assemblies">Runtime assembly paths, one per simple name.</param>
/// <param name="NativeDirectories">Folders with the packages' native libraries for this machine's RID.</param>
/// <param name="Packages">Resolved "Id/Version" of every package, direct and transitive.</param>
public sealed record RestoreResult(IReadOnlyList<string> Assemblies, IReadOnlyList<string> NativeDirectories, IReadOnlyList<string> Packages);

/// <summary>Thrown when a package restore fails; the message carries NuGet's own errors.</summary>
public sealed class PackageRestoreException : Exception
{
    /// <summary>Creates the exception.</summary>
    public PackageRestoreException(string message) : base(message) { }
}

/// <summary>
/// Restores <c>#r "nuget: …"</c> packages the way the .NET Interactive kernel does: it writes a small project
/// with the package references, runs <c>dotnet restore</c> on it, and reads <c>project.assets.json</c> for the
/// resolved runtime assemblies and native folders of this machine's runtime identifier. Restores are cached by
/// their inputs. Packages from local <c>#i</c> folders are re-extracted when the folder has a newer build of the
/// same version (so a rebuilt library is never served stale from the NuGet cache).
/// </summary>
public sealed class PackageRestorer
{
    readonly string _cacheRoot;

    /// <summary>Creates a restorer that keeps its generated projects under <paramref name="cacheRoot"/>.</summary>
    public PackageRestorer(string? cacheRoot = null)
    {
        _cacheRoot = cacheRoot ?? Path.Combine(DefaultCache(), "restore");
    }

    static string DefaultCache()
    {
        var env = Environment.GetEnvironmentVariable("WORKBOOK_CACHE");
        if (!string.IsNullOrWhiteSpace(env)) return env;
        var xdg = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
        return Path.Combine(!string.IsNullOrWhiteSpace(xdg) ? xdg : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache"), "workbook");
    }

    /// <summary>The target framework restores use: the running runtime's (net8.0 on .NET 8, net10.0 on .NET 10).</summary>
    public static string TargetFramework => $"net{Environment.Version.Major}.0";

    /// <summary>This machine's runtime identifier, e.g. linux-x64.</summary>
    public static string RuntimeIdentifier
    {
      get
      {
        var arch = RuntimeInformation.OSArchitecture == Architecture.Arm64 ? "arm64" : "x64";
        if (OperatingSystem.IsWindows()) return "win-" + arch;
        if (OperatingSystem.IsMacOS()) return "osx-" + arch;
        return "linux-" + arch;
      }
    }

    /// <summary>Restores the packages (and all their dependencies) from the default sources plus <paramref name="sources"/>.</summary>
    /// <exception cref="PackageRestoreException">NuGet could not restore; the message has its errors and the generated project's path.</exception>
    public RestoreResult Restore(IReadOnlyList<PackageReference> packages, IReadOnlyList<string> sources, TextWriter? log = null)
    {
        var tfm = TargetFramework;
        var rid = RuntimeIdentifier;
        var key = string.Join("|", packages.Select(p => $"{p.Id}@{p.Version}").OrderBy(s => s, StringComparer.OrdinalIgnoreCase))
                  + "#" + string.Join("|", sources) + "#" + tfm + rid;
        var dir = Path.Combine(_cacheRoot, Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(key)))[..16].ToLowerInvariant());
        Directory.CreateDirectory(dir);

        EvictStaleLocalPackages(sources, NuGetPackagesFolder());

        var project = new StringBuilder();
        project.AppendLine("<Project Sdk=\"Microsoft.NET.Sdk\">");
        project.AppendLine("  <PropertyGroup>");
        project.AppendLine($"    <TargetFramework>{tfm}</TargetFramework>");
        project.AppendLine($"    <RuntimeIdentifier>{rid}</RuntimeIdentifier>");
        project.AppendLine("    <SelfContained>false</SelfContained>");
        project.AppendLine("    <ManagePackageVersionsCentrally>false</ManagePackageVersionsCentrally>");
        project.AppendLine("    <NoWarn>$(NoWarn);NU1603;NU1605;NU1701;NU1510</NoWarn>");
        if (sources.Count > 0)
            project.AppendLine($"    <RestoreAdditionalProjectSources>{string.Join(";", sources.Select(System.Security.SecurityElement.Escape))}</RestoreAdditionalProjectSources>");
        project.AppendLine("  </PropertyGroup>");
        project.AppendLine("  <ItemGroup>");
        foreach (var p in packages)
            project.AppendLine($"    <PackageReference Include=\"{System.Security.SecurityElement.Escape(p.Id)}\" Version=\"{System.Security.SecurityElement.Escape(p.Version ?? "*")}\" />");
        project.AppendLine("  </ItemGroup>");
        project.AppendLine("</Project>");
        var projectPath = Path.Combine(dir, "restore.csproj");
        File.WriteAllText(projectPath, project.ToString());
        // Keep the repository's Directory.*.props out of the generated project.
        File.WriteAllText(Path.Combine(dir, "Directory.Build.props"), "<Project />");
        File.WriteAllText(Path.Combine(dir, "Directory.Packages.props"), "<Project />");

        var psi = new ProcessStartInfo("dotnet", $"restore \"{projectPath}\" --nologo -v q")
        {
            RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false, WorkingDirectory = dir,
        };
        psi.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        psi.Environment["DOTNET_NOLOGO"] = "1";
        var sw = Stopwatch.StartNew();
        using var proc = Process.Start(psi) ?? throw new PackageRestoreException("Could not start 'dotnet restore': is the .NET SDK on PATH?");
        var stdout = proc.StandardOutput.ReadToEndAsync();
        var stderr = proc.StandardError.ReadToEndAsync();
        proc.WaitForExit();
        var output = stdout.Result + stderr.Result;
        if (proc.ExitCode != 0)
        {
            var errors = string.Join("\n", output.Split('\n').Where(l => l.Contains("error", StringComparison.OrdinalIgnoreCase)).Select(l => "  " + l.Trim()).Distinct().Take(12));
            throw new PackageRestoreException(
                $"Restoring {string.Join(", ", packages.Select(p => $"{p.Id} {p.Version ?? "(latest)"}"))} failed:\n{errors}\n" +
                $"Generated project: {projectPath}. Check the package id and version, the #i sources, and whether NuGet is reachable (offline, only the local cache is used).");
        }
        log?.WriteLine($"    restored {packages.Count} package(s) in {sw.Elapsed.TotalSeconds:F1}s");
        return ReadAssets(Path.Combine(dir, "obj", "project.assets.json"), tfm, rid);
    }

    static string NuGetPackagesFolder()
    {
        var env = Environment.GetEnvironmentVariable("NUGET_PACKAGES");
        return !string.IsNullOrWhiteSpace(env) ? env : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
    }

    // A package rebuilt with the same version is not re-extracted by NuGet. Compare the folder's .nupkg with the
    // cached one's hash and drop the cached copy when they differ.
    static void EvictStaleLocalPackages(IEnumerable<string> sources, string packagesFolder)
    {
        foreach (var src in sources.Where(Directory.Exists))
            foreach (var nupkg in Directory.GetFiles(src, "*.nupkg"))
            {
                var name = Path.GetFileNameWithoutExtension(nupkg);
                var split = SplitIdVersion(name);
                if (split is null) continue;
                var (id, version) = split.Value;
                var cached = Path.Combine(packagesFolder, id.ToLowerInvariant(), version.ToLowerInvariant());
                var shaFile = Path.Combine(cached, $"{id.ToLowerInvariant()}.{version.ToLowerInvariant()}.nupkg.sha512");
                if (!File.Exists(shaFile)) continue;
                using var s = File.OpenRead(nupkg);
                var sha = Convert.ToBase64String(SHA512.HashData(s));
                if (File.ReadAllText(shaFile).Trim() != sha)
                {
                    try { Directory.Delete(cached, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
                }
            }
    }

    static (string Id, string Version)? SplitIdVersion(string fileName)
    {
        // Id.1.2.3 or Id.1.2.3-pre: the version starts at the first ".<digit>" segment followed only by version parts.
        var parts = fileName.Split('.');
        for (int i = 1; i < parts.Length; i++)
            if (parts[i].Length > 0 && char.IsDigit(parts[i][0]))
                return (string.Join('.', parts[..i]), string.Join('.', parts[i..]));
        return null;
    }

    /// <summary>Reads the resolved runtime assemblies and native folders from a <c>project.assets.json</c>.</summary>
    public static RestoreResult ReadAssets(string assetsPath, string tfm, string rid)
    {
        var root = JsonNode.Parse(File.ReadAllText(assetsPath))!.AsObject();
        var packageFolders = root["packageFolders"]!.AsObject().Select(kv => kv.Key).ToList();
        var libraries = root["libraries"]!.AsObject();
        var targets = root["targets"]!.AsObject();
        var target = targets[$"{tfm}/{rid}"]?.AsObject() ?? targets[tfm]?.AsObject()
                     ?? throw new PackageRestoreException($"'{assetsPath}' has no target {tfm}/{rid}.");
        var framework = FrameworkAssemblyNames();
        var assemblies = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        var natives = new List<string>();
        var packages = new List<string>();
        foreach (var (key, node) in target)
        {
            if (node?["type"]?.GetValue<string>() != "package") continue;
            packages.Add(key);
            var relPath = libraries[key]?["path"]?.GetValue<string>() ?? key.ToLowerInvariant();
            var pkgDir = packageFolders.Select(f => Path.Combine(f, relPath)).FirstOrDefault(Directory.Exists);
            if (pkgDir is null) continue;
            if (node["runtime"] is JsonObject runtime)
                foreach (var (file, _) in runtime)
                {
                    if (!file.EndsWith(".dll", StringComparison.OrdinalIgnoreCase)) continue;
                    var name = Path.GetFileNameWithoutExtension(file);
                    if (framework.Contains(name)) continue; // the shared framework's copy wins at run time
                    assemblies.TryAdd(name, Path.Combine(pkgDir, file));
                }
            if (node["native"] is JsonObject native)
                foreach (var (file, _) in native)
                {
                    if (file.EndsWith("_._", StringComparison.Ordinal)) continue;
                    var d = Path.GetDirectoryName(Path.Combine(pkgDir, file))!;
                    if (!natives.Contains(d)) natives.Add(d);
                }
        }
        return new RestoreResult(assemblies.Values.ToList(), natives, packages);
    }

    /// <summary>Simple names of the assemblies in the running shared framework(s).</summary>
    public static HashSet<string> FrameworkAssemblyNames()
    {
        var tpa = (AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES") as string ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries);
        var sharedRoot = Path.GetDirectoryName(Path.GetDirectoryName(typeof(object).Assembly.Location)!)!;
        return tpa.Where(p => p.StartsWith(sharedRoot, StringComparison.Ordinal) || Path.GetDirectoryName(Path.GetDirectoryName(p)) == sharedRoot)
            .Select(Path.GetFileNameWithoutExtension).OfType<string>().ToHashSet(StringComparer.OrdinalIgnoreCase);
    }
}
