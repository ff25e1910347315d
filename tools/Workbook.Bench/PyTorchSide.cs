using System.Diagnostics;
using System.Globalization;

namespace Workbook.Bench;

/// <summary>
/// Runs pytorch_bench.py (beside this assembly) with a python that has torch: once with --info (version, threads, and
/// the BLAS library torch actually mapped), then once per workload with the same parameters as the TorchSharp side.
/// The script prints its result as the last line, prefixed with <c>BENCH_RESULT </c>.
/// </summary>
public sealed class PyTorchSide
{
    const string Marker = "BENCH_RESULT ";
    readonly string _python, _script;
    readonly int _threads;

    PyTorchSide(string python, string script, int threads, JsonObject info) { _python = python; _script = script; _threads = threads; Info = info; }

    /// <summary>Minutes one PyTorch workload may take: $WORKBOOK_BENCH_PY_TIMEOUT_MIN, default 60 (a loaded 2-core VM needs them for GPT-2).</summary>
    static double TimeoutMinutes => double.TryParse(Environment.GetEnvironmentVariable("WORKBOOK_BENCH_PY_TIMEOUT_MIN"), System.Globalization.NumberStyles.Float, CultureInfo.InvariantCulture, out var m) && m > 0 ? m : 60;

    /// <summary>What the script reported about its torch: version, threads, BLAS.</summary>
    public JsonObject Info { get; }

    /// <summary>Why the last <see cref="Probe"/> returned null.</summary>
    public static string? LastProbeError { get; private set; }

    /// <summary>The script's path: copied beside the assembly by the build.</summary>
    public static string ScriptPath => Path.Combine(AppContext.BaseDirectory, "pytorch_bench.py");

    /// <summary>Checks that <paramref name="python"/> exists and imports torch; null (and <see cref="LastProbeError"/>) when not.</summary>
    public static PyTorchSide? Probe(string python, int threads)
    {
        if (!File.Exists(python)) { LastProbeError = $"'{python}' does not exist"; return null; }
        if (!File.Exists(ScriptPath)) { LastProbeError = $"'{ScriptPath}' is missing (build the bench)"; return null; }
        var (code, stdout, stderr) = RunProcess(python, [ScriptPath, "--info", "--threads", threads.ToString(CultureInfo.InvariantCulture)], TimeSpan.FromMinutes(2));
        var result = Parse(stdout);
        if (code != 0 || result is null)
        {
            LastProbeError = code == 3 ? "python has no torch module (apt-get install python3-torch)" : $"pytorch_bench.py --info exited {code}: {Tail(stderr)}";
            return null;
        }
        return new PyTorchSide(python, ScriptPath, threads, result);
    }

    /// <summary>Runs one workload in PyTorch; the figures, or null and the reason.</summary>
    public (IReadOnlyList<Figure>? Figures, string? Error) Run(string workload, JsonObject parameters)
    {
        var (code, stdout, stderr) = RunProcess(_python,
            [_script, "--workload", workload, "--params", parameters.ToJsonString(), "--threads", _threads.ToString(CultureInfo.InvariantCulture)],
            TimeSpan.FromMinutes(TimeoutMinutes));
        var result = Parse(stdout);
        if (code != 0 || result?["rows"] is not JsonArray rows) return (null, $"pytorch_bench.py exited {code}: {Tail(stderr)}");
        var figures = rows.Select(r => new Figure(
            r!["name"]!.GetValue<string>(),
            r["samples"]!.AsArray().Select(s => s!.GetValue<double>()).ToArray(),
            r["extra"]?.DeepClone() as JsonObject)).ToList();
        return (figures, null);
    }

    static JsonObject? Parse(string stdout)
    {
        var line = stdout.Split('\n').LastOrDefault(l => l.StartsWith(Marker, StringComparison.Ordinal));
        return line is null ? null : JsonNode.Parse(line[Marker.Length..]) as JsonObject;
    }

    static string Tail(string s) => s.Length <= 2000 ? s.Trim() : "..." + s[^2000..].Trim();

    static (int Code, string Stdout, string Stderr) RunProcess(string exe, IEnumerable<string> args, TimeSpan timeout)
    {
        var psi = new ProcessStartInfo(exe) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        // Same thread count as TorchSharp: OpenMP (torch and OpenBLAS-openmp) reads these before torch.set_num_threads.
        psi.Environment["OMP_NUM_THREADS"] = psi.Environment["OPENBLAS_NUM_THREADS"] = null;
        psi.Environment["OMP_NUM_THREADS"] = args.SkipWhile(a => a != "--threads").Skip(1).FirstOrDefault() ?? "2";
        using var p = Process.Start(psi) ?? throw new InvalidOperationException($"Could not start '{exe}'.");
        var err = p.StandardError.ReadToEndAsync();
        var outTask = p.StandardOutput.ReadToEndAsync();
        if (!p.WaitForExit(timeout))
        {
            p.Kill(entireProcessTree: true);
            return (124, outTask.Result, $"timed out after {timeout.TotalMinutes} min; " + err.Result);
        }
        p.WaitForExit();
        return (p.ExitCode, outTask.Result, err.Result);
    }
}
