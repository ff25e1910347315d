using System.Text.Json.Nodes;

namespace Workbook.Runner.Kernel;

/// <summary>
/// Installs the pinned tool's own Jupyter kernelspec (<c>.net-csharp</c>, the name our notebooks carry), as
/// <c>dotnet interactive jupyter install</c> writes it, with one change: <c>--http-local-only</c>, so the kernel's
/// HTTP API listens on loopback only (without it, it listens on every interface). Its argv starts
/// <c>dotnet interactive</c>, which resolves to this checkout's pinned tool when Jupyter starts the kernel in a
/// folder of the checkout, and to a global install elsewhere.
/// </summary>
public static class KernelSpec
{
    /// <summary>The kernelspec name of the workbook's notebooks.</summary>
    public const string Name = ".net-csharp";

    /// <summary>The flag we add to the tool's argv.</summary>
    public const string LocalOnlyFlag = "--http-local-only";

    /// <summary>Jupyter's per-user data folder: $JUPYTER_DATA_DIR, else the platform's (as jupyter_core computes it).</summary>
    public static string UserDataDirectory()
    {
        var env = System.Environment.GetEnvironmentVariable("JUPYTER_DATA_DIR");
        if (!string.IsNullOrWhiteSpace(env)) return env;
        var home = System.Environment.GetFolderPath(System.Environment.SpecialFolder.UserProfile);
        if (OperatingSystem.IsWindows()) return Path.Combine(System.Environment.GetFolderPath(System.Environment.SpecialFolder.ApplicationData), "jupyter");
        if (OperatingSystem.IsMacOS()) return Path.Combine(home, "Library", "Jupyter");
        var xdg = System.Environment.GetEnvironmentVariable("XDG_DATA_HOME");
        return Path.Combine(string.IsNullOrWhiteSpace(xdg) ? Path.Combine(home, ".local", "share") : xdg, "jupyter");
    }

    /// <summary>The kernels folder under a prefix (PREFIX/share/jupyter/kernels) or the user data folder.</summary>
    public static string KernelsDirectory(string? prefix) =>
        Path.Combine(prefix is null ? UserDataDirectory() : Path.Combine(Path.GetFullPath(prefix), "share", "jupyter"), "kernels");

    /// <summary>
    /// Has the tool write its kernelspecs into a scratch folder, adds <see cref="LocalOnlyFlag"/> to the C# one and
    /// copies it (kernel.json and logos) into <paramref name="prefix"/> or the user data folder. Returns the folder.
    /// </summary>
    /// <exception cref="InvalidOperationException">The tool failed to write its kernelspec.</exception>
    public static async Task<string> InstallAsync(KernelTool tool, string? prefix, TextWriter output, CancellationToken cancellation = default)
    {
        var scratch = Path.Combine(Path.GetTempPath(), "wb-kernelspec-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(scratch); // the tool writes into an existing folder only
        try
        {
            var (code, log) = await KernelTool.RunDotnetAsync(["tool", "run", "dotnet-interactive", "--", "jupyter", "install", "--path", scratch], tool.Root, cancellation).ConfigureAwait(false);
            var source = Path.Combine(scratch, Name);
            if (code != 0 || !File.Exists(Path.Combine(source, "kernel.json")))
                throw new InvalidOperationException($"'dotnet interactive jupyter install' failed (exit code {code}):\n{log.Trim()}");
            var spec = JsonNode.Parse(File.ReadAllText(Path.Combine(source, "kernel.json")))!.AsObject();
            AddLocalOnly(spec);
            var target = Path.Combine(KernelsDirectory(prefix), Name);
            Directory.CreateDirectory(target);
            foreach (var f in Directory.GetFiles(source).Where(f => Path.GetFileName(f) != "kernel.json"))
                File.Copy(f, Path.Combine(target, Path.GetFileName(f)), overwrite: true);
            File.WriteAllText(Path.Combine(target, "kernel.json"), spec.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
            output.WriteLine($"Installed the .NET Interactive kernelspec '{Name}' ({KernelTool.PackageId} {tool.Version}) in {target}");
            output.WriteLine($"  starts: {string.Join(' ', spec["argv"]!.AsArray().Select(a => a!.GetValue<string>()))}");
            if (prefix is not null)
                output.WriteLine($"  Jupyter finds it when JUPYTER_PATH includes {Path.Combine(Path.GetFullPath(prefix), "share", "jupyter")}.");
            return target;
        }
        finally
        {
            if (Directory.Exists(scratch)) Directory.Delete(scratch, recursive: true);
        }
    }

    /// <summary>Inserts <see cref="LocalOnlyFlag"/> after the connection file in the kernelspec's argv (once).</summary>
    internal static void AddLocalOnly(JsonObject spec)
    {
        var argv = spec["argv"] as JsonArray ?? throw new InvalidOperationException("The tool's kernel.json has no argv.");
        var args = argv.Select(a => a!.GetValue<string>()).ToList();
        if (args.Contains(LocalOnlyFlag)) return;
        int at = args.IndexOf("{connection_file}");
        args.Insert(at < 0 ? args.Count : at + 1, LocalOnlyFlag);
        spec["argv"] = new JsonArray(args.Select(a => (JsonNode)a).ToArray());
    }

    /// <summary>Removes the kernelspec from <paramref name="prefix"/> or the user data folder; false when there was none.</summary>
    public static bool Uninstall(string? prefix, TextWriter output)
    {
        var target = Path.Combine(KernelsDirectory(prefix), Name);
        if (!File.Exists(Path.Combine(target, "kernel.json")))
        {
            output.WriteLine($"No kernelspec '{Name}' in {target}; nothing removed.");
            return false;
        }
        Directory.Delete(target, recursive: true);
        output.WriteLine($"Removed the kernelspec '{Name}' from {target}.");
        return true;
    }
}
