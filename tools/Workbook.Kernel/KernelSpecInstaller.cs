using System.Text.Json;
using System.Text.Json.Nodes;

namespace Workbook.Kernel;

/// <summary>
/// Writes and removes the kernelspec (kernels/NAME/kernel.json) that tells Jupyter how to start this kernel.
/// The default name is <c>.net-csharp</c>, the kernelspec name our notebooks (and Polyglot's) carry, so they open
/// with this kernel unchanged. A kernelspec of the same name already in that folder (for instance the one
/// <c>dotnet interactive jupyter install</c> wrote) is kept beside ours as kernel.json.replaced and restored by
/// <c>uninstall</c>.
/// </summary>
public static class KernelSpecInstaller
{
    /// <summary>The kernelspec name of the workbook's notebooks.</summary>
    public const string DefaultName = ".net-csharp";

    /// <summary>What Jupyter lists in its kernel picker.</summary>
    public const string DefaultDisplayName = ".NET (C#) · Workbook";

    const string BackupName = "kernel.json.replaced";

    /// <summary>Jupyter's per-user data folder: $JUPYTER_DATA_DIR, else the platform's (as jupyter_core computes it).</summary>
    public static string UserDataDirectory()
    {
        var env = Environment.GetEnvironmentVariable("JUPYTER_DATA_DIR");
        if (!string.IsNullOrWhiteSpace(env)) return env;
        var home = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
        if (OperatingSystem.IsWindows()) return Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.ApplicationData), "jupyter");
        if (OperatingSystem.IsMacOS()) return Path.Combine(home, "Library", "Jupyter");
        var xdg = Environment.GetEnvironmentVariable("XDG_DATA_HOME");
        return Path.Combine(string.IsNullOrWhiteSpace(xdg) ? Path.Combine(home, ".local", "share") : xdg, "jupyter");
    }

    /// <summary>The kernelspec folder for <paramref name="name"/> under a prefix (PREFIX/share/jupyter) or the user data folder.</summary>
    public static string KernelDirectory(string name, string? prefix) =>
        Path.Combine(prefix is null ? UserDataDirectory() : Path.Combine(Path.GetFullPath(prefix), "share", "jupyter"), "kernels", name);

    /// <summary>The kernel.json content: argv runs this build of the kernel with the dotnet host that runs this process.</summary>
    public static JsonObject KernelJson(string displayName, string kernelDll, string dotnet) => new()
    {
        ["argv"] = new JsonArray(dotnet, kernelDll, "{connection_file}"),
        ["display_name"] = displayName,
        ["language"] = "C#",
        // Interrupts come as interrupt_request on the control channel: works on every OS (SIGINT is handled too).
        ["interrupt_mode"] = "message",
        ["metadata"] = new JsonObject { ["workbook"] = new JsonObject { ["kernel"] = kernelDll } },
    };

    /// <summary>Writes the kernelspec; returns its folder. Messages for the user go to <paramref name="output"/>.</summary>
    public static string Install(string name, string? prefix, string displayName, TextWriter output)
    {
        ValidateName(name);
        var dir = KernelDirectory(name, prefix);
        Directory.CreateDirectory(dir);
        var file = Path.Combine(dir, "kernel.json");
        if (File.Exists(file) && !IsOurs(file))
        {
            File.Copy(file, Path.Combine(dir, BackupName), overwrite: true);
            output.WriteLine($"A kernelspec named '{name}' was already installed in {dir} (probably Polyglot's .NET Interactive); " +
                             $"it is kept as {BackupName} and comes back with 'uninstall'. Use --name to install under another name instead.");
        }
        var json = KernelJson(displayName, typeof(KernelSpecInstaller).Assembly.Location, DotnetHost());
        File.WriteAllText(file, json.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        output.WriteLine($"Installed kernelspec '{name}' ({displayName}) in {dir}");
        output.WriteLine($"  starts: {string.Join(' ', json["argv"]!.AsArray().Select(a => a!.GetValue<string>()))}");
        if (prefix is not null)
            output.WriteLine($"  Jupyter finds it when JUPYTER_PATH includes {Path.Combine(Path.GetFullPath(prefix), "share", "jupyter")} (or when the prefix is Jupyter's sys.prefix).");
        return dir;
    }

    /// <summary>Removes our kernelspec, restoring one it replaced. Returns false when none of ours was there.</summary>
    public static bool Uninstall(string name, string? prefix, TextWriter output)
    {
        ValidateName(name);
        var dir = KernelDirectory(name, prefix);
        var file = Path.Combine(dir, "kernel.json");
        if (!File.Exists(file) || !IsOurs(file))
        {
            output.WriteLine($"No Workbook kernelspec '{name}' in {dir}; nothing removed.");
            return false;
        }
        var backup = Path.Combine(dir, BackupName);
        if (File.Exists(backup))
        {
            File.Move(backup, file, overwrite: true);
            output.WriteLine($"Removed the Workbook kernelspec '{name}' and restored the one it replaced in {dir}.");
        }
        else
        {
            Directory.Delete(dir, recursive: true);
            output.WriteLine($"Removed the Workbook kernelspec '{name}' from {dir}.");
        }
        return true;
    }

    static bool IsOurs(string kernelJson)
    {
        try { return JsonNode.Parse(File.ReadAllText(kernelJson))?["metadata"]?["workbook"] is not null; }
        catch (JsonException) { return false; }
    }

    static void ValidateName(string name)
    {
        // Jupyter kernelspec names: ASCII letters, digits, '.', '-', '_'.
        if (name.Length == 0 || name.Any(c => !(char.IsAsciiLetterOrDigit(c) || c is '.' or '-' or '_')))
            throw new ArgumentException($"Kernel name '{name}' is invalid: use ASCII letters, digits, '.', '-' and '_' (default {DefaultName}).", nameof(name));
    }

    /// <summary>The dotnet executable of the runtime running this process (so Jupyter starts the kernel on the same .NET).</summary>
    public static string DotnetHost()
    {
        // .../dotnet/shared/Microsoft.NETCore.App/10.0.x/System.Private.CoreLib.dll -> .../dotnet/dotnet
        var runtimeDir = Path.GetDirectoryName(typeof(object).Assembly.Location);
        var root = runtimeDir is null ? null : Directory.GetParent(runtimeDir)?.Parent?.Parent?.FullName;
        var exe = OperatingSystem.IsWindows() ? "dotnet.exe" : "dotnet";
        if (root is not null && File.Exists(Path.Combine(root, exe))) return Path.Combine(root, exe);
        if (Environment.ProcessPath is { } p && Path.GetFileNameWithoutExtension(p) == "dotnet") return p;
        return exe;
    }
}
