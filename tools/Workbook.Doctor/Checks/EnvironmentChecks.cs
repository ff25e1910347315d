using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using Workbook.Runtime;

namespace Workbook.Doctor.Checks;

/// <summary>The .NET SDK: the repository's tools (runner, doctor, tests) target net10.0, the library net8.0.</summary>
/// <param name="minimumMajor">Lowest acceptable SDK major version (10).</param>
/// <param name="listSdks">Returns the output of <c>dotnet --list-sdks</c>; default runs it.</param>
public sealed class DotnetSdkCheck(int minimumMajor = 10, Func<ProcessOutput>? listSdks = null) : PreflightCheck
{
    /// <inheritdoc/>
    public override string Name => ".NET SDK";

    /// <inheritdoc/>
    protected override IEnumerable<CheckResult> Evaluate()
    {
        var output = (listSdks ?? (() => Processes.Run("dotnet", new[] { "--list-sdks" }, timeoutSeconds: 60)))();
        const string fix = "Install the .NET {0} SDK (https://dot.net/download, or 'sudo apt install dotnet-sdk-{0}.0'), then open a new terminal.";
        if (output.ExitCode != 0)
        {
            yield return CheckResult.Fail(Name, $"'dotnet --list-sdks' failed: {FirstLine(output.Output)}", string.Format(fix, minimumMajor));
            yield break;
        }
        var versions = Regex.Matches(output.Output, @"^(\d+)\.(\d+)\.(\d+)\S*", RegexOptions.Multiline).Select(m => m.Value).ToList();
        var good = versions.Where(v => int.Parse(v.Split('.')[0]) >= minimumMajor).ToList();
        var runtime = $"runtime {Environment.Version}";
        if (good.Count == 0)
            yield return CheckResult.Fail(Name, versions.Count == 0 ? "no SDK installed" : $"SDKs {string.Join(", ", versions)}: none is {minimumMajor}.0 or later", string.Format(fix, minimumMajor));
        else
            yield return CheckResult.Pass(Name, $"SDK {string.Join(", ", good)} ({runtime})");
    }

    internal static string FirstLine(string s) => s.Split('\n').Select(l => l.Trim()).FirstOrDefault(l => l.Length > 0) ?? "(no output)";
}

/// <summary>Free space where the repository (build outputs, runner output) and the NuGet cache live.</summary>
/// <param name="paths">Folders to check (each one's drive).</param>
/// <param name="failBelowBytes">Fail under this many free bytes (default 1 GiB).</param>
/// <param name="warnBelowBytes">Warn under this many free bytes (default 5 GiB).</param>
public sealed class DiskSpaceCheck(IReadOnlyList<string> paths, long failBelowBytes = 1L << 30, long warnBelowBytes = 5L << 30) : PreflightCheck
{
    /// <inheritdoc/>
    public override string Name => "free disk";

    /// <inheritdoc/>
    protected override IEnumerable<CheckResult> Evaluate()
    {
        var seen = new HashSet<string>();
        foreach (var path in paths)
        {
            var existing = path;
            while (!Directory.Exists(existing) && Path.GetDirectoryName(existing) is { } parent) existing = parent;
            var drive = new DriveInfo(Path.GetFullPath(existing));
            long free = drive.AvailableFreeSpace;
            if (!seen.Add($"{drive.TotalSize}/{free >> 24}")) continue; // same file system under another path
            var detail = $"{free / (double)(1L << 30):F1} GiB free for {path}";
            if (free < failBelowBytes)
                yield return CheckResult.Fail(Name, detail, $"Free at least {failBelowBytes >> 20} MiB: builds, the NuGet cache and runner output need it (e.g. 'dotnet nuget locals temp -c', delete old out/ folders).");
            else if (free < warnBelowBytes)
                yield return CheckResult.Warn(Name, detail, $"Less than {warnBelowBytes >> 30} GiB free: Full runs and checkpoints may run out of space.");
            else
                yield return CheckResult.Pass(Name, detail);
        }
    }
}

/// <summary>CPU threads, and the CUDA device with driver and package versions when there is one.</summary>
/// <param name="torchCuda">Returns (available, device count) from TorchSharp, or throws; null skips it (TorchSharp not loaded).</param>
/// <param name="nativePackage">The native runtime package folder in use (from the TorchSharp check), for the report.</param>
/// <param name="nvidiaSmi">Returns the output of <c>nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader</c>.</param>
/// <param name="requestedDevice">The <c>WORKBOOK_DEVICE</c> the notebooks will see.</param>
public sealed class ComputeDeviceCheck(Func<(bool Available, int Count)>? torchCuda, string? nativePackage,
    Func<ProcessOutput>? nvidiaSmi = null, string? requestedDevice = null) : PreflightCheck
{
    /// <inheritdoc/>
    public override string Name => "CPU / CUDA";

    /// <inheritdoc/>
    protected override IEnumerable<CheckResult> Evaluate()
    {
        int threads = Environment.ProcessorCount;
        var cpu = $"{threads} CPU thread(s), {RuntimeInformation.OSArchitecture}";
        yield return threads < 2
            ? CheckResult.Warn("CPU threads", cpu, "One core makes Full runs slow; use Quick (WORKBOOK_PROFILE=Quick) or a bigger machine.")
            : CheckResult.Pass("CPU threads", cpu);

        var smi = (nvidiaSmi ?? (() => Processes.Run("nvidia-smi", new[] { "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader" }, timeoutSeconds: 30)))();
        var gpus = smi.ExitCode == 0 ? smi.Output.Split('\n').Select(l => l.Trim()).Where(l => l.Length > 0).ToList() : new List<string>();
        bool available = false; int count = 0; string? torchError = null;
        if (torchCuda is not null)
        {
            try { (available, count) = torchCuda(); }
            catch (Exception e) { torchError = e.Message; }
        }
        var package = nativePackage is null ? "native package unknown" : $"native package {nativePackage}";
        bool wantsCuda = requestedDevice?.StartsWith("cuda", StringComparison.OrdinalIgnoreCase) == true;
        if (available)
            yield return CheckResult.Pass(Name, $"CUDA available: {count} device(s); {string.Join("; ", gpus.DefaultIfEmpty("nvidia-smi gave no details"))} (name, driver, memory); {package}");
        else if (wantsCuda)
            yield return CheckResult.Fail(Name, $"WORKBOOK_DEVICE={requestedDevice} but CUDA is not available to TorchSharp{(torchError is null ? "" : $" ({torchError})")}; {package}",
                $"Reference TorchSharp-cuda-linux (or -cuda-windows) {PinnedVersions.TorchSharp} instead of TorchSharp-cpu and check 'nvidia-smi', or unset WORKBOOK_DEVICE to run on the CPU.");
        else if (gpus.Count > 0)
            yield return CheckResult.Warn(Name, $"GPU present ({string.Join("; ", gpus)}) but TorchSharp runs on the CPU; {package}",
                $"Optional: to use the GPU, reference TorchSharp-cuda-linux {PinnedVersions.TorchSharp} instead of TorchSharp-cpu (environment.md, section GPU). The notebooks run fine on the CPU.");
        else
            yield return CheckResult.Pass(Name, $"no CUDA device: notebooks run on the CPU; {package}");
    }
}
