using System.Diagnostics;

namespace Workbook.Doctor.Checks;

/// <summary>Outcome of one preflight check.</summary>
public enum CheckStatus
{
    /// <summary>Fine.</summary>
    Pass,
    /// <summary>Works, but something is worth knowing (e.g. no GPU, little disk left).</summary>
    Warn,
    /// <summary>Would stop a notebook; the doctor exits non-zero.</summary>
    Fail,
}

/// <summary>One row of the doctor's table.</summary>
/// <param name="Check">What was checked, e.g. "data files".</param>
/// <param name="Status">Pass, Warn or Fail.</param>
/// <param name="Detail">What was found (versions, counts, paths).</param>
/// <param name="Fix">What to do when the status is not Pass; null when nothing is needed.</param>
public sealed record CheckResult(string Check, CheckStatus Status, string Detail, string? Fix = null)
{
    /// <summary>A passing result.</summary>
    public static CheckResult Pass(string check, string detail) => new(check, CheckStatus.Pass, detail);
    /// <summary>A warning with its advice.</summary>
    public static CheckResult Warn(string check, string detail, string fix) => new(check, CheckStatus.Warn, detail, fix);
    /// <summary>A failure with the fix.</summary>
    public static CheckResult Fail(string check, string detail, string fix) => new(check, CheckStatus.Fail, detail, fix);
}

/// <summary>
/// A machine check of the preflight <c>doctor</c> (tools/Workbook.Doctor). Each check takes its inputs (folders,
/// paths, commands) in its constructor, so tests point it at temporary folders, and never throws: every problem
/// becomes a <see cref="CheckResult"/> with a fix.
/// </summary>
public abstract class PreflightCheck
{
    /// <summary>The row name in the doctor's table.</summary>
    public abstract string Name { get; }

    /// <summary>Runs the check (may take seconds: restores, calibration).</summary>
    protected abstract IEnumerable<CheckResult> Evaluate();

    /// <summary>Runs the check; an unexpected exception becomes a failing row naming it.</summary>
    public IReadOnlyList<CheckResult> Run()
    {
        try { return Evaluate().ToList(); }
        catch (Exception e)
        {
            return new[] { CheckResult.Fail(Name, $"the check itself failed: {e.GetType().Name}: {e.Message}", "Report this with the doctor's full output.") };
        }
    }
}

/// <summary>Result of a child process.</summary>
/// <param name="ExitCode">Exit code (-1 when it could not start or timed out).</param>
/// <param name="Output">Standard output and error, in that order.</param>
public sealed record ProcessOutput(int ExitCode, string Output);

/// <summary>Runs a command and captures its output, with a timeout; a missing program is exit code -1, not an exception.</summary>
public static class Processes
{
    /// <summary>Runs <paramref name="file"/> with <paramref name="arguments"/>.</summary>
    public static ProcessOutput Run(string file, IEnumerable<string> arguments, string? workingDirectory = null, int timeoutSeconds = 120,
        IReadOnlyDictionary<string, string>? environment = null)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in arguments) psi.ArgumentList.Add(a);
        if (workingDirectory is not null) psi.WorkingDirectory = workingDirectory;
        psi.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        psi.Environment["DOTNET_NOLOGO"] = "1";
        if (environment is not null) foreach (var (k, v) in environment) psi.Environment[k] = v;
        try
        {
            using var p = Process.Start(psi);
            if (p is null) return new ProcessOutput(-1, $"could not start '{file}'");
            var o = p.StandardOutput.ReadToEndAsync();
            var e = p.StandardError.ReadToEndAsync();
            if (!p.WaitForExit(timeoutSeconds * 1000))
            {
                try { p.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
                return new ProcessOutput(-1, $"'{file}' did not finish within {timeoutSeconds}s");
            }
            return new ProcessOutput(p.ExitCode, o.Result + e.Result);
        }
        catch (System.ComponentModel.Win32Exception ex)
        {
            return new ProcessOutput(-1, $"'{file}' is not available: {ex.Message}");
        }
    }
}
