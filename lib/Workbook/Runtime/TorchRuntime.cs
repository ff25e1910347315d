using System.Reflection;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using TorchSharp;

namespace Workbook.Runtime;

/// <summary>How the TorchSharp native library was brought up; shown by <see cref="Notebook.Setup"/>.</summary>
/// <param name="Patched">True when the patched copy was loaded.</param>
/// <param name="Decision">Why: "not needed", the plan, or "off (WORKBOOK_NATIVE_FIX=off)".</param>
/// <param name="Original">The package's <c>libLibTorchSharp.so</c>, when found.</param>
/// <param name="Loaded">The file actually loaded (the patched copy or the original).</param>
/// <param name="SystemLibStdCxx">The libstdc++ the decision was made against.</param>
public sealed record NativeLoadReport(bool Patched, string Decision, string? Original, string? Loaded, string? SystemLibStdCxx);

/// <summary>Thrown when TorchSharp's native library cannot be made to load; the message says what to do.</summary>
public sealed class TorchNativeLoadException : Exception
{
    /// <summary>Creates the exception.</summary>
    public TorchNativeLoadException(string message, Exception? inner = null) : base(message, inner) { }
}

/// <summary>
/// Makes TorchSharp's native library load on every supported machine, before TorchSharp initialises.
/// On Linux it checks whether the system libstdc++ defines every version <c>libLibTorchSharp.so</c> requires;
/// if not, it writes a patched copy into a cache (see <see cref="LibStdCxxFix"/>), preloads libtorch from the
/// package's folder, and answers TorchSharp's own native lookups with the patched copy. The package's file is
/// never modified. Elsewhere, and where the system library is new enough, it does nothing.
/// Environment: <c>WORKBOOK_NATIVE_FIX</c> = <c>auto</c> (default), <c>off</c> or <c>force</c>;
/// <c>WORKBOOK_CACHE</c> = cache folder (default <c>$XDG_CACHE_HOME/workbook</c> or <c>~/.cache/workbook</c>).
/// </summary>
public static class TorchRuntime
{
    const string NativeName = "LibTorchSharp";
    const string NativeFile = "libLibTorchSharp.so";
    static readonly object Gate = new();
    static NativeLoadReport? _report;
    static Exception? _failure;
    static IntPtr _patchedHandle;
    static List<string> _nativeDirs = new();

    /// <summary>The result of the last <see cref="EnsureLoaded"/>, or null before it ran.</summary>
    public static NativeLoadReport? Report => _report;

    /// <summary>
    /// Applies the fix where needed and initialises TorchSharp's CPU backend. Safe to call many times and
    /// from several threads; the work happens once per process.
    /// </summary>
    /// <exception cref="TorchNativeLoadException">The native library cannot be loaded; the message says why and what to do.</exception>
    public static NativeLoadReport EnsureLoaded()
    {
        lock (Gate)
        {
            if (_failure is not null) throw new TorchNativeLoadException(_failure.Message, _failure);
            if (_report is not null) return _report;
            try
            {
                NativeHeap.Tune(); // before libtorch allocates; opt-in (WORKBOOK_MALLOC=on, see NativeHeap)
                _report = PrepareNative();
                InitializeBackend();
                return _report;
            }
            catch (Exception e)
            {
                _failure = e is TorchNativeLoadException ? e : new TorchNativeLoadException(
                    $"TorchSharp's native library did not load: {e.Message}\n{Advice}", e);
                throw new TorchNativeLoadException(_failure.Message, _failure.InnerException);
            }
        }
    }

    static void InitializeBackend()
    {
        try { torch.InitializeDeviceType(DeviceType.CPU); }
        catch (Exception e)
        {
            throw new TorchNativeLoadException(
                $"TorchSharp could not initialise its CPU backend ({e.GetType().Name}: {FirstLine(e.Message)}).\n" +
                $"Native fix: {_report?.Decision ?? "not run"}; loaded '{_report?.Loaded ?? "?"}'.\n{Advice}", e);
        }
    }

    static string Advice =>
        $"What to do: reference the native package (a notebook's first cell has #r \"nuget: TorchSharp-cpu, {PinnedVersions.TorchSharp}\"; " +
        "an app references TorchSharp-cpu), or on Linux make sure the libstdc++ fix can write its cache " +
        "(set WORKBOOK_CACHE to a writable folder). 'dotnet run --project tools/Workbook.Doctor' checks the machine; " +
        "environment.md, section Troubleshooting, lists the known causes.";

