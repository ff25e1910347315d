using System.Runtime.CompilerServices;
using Workbook.Runtime;

// Tests share torch's global state (seed, threads), the process's console and current directory (the notebook
// engine), and two CPU cores: run them one at a time.
[assembly: CollectionBehavior(DisableTestParallelization = true)]

namespace Workbook.Tests;

static class TestSetup
{
    /// <summary>Every test may touch TorchSharp: make its native library load first (the libstdc++ fix where needed).</summary>
    [ModuleInitializer]
    internal static void LoadTorch() => TorchRuntime.EnsureLoaded();

    /// <summary>The repository root (the folder with Workbook.sln), found from the test binaries.</summary>
    public static string RepoRoot
    {
        get
        {
            for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
                if (File.Exists(Path.Combine(d.FullName, "Workbook.sln"))) return d.FullName;
            throw new DirectoryNotFoundException($"Workbook.sln not found above {AppContext.BaseDirectory}.");
        }
    }

    /// <summary>Release or Debug: the configuration these tests were built in (tools are run from the same one).</summary>
    public static string Configuration => AppContext.BaseDirectory.Contains($"{Path.DirectorySeparatorChar}Release{Path.DirectorySeparatorChar}") ? "Release" : "Debug";

    /// <summary>A fixture file copied beside the tests.</summary>
    public static string Fixture(params string[] parts) => Path.Combine(new[] { AppContext.BaseDirectory, "Fixtures" }.Concat(parts).ToArray());
}
