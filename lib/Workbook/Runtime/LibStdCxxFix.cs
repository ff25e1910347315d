namespace Workbook.Runtime;

/// <summary>
/// The decision and the edit behind the libstdc++ fix. TorchSharp 0.107's <c>libLibTorchSharp.so</c> was
/// linked against GCC 13 and names <c>GLIBCXX_3.4.32</c> for one symbol, <c>std::ios_base_library_init()</c>,
/// which it references only to pin that version and never calls. A libstdc++ without the version (Debian 12,
/// Ubuntu 22.04 ship 3.4.30) makes the dynamic loader refuse the whole library. Marking the requirement weak
/// and unversioning the symbol lets the loader accept it; nothing else about the library changes.
/// </summary>
public static class LibStdCxxFix
{
    /// <summary>The library the requirement is on.</summary>
    public const string LibStdCxx = "libstdc++.so.6";

    /// <summary>What must be edited in a library so that it loads against a given libstdc++.</summary>
    /// <param name="Missing">Required libstdc++ versions the system library does not define.</param>
    /// <param name="Symbols">Symbols that name a missing version (they lose their version).</param>
    /// <param name="Blocker">Why weakening cannot work (a missing-version symbol is really used), or null.</param>
    public sealed record Plan(IReadOnlyList<ElfFile.VersionNeed> Missing, IReadOnlyList<ElfFile.DynamicSymbol> Symbols, string? Blocker)
    {
        /// <summary>True when the library needs no edit: every required version is present.</summary>
        public bool NotNeeded => Missing.Count == 0;

        /// <summary>True when the edit is needed and safe.</summary>
        public bool CanPatch => Missing.Count > 0 && Blocker is null;

        /// <summary>A one-line description for logs and the setup summary.</summary>
        public override string ToString() => NotNeeded
            ? "not needed: the system libstdc++ has every required version"
            : Blocker ?? $"weaken {string.Join(", ", Missing.Select(m => m.Name))} (used only by {string.Join(", ", Symbols.Select(s => s.Name))})";
    }

    /// <summary>
    /// Compares the library's libstdc++ requirements with the versions the system libstdc++ defines.
    /// A missing version can be weakened only if every symbol naming it is an undefined reference that no
    /// relocation uses: then the loader never has to bind it.
    /// </summary>
    /// <param name="library">The library to load (e.g. <c>libLibTorchSharp.so</c>).</param>
    /// <param name="provided">Version names the system libstdc++ defines (see <see cref="ElfFile.VersionDefinitions"/>).</param>
    public static Plan MakePlan(ElfFile library, IReadOnlySet<string> provided)
    {
        ArgumentNullException.ThrowIfNull(library);
        ArgumentNullException.ThrowIfNull(provided);
        var missing = library.VersionNeeds().Where(n => n.File == LibStdCxx && !provided.Contains(n.Name)).ToList();
        if (missing.Count == 0) return new Plan(missing, Array.Empty<ElfFile.DynamicSymbol>(), null);

        var indices = missing.Select(m => m.Index).ToHashSet();
        var symbols = library.DynamicSymbols().Where(s => indices.Contains(s.VersionIndex)).ToList();
        var relocated = library.RelocatedSymbols();
        var used = symbols.Where(s => !s.IsUndefined || relocated.Contains(s.Index)).ToList();
        string? blocker = used.Count == 0 ? null :
            $"'{library.Path}' really uses {string.Join(", ", used.Select(s => s.Name))} from " +
            $"{string.Join(", ", missing.Select(m => m.Name))}, which this system's {LibStdCxx} lacks; weakening cannot help. " +
            "Install a newer libstdc++ (GCC 13 or later), e.g. Ubuntu: 'sudo add-apt-repository ppa:ubuntu-toolchain-r/test && sudo apt install libstdc++6', " +
            "or conda: 'conda install -c conda-forge libstdcxx-ng' and put its lib folder on LD_LIBRARY_PATH.";
        return new Plan(missing, symbols, blocker);
    }

    /// <summary>Applies a plan to the in-memory ELF: weak flag on each missing need, version cleared on each symbol.</summary>
    /// <exception cref="InvalidOperationException">The plan is not patchable (<see cref="Plan.CanPatch"/> is false).</exception>
    public static void Apply(ElfFile library, Plan plan)
    {
        if (!plan.CanPatch) throw new InvalidOperationException($"Cannot patch '{library.Path}': {plan}.");
        foreach (var need in plan.Missing) library.WeakenVersionNeed(need);
        foreach (var sym in plan.Symbols) library.ClearSymbolVersion(sym);
    }

    /// <summary>
    /// The libstdc++ this process uses: the one already mapped (the .NET host links it), else the first found on
    /// the usual library paths. Null on systems without one (Windows, macOS, musl without libstdc++).
    /// </summary>
    public static string? FindSystemLibStdCxx()
    {
        try
        {
            if (File.Exists("/proc/self/maps"))
                foreach (var line in File.ReadLines("/proc/self/maps"))
                {
                    int slash = line.IndexOf('/');
                    if (slash >= 0 && line.AsSpan(slash).EndsWith("/" + LibStdCxx) && File.Exists(line[slash..]))
                        return line[slash..];
                }
        }
        catch (IOException) { }
        var dirs = (Environment.GetEnvironmentVariable("LD_LIBRARY_PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Concat(new[] { "/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib/aarch64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/lib64", "/usr/lib", "/lib" });
        return dirs.Select(d => Path.Combine(d, LibStdCxx)).FirstOrDefault(File.Exists);
    }
}
