
namespace Workbook.Doctor.Checks;

/// <summary>
/// The notebook kernel: the .NET Interactive tool pinned in <c>.config/dotnet-tools.json</c> restores (from the
/// feeds, or offline from the NuGet cache once it has been restored) and starts.
/// </summary>
/// <param name="repo">The repository root.</param>
sealed class KernelToolCheck(string repo) : PreflightCheck
{
    /// <inheritdoc/>
    public override string Name => "notebook kernel";

    /// <inheritdoc/>
    protected override IEnumerable<CheckResult> Evaluate()
    {
        var restore = Processes.Run("dotnet", ["tool", "restore"], repo, timeoutSeconds: 300);
        if (restore.ExitCode != 0)
        {
            yield return CheckResult.Fail(Name, $"'dotnet tool restore' failed: {DotnetSdkCheck.FirstLine(restore.Output)}",
                "Run 'dotnet tool restore' in the repository once with network access: it caches Microsoft.dotnet-interactive for offline use.");
            yield break;
        }
        var version = Processes.Run("dotnet", ["tool", "run", "dotnet-interactive", "--", "--version"], repo, timeoutSeconds: 120);
        if (version.ExitCode != 0)
            yield return CheckResult.Fail(Name, $"the kernel does not start: {DotnetSdkCheck.FirstLine(version.Output)}",
                "Delete ~/.nuget/packages/microsoft.dotnet-interactive and run 'dotnet tool restore' again.");
        else
            yield return CheckResult.Pass(Name, $"Microsoft.dotnet-interactive {DotnetSdkCheck.FirstLine(version.Output)}");
    }
}
