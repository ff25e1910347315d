using System.Runtime.InteropServices;
using Workbook.Runtime;

namespace Workbook.Doctor.Checks;

/// <summary>
/// A native library file (e.g. TorchSharp's <c>libLibTorchSharp.so</c>): present, a readable 64-bit ELF, loadable
/// against this system's libstdc++ (directly or with the <see cref="LibStdCxxFix"/>), and optionally really loaded with dlopen.
/// </summary>
/// <param name="path">The library file.</param>
/// <param name="probeLoad">Also load it with <see cref="NativeLibrary.Load(string)"/> and report the loader's error.</param>
/// <param name="name">Row name.</param>
public sealed class NativeLibraryCheck(string path, bool probeLoad = false, string name = "native library") : PreflightCheck
{
    /// <inheritdoc/>
    public override string Name => name;

    /// <summary>The fix for a damaged or missing native file.</summary>
    public static string ReinstallFix(string path) =>
        $"The file '{path}' is missing or damaged: delete its package folder from the NuGet cache (~/.nuget/packages/libtorch-cpu-linux-x64 " +
        "and ~/.nuget/packages/torchsharp-cpu, or the folder that contains it) and restore again ('dotnet restore', or rerun the notebook's first cell).";

    /// <inheritdoc/>
    protected override IEnumerable<CheckResult> Evaluate()
    {
        if (!File.Exists(path))
        {
            yield return CheckResult.Fail(Name, $"'{path}' does not exist", ReinstallFix(path));
            yield break;
        }
        if (!RuntimeInformation.IsOSPlatform(OSPlatform.Linux))
        {
            yield return CheckResult.Pass(Name, $"'{Path.GetFileName(path)}' present (ELF checks apply to Linux only)");
            yield break;
        }
        ElfFile elf;
        string? readError = null;
        try { elf = ElfFile.Read(path); }
        catch (InvalidDataException e) { readError = e.Message; elf = null!; }
        if (readError is not null)
        {
            yield return CheckResult.Fail(Name, $"not a loadable library: {readError}", ReinstallFix(path));
            yield break;
        }
        var system = LibStdCxxFix.FindSystemLibStdCxx();
        var provided = system is null ? new HashSet<string>() : ElfFile.Read(system).VersionDefinitions();
        var plan = LibStdCxxFix.MakePlan(elf, provided);
        if (plan.Blocker is not null)
        {
            yield return CheckResult.Fail(Name, $"'{Path.GetFileName(path)}' needs {string.Join(", ", plan.Missing.Select(m => m.Name))}, which {system ?? "this system"} lacks", plan.Blocker);
            yield break;
        }
        string? loadError = null;
        if (probeLoad)
        {
            try { NativeLibrary.Free(NativeLibrary.Load(path)); }
            catch (Exception e) when (e is DllNotFoundException or BadImageFormatException) { loadError = e.Message; }
        }
        if (loadError is not null)
            yield return CheckResult.Fail(Name, $"the loader refused '{path}': {loadError}", ReinstallFix(path));
        else
            yield return CheckResult.Pass(Name, plan.NotNeeded
                ? $"'{Path.GetFileName(path)}' is a valid ELF; system libstdc++ has every required version"
                : $"'{Path.GetFileName(path)}' is a valid ELF; needs the libstdc++ fix ({plan})");
    }
}

/// <summary>TorchSharp loads (with the libstdc++ fix where needed) and computes: the check behind every notebook's first cell.</summary>
/// <param name="load">Brings TorchSharp up; default <see cref="TorchRuntime.EnsureLoaded"/>.</param>
/// <param name="smokeTest">A tiny computation after loading, returning a description; default sums a 2×2 tensor of ones.</param>
public sealed class TorchSharpCheck(Func<NativeLoadReport>? load = null, Func<string>? smokeTest = null) : PreflightCheck
{
    /// <inheritdoc/>
    public override string Name => "TorchSharp";

    /// <summary>The report of the last successful load, for the checks that follow.</summary>
    public NativeLoadReport? Report { get; private set; }

    /// <inheritdoc/>
    protected override IEnumerable<CheckResult> Evaluate()
    {
        string? error = null;
        try { Report = (load ?? TorchRuntime.EnsureLoaded)(); }
        catch (Exception e) { error = e.Message; }
        if (error is not null)
        {
            var lines = error.Split('\n');
            var fix = lines.FirstOrDefault(l => l.StartsWith("What to do", StringComparison.Ordinal)) ?? (lines.Length > 1 ? string.Join(" ", lines.Skip(1)) :
                $"Reference TorchSharp-cpu {PinnedVersions.TorchSharp} and check that the libstdc++ fix can write its cache (WORKBOOK_CACHE); see environment.md, Troubleshooting.");
            yield return CheckResult.Fail(Name, $"did not load: {lines[0]}", fix);
            yield break;
        }
        string smoke;
        string? smokeError = null;
        try { smoke = (smokeTest ?? DefaultSmoke)(); }
        catch (Exception e) { smoke = ""; smokeError = e.Message; }
        var r = Report!;
        var how = $"Patched={r.Patched}; Decision: {r.Decision}";
        if (smokeError is not null)
            yield return CheckResult.Fail(Name, $"loaded ({how}) but a computation failed: {smokeError}", "Delete the patched-copy cache (" + TorchRuntime.CacheRoot() + ") and run again; see environment.md, Troubleshooting.");
        else
            yield return CheckResult.Pass(Name, $"{smoke}; {how}; loaded {r.Loaded ?? "(platform default)"}");
    }

    static string DefaultSmoke()
    {
        using var x = TorchSharp.torch.ones(2, 2);
        using var s = x.sum();
        var v = s.item<float>();
        if (v != 4f) throw new InvalidOperationException($"ones(2,2).sum() gave {v}, expected 4");
        var ts = typeof(TorchSharp.torch).Assembly.GetName().Version?.ToString(3);
        return $"TorchSharp {ts}, libtorch {TorchSharp.torch.__version__}, ones(2,2).sum() = 4";
    }
}