    static NativeLoadReport PrepareNative()
    {
        var mode = (Environment.GetEnvironmentVariable("WORKBOOK_NATIVE_FIX") ?? "auto").Trim().ToLowerInvariant();
        if (!RuntimeInformation.IsOSPlatform(OSPlatform.Linux))
            return new NativeLoadReport(false, "not needed on " + RuntimeInformation.OSDescription, null, null, null);
        if (mode == "off")
            return new NativeLoadReport(false, "off (WORKBOOK_NATIVE_FIX=off)", null, null, null);

        var torchAssembly = typeof(torch).Assembly;
        _nativeDirs = CandidateNativeDirectories(torchAssembly).ToList();
        var original = _nativeDirs.Select(d => Path.Combine(d, NativeFile)).FirstOrDefault(File.Exists);
        if (original is null)
            throw new TorchNativeLoadException(
                $"Could not find {NativeFile}. Looked in:\n  {string.Join("\n  ", _nativeDirs)}\n" +
                $"The native runtime package is missing: reference TorchSharp-cpu (or TorchSharp-cuda-linux), version {PinnedVersions.TorchSharp}.");

        var systemLib = LibStdCxxFix.FindSystemLibStdCxx();
        var elf = ElfFile.Read(original);
        var provided = systemLib is null ? new HashSet<string>() : ElfFile.Read(systemLib).VersionDefinitions();
        var plan = LibStdCxxFix.MakePlan(elf, provided);
        if (plan.NotNeeded && mode != "force")
            return new NativeLoadReport(false, plan.ToString(), original, original, systemLib);
        if (plan.NotNeeded) // force: weaken the GLIBCXX_3.4.32 pin even though it is present (tests the path)
            plan = ForcedPlan(elf);
        if (!plan.CanPatch) throw new TorchNativeLoadException(plan.Blocker!);

        var patched = PatchedCopyPath(original);
        if (!File.Exists(patched))
        {
            LibStdCxxFix.Apply(elf, plan);
            Directory.CreateDirectory(Path.GetDirectoryName(patched)!);
            elf.Save(patched);
        }
        PreloadDependencies();
        if (!TryLoad(patched, out _patchedHandle, out var error))
            throw new TorchNativeLoadException(
                $"The patched copy '{patched}' of '{original}' did not load: {error}\n" +
                $"Plan: {plan}. Delete '{Path.GetDirectoryName(patched)}' to rebuild it, or run with WORKBOOK_NATIVE_FIX=off to see the original error.\n{Advice}");
        NativeLibrary.SetDllImportResolver(torchAssembly, Resolve);
        return new NativeLoadReport(true, plan.ToString(), original, patched, systemLib);
    }

    static LibStdCxxFix.Plan ForcedPlan(ElfFile elf)
    {
        var pin = elf.VersionNeeds().Where(n => n.File == LibStdCxxFix.LibStdCxx && n.Name == "GLIBCXX_3.4.32").ToHashSet();
        var all = elf.VersionNeeds().Where(n => n.File == LibStdCxxFix.LibStdCxx).Select(n => n.Name).ToHashSet();
        all.ExceptWith(pin.Select(p => p.Name));
        return LibStdCxxFix.MakePlan(elf, all);
    }

    /// <summary>Where the patched copy of <paramref name="original"/> lives: keyed by the original's SHA-256.</summary>
    public static string PatchedCopyPath(string original)
    {
        using var stream = File.OpenRead(original);
        var hash = Convert.ToHexString(SHA256.HashData(stream))[..16].ToLowerInvariant();
        return Path.Combine(CacheRoot(), "native", hash, NativeFile);
    }

    /// <summary>The cache folder: <c>WORKBOOK_CACHE</c>, else <c>$XDG_CACHE_HOME/workbook</c>, else <c>~/.cache/workbook</c>.</summary>
    public static string CacheRoot()
    {
        var env = Environment.GetEnvironmentVariable("WORKBOOK_CACHE");
        if (!string.IsNullOrWhiteSpace(env)) return env;
        var xdg = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
        var root = !string.IsNullOrWhiteSpace(xdg) ? xdg : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache");
        return Path.Combine(root, "workbook");
    }

    // TorchSharp resolves "LibTorchSharp" (and, for CUDA, "torch_cuda") through this callback, both for its own
    // NativeLibrary.TryLoad calls and for every DllImport.
    static IntPtr Resolve(string name, Assembly assembly, DllImportSearchPath? path)
    {
        if (name == NativeName) return _patchedHandle;
        foreach (var dir in _nativeDirs)
        {
            var file = Path.Combine(dir, $"lib{name}.so");
            if (File.Exists(file) && NativeLibrary.TryLoad(file, out var h)) return h;
        }
        return IntPtr.Zero;
    }

