using System.Diagnostics;
using System.Text.Json.Nodes;

namespace Workbook.Runner.Kernel;

/// <summary>
/// The pinned .NET Interactive tool: <c>Microsoft.dotnet-interactive</c> in the checkout's
/// <c>.config/dotnet-tools.json</c>, restored with <c>dotnet tool restore</c> and started with
/// <c>dotnet tool run dotnet-interactive</c>. This is the kernel VS Code Polyglot and Jupyter run, so the runner
/// accepts exactly what a reader's kernel accepts.
/// </summary>
public sealed class KernelTool
{
    /// <summary>The tool's package id and command name in the manifest.</summary>
    public const string PackageId = "microsoft.dotnet-interactive";

    const string CommandName = "dotnet-interactive";

    KernelTool(string root, string version)
    {
        Root = root;
        Version = version;
    }

    /// <summary>The folder holding <c>.config/dotnet-tools.json</c> (the repository root).</summary>
    public string Root { get; }

    /// <summary>The pinned tool version, e.g. 1.0.712001.</summary>
    public string Version { get; }

    /// <summary>
    /// Finds the manifest above <paramref name="start"/> (default: the runner's own folder, which lies in the
    /// checkout it was built from) and reads the pinned version.
    /// </summary>
    /// <exception cref="FileNotFoundException">No manifest, or it does not pin the tool.</exception>
    public static KernelTool Locate(string? start = null)
    {
        for (var dir = new DirectoryInfo(start ?? AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var manifest = Path.Combine(dir.FullName, ".config", "dotnet-tools.json");
            if (!File.Exists(manifest)) continue;
            var version = JsonNode.Parse(File.ReadAllText(manifest))?["tools"]?[PackageId]?["version"]?.GetValue<string>()
                ?? throw new FileNotFoundException($"{manifest} does not pin the tool '{PackageId}'.", manifest);
            return new KernelTool(dir.FullName, version);
        }
        throw new FileNotFoundException(
            $"No .config/dotnet-tools.json above '{start ?? AppContext.BaseDirectory}': run the runner from a Workbook checkout.");
    }

    /// <summary>
    /// Runs <c>dotnet tool restore</c> in <see cref="Root"/> (a no-op when the tool is already in the NuGet cache).
    /// </summary>
    /// <exception cref="InvalidOperationException">The restore failed; the message carries its output.</exception>
    public async Task RestoreAsync(CancellationToken cancellation = default)
    {
        var (code, output) = await RunDotnetAsync(["tool", "restore"], Root, cancellation).ConfigureAwait(false);
        if (code != 0)
            throw new InvalidOperationException(
                $"'dotnet tool restore' failed in {Root} (exit code {code}), so the .NET Interactive kernel " +
                $"{PackageId} {Version} is not available. Restore it once with network access. Its output:\n{output.Trim()}");
    }

    /// <summary>The process that starts the kernel in stdio mode with <paramref name="workingDirectory"/> as its folder.</summary>
    public ProcessStartInfo StdioStartInfo(string workingDirectory)
    {
        var psi = new ProcessStartInfo("dotnet")
        {
            WorkingDirectory = Root, // `dotnet tool run` finds the manifest from here
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            StandardOutputEncoding = System.Text.Encoding.UTF8,
            StandardErrorEncoding = System.Text.Encoding.UTF8,
        };
        foreach (var a in new[] { "tool", "run", CommandName, "--", "stdio", "--working-dir", workingDirectory })
            psi.ArgumentList.Add(a);
        // No first-run banner on stdout (it is the protocol channel); nothing to send home either.
        psi.Environment["DOTNET_INTERACTIVE_SKIP_FIRST_TIME_EXPERIENCE"] = "1";
        psi.Environment["DOTNET_INTERACTIVE_CLI_TELEMETRY_OPTOUT"] = "1";
        psi.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        psi.Environment["DOTNET_NOLOGO"] = "1";
        return psi;
    }

    /// <summary>Runs <c>dotnet ARGS</c> in <paramref name="directory"/>; returns the exit code and the merged output.</summary>
    internal static async Task<(int Code, string Output)> RunDotnetAsync(IEnumerable<string> args, string directory, CancellationToken cancellation)
    {
        var psi = new ProcessStartInfo("dotnet")
        {
            WorkingDirectory = directory, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
        };
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        psi.Environment["DOTNET_NOLOGO"] = "1";
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync(cancellation);
        var stderr = p.StandardError.ReadToEndAsync(cancellation);
        await p.WaitForExitAsync(cancellation).ConfigureAwait(false);
        return (p.ExitCode, await stdout.ConfigureAwait(false) + await stderr.ConfigureAwait(false));
    }
}
