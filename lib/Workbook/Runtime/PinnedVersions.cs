using System.Reflection;

namespace Workbook.Runtime;

/// <summary>
/// The package versions the repository pins, as built into this assembly from <c>Directory.Packages.props</c> (and
/// the library's own version): the one place a version is written. Messages and tools that name a version read it
/// here; the notebooks' first cells and the docs, which cannot, are tested against the same pins.
/// </summary>
public static class PinnedVersions
{
    static readonly IReadOnlyDictionary<string, string> _pins = typeof(PinnedVersions).Assembly
        .GetCustomAttributes<AssemblyMetadataAttribute>()
        .Where(a => a.Key.StartsWith("WorkbookPin:", StringComparison.Ordinal) && a.Value is not null)
        .ToDictionary(a => a.Key["WorkbookPin:".Length..], a => a.Value!, StringComparer.OrdinalIgnoreCase);

    /// <summary>Every pin: package id → version (ids compare case-insensitively, as NuGet does).</summary>
    public static IReadOnlyDictionary<string, string> All => _pins;

    /// <summary>The pinned version of <paramref name="packageId"/>.</summary>
    /// <exception cref="KeyNotFoundException">The package is not pinned in Directory.Packages.props.</exception>
    public static string Of(string packageId) => _pins.TryGetValue(packageId, out var v) ? v
        : throw new KeyNotFoundException($"'{packageId}' is not pinned in Directory.Packages.props; pinned: {string.Join(", ", _pins.Keys.Order())}.");

    /// <summary>TorchSharp's version, also that of its native packages (TorchSharp-cpu, TorchSharp-cuda-linux, ...).</summary>
    public static string TorchSharp => Of("TorchSharp");

    /// <summary>This library's version, as a notebook's <c>#r "nuget: Workbook, ..."</c> names it.</summary>
    public static string Workbook => Of("Workbook");

    /// <summary>
    /// The first cell's package lines, as every notebook has them:
    /// <c>#r "nuget: Workbook, 0.1.0"</c> and <c>#r "nuget: TorchSharp-cpu, 0.107.0"</c>.
    /// </summary>
    public static string NotebookReferences => $"#r \"nuget: Workbook, {Workbook}\"\n#r \"nuget: TorchSharp-cpu, {Of("TorchSharp-cpu")}\"";
}