    // The patched copy sits in the cache, so its $ORIGIN no longer finds libtorch. Loading each NEEDED library
    // from the package folders by full path first lets the dynamic loader match them by soname.
    static void PreloadDependencies()
    {
        foreach (var needed in new[] { "libc10.so", "libtorch_cpu.so", "libtorch.so" })
        {
            var file = _nativeDirs.Select(d => Path.Combine(d, needed)).FirstOrDefault(File.Exists)
                ?? throw new TorchNativeLoadException(
                    $"'{needed}', which {NativeFile} needs, was not found. Looked in:\n  {string.Join("\n  ", _nativeDirs)}\n" +
                    $"Reference the libtorch runtime package: TorchSharp-cpu {PinnedVersions.TorchSharp} brings its libtorch-cpu-linux-x64.");
            if (!TryLoad(file, out _, out var error))
                throw new TorchNativeLoadException($"'{file}' did not load: {error}\n{Advice}");
        }
    }

    /// <summary>
    /// Folders that may hold TorchSharp's and libtorch's native files, most specific first: beside TorchSharp.dll
    /// (an app's output, or TorchSharp's own consolidated cpu/ folder in a notebook), the host's native search
    /// directories (from the app's deps.json), and the NuGet package folders (a notebook's <c>#r "nuget: …"</c>).
    /// </summary>
    public static IEnumerable<string> CandidateNativeDirectories(Assembly torchAssembly)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var rid = RuntimeInformation.ProcessArchitecture == Architecture.Arm64 ? "linux-arm64" : "linux-x64";
        var asmDir = Path.GetDirectoryName(torchAssembly.Location);
        var list = new List<string>();
        if (!string.IsNullOrEmpty(asmDir))
        {
            list.Add(asmDir);
            list.Add(Path.Combine(asmDir, "runtimes", rid, "native"));
            list.Add(Path.Combine(asmDir, "cpu"));
        }
        list.Add(AppContext.BaseDirectory);
        list.Add(Path.Combine(AppContext.BaseDirectory, "runtimes", rid, "native"));
        if (AppContext.GetData("NATIVE_DLL_SEARCH_DIRECTORIES") is string searchDirs)
            list.AddRange(searchDirs.Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries));

        foreach (var packages in NuGetPackageRoots(asmDir))
        {
            var version = torchAssembly.GetName().Version;
            var tsVersion = version is null ? PinnedVersions.TorchSharp : $"{version.Major}.{version.Minor}.{version.Build}";
            list.Add(Path.Combine(packages, "torchsharp", tsVersion, "runtimes", rid, "native"));
            foreach (var pattern in new[] { $"libtorch-cpu-{rid}", $"libtorch-cuda-*-{rid}" })
            {
                if (!Directory.Exists(packages)) continue;
                foreach (var pkg in Directory.GetDirectories(packages, pattern).OrderByDescending(d => d, StringComparer.Ordinal))
                    foreach (var ver in Directory.GetDirectories(pkg).OrderByDescending(d => d, StringComparer.Ordinal))
                        list.Add(Path.Combine(ver, "runtimes", rid, "native"));
            }
        }
        foreach (var d in list)
        {
            var full = Path.GetFullPath(d).TrimEnd('/');
            if (seen.Add(full) && Directory.Exists(full)) yield return full;
        }
    }

    static IEnumerable<string> NuGetPackageRoots(string? torchAssemblyDir)
    {
        // .../packages/torchsharp/0.107.0/lib/net8.0/TorchSharp.dll
        if (torchAssemblyDir is not null && torchAssemblyDir.Replace('\\', '/').Contains("/torchsharp/", StringComparison.OrdinalIgnoreCase))
            yield return Path.GetFullPath(Path.Combine(torchAssemblyDir, "..", "..", "..", ".."));
        var env = Environment.GetEnvironmentVariable("NUGET_PACKAGES");
        if (!string.IsNullOrWhiteSpace(env)) yield return env;
        yield return Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
    }

    static bool TryLoad(string file, out IntPtr handle, out string error)
    {
        try { handle = NativeLibrary.Load(file); error = ""; return true; }
        catch (Exception e) when (e is DllNotFoundException or BadImageFormatException)
        {
            handle = IntPtr.Zero; error = e.Message; return false;
        }
    }

    static string FirstLine(string s) => s.Split('\n')[0].Trim();
}
