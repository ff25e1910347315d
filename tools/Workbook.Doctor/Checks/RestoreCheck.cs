using System.Runtime.InteropServices;
using System.Text;
using Workbook.Runtime;

namespace Workbook.Doctor.Checks;

/// <summary>
/// Restores what a notebook's first cell restores (<c>Workbook 0.1.0</c> from <c>artifacts/packages</c> and
/// <c>TorchSharp-cpu</c> at their pinned versions (<see cref="PinnedVersions"/>), with all dependencies) in a generated throw-away project, either from the
/// configured NuGet feeds or offline: only <c>artifacts/packages</c> and the local NuGet cache as sources.
/// </summary>
/// <param name="packagesDirectory">The repository's <c>artifacts/packages</c> (the library's .nupkg).</param>
/// <param name="offline">Use only local sources (artifacts/packages and the global packages folder).</param>
/// <param name="packages">Package ids and versions; default the notebook packages.</param>
/// <param name="workDirectory">Where to generate the project; default a fresh temporary folder, deleted afterwards.</param>
public sealed class PackageRestoreCheck(string packagesDirectory, bool offline, IReadOnlyList<(string Id, string Version)>? packages = null,
    string? workDirectory = null) : PreflightCheck
{
    /// <summary>The packages every notebook's first cell references.</summary>
    public static readonly IReadOnlyList<(string Id, string Version)> NotebookPackages = new[] { ("Workbook", PinnedVersions.Workbook), ("TorchSharp-cpu", PinnedVersions.Of("TorchSharp-cpu")) };

    /// <inheritdoc/>
    public override string Name => offline ? "restore (offline cache)" : "restore (NuGet feeds)";

    /// <summary>The global packages folder: NUGET_PACKAGES or ~/.nuget/packages.</summary>
    public static string GlobalPackagesFolder()
    {
        var env = Environment.GetEnvironmentVariable("NUGET_PACKAGES");
        return !string.IsNullOrWhiteSpace(env) ? env : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
    }

    /// <inheritdoc/>
    protected override IEnumerable<CheckResult> Evaluate()
    {
        var list = packages ?? NotebookPackages;
        var wb = list.FirstOrDefault(p => p.Id == "Workbook");
        if (wb.Id is not null && !File.Exists(Path.Combine(packagesDirectory, $"Workbook.{wb.Version}.nupkg")))
        {
            yield return CheckResult.Fail(Name, $"'{Path.Combine(packagesDirectory, $"Workbook.{wb.Version}.nupkg")}' is missing: the notebooks' package source (notebooks/NuGet.config) has no library package",
                "Build (and pack) the library: 'dotnet build lib/Workbook -c Release' from the repository root.");
            yield break;
        }
        var dir = workDirectory ?? Path.Combine(Path.GetTempPath(), $"workbook-doctor-{Environment.ProcessId}-{(offline ? "offline" : "feeds")}");
        bool temporary = workDirectory is null;
        Directory.CreateDirectory(dir);
        try
        {
            var rid = (RuntimeInformation.IsOSPlatform(OSPlatform.Windows) ? "win" : RuntimeInformation.IsOSPlatform(OSPlatform.OSX) ? "osx" : "linux")
                      + "-" + RuntimeInformation.ProcessArchitecture.ToString().ToLowerInvariant();
            var project = new StringBuilder();
            project.AppendLine("<Project Sdk=\"Microsoft.NET.Sdk\"><PropertyGroup>");
            project.AppendLine($"<TargetFramework>net{Environment.Version.Major}.0</TargetFramework><RuntimeIdentifier>{rid}</RuntimeIdentifier><SelfContained>false</SelfContained>");
            project.AppendLine("<ManagePackageVersionsCentrally>false</ManagePackageVersionsCentrally><NoWarn>$(NoWarn);NU1603;NU1605;NU1701;NU1510</NoWarn>");
            if (!offline) project.AppendLine($"<RestoreAdditionalProjectSources>{System.Security.SecurityElement.Escape(Path.GetFullPath(packagesDirectory))}</RestoreAdditionalProjectSources>");
            project.AppendLine("</PropertyGroup><ItemGroup>");
            foreach (var (id, version) in list) project.AppendLine($"<PackageReference Include=\"{id}\" Version=\"{version}\" />");
            project.AppendLine("</ItemGroup></Project>");
            var csproj = Path.Combine(dir, "doctor-restore.csproj");
            File.WriteAllText(csproj, project.ToString());
            File.WriteAllText(Path.Combine(dir, "Directory.Build.props"), "<Project />");
            File.WriteAllText(Path.Combine(dir, "Directory.Packages.props"), "<Project />");
            var args = new List<string> { "restore", csproj, "--nologo", "-v", "q" };
            if (offline)
                args.AddRange(new[] { "--source", Path.GetFullPath(packagesDirectory), "--source", GlobalPackagesFolder() });
            var sw = System.Diagnostics.Stopwatch.StartNew();
            var r = Processes.Run("dotnet", args, dir, timeoutSeconds: 300);
            var what = string.Join(", ", list.Select(p => $"{p.Id} {p.Version}"));
            if (r.ExitCode == 0)
            {
                yield return CheckResult.Pass(Name, $"{what} restored in {sw.Elapsed.TotalSeconds:F1}s" + (offline ? " without network" : ""));
                yield break;
            }
            var errors = r.Output.Split('\n').Select(l => l.Trim()).Where(l => l.Contains("error", StringComparison.OrdinalIgnoreCase))
                .Select(l => l.Replace(csproj, "").Replace(" : ", ": ").Trim()).Distinct().Take(4).ToList();
            var where = errors.Count > 0 ? string.Join(" | ", errors) : DotnetSdkCheck.FirstLine(r.Output);
            yield return CheckResult.Fail(Name, $"restoring {what} failed: {where}",
                offline
                    ? $"A package is not in the local cache ({GlobalPackagesFolder()}): restore once while online ('dotnet build' at the repository root and run one notebook), then the cache serves every session offline."
                    : "Check the network or proxy (NuGet feeds in ~/.nuget/NuGet/NuGet.Config), and that 'dotnet build lib/Workbook -c Release' produced artifacts/packages.");
        }
        finally
        {
            if (temporary) { try { Directory.Delete(dir, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { } }
        }
    }
}
