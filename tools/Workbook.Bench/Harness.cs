using System.Diagnostics;
using System.Globalization;

namespace Workbook.Bench;

/// <summary>How the whole run is sized: <see cref="Smoke"/> picks tiny shapes and few steps (the CI check).</summary>
public sealed record BenchOptions(bool Smoke, string OutDir, string? Only, int Threads, bool PyTorch);

/// <summary>
/// One row of the results table, as measured on one side (TorchSharp or PyTorch): the per-repetition figures and
/// anything worth keeping beside them (memory series, the bandwidth bound, ...).
/// </summary>
public sealed record Figure(string Name, double[] Samples, JsonObject? Extra = null)
{
    /// <summary>The median of the repetitions, the figure reported.</summary>
    public double Median => Stats.Median(Samples);

    /// <summary>(max − min) / median, in percent: how noisy the repetitions were.</summary>
    public double SpreadPercent => Samples.Length < 2 || Median == 0 ? 0 : (Samples.Max() - Samples.Min()) / Math.Abs(Median) * 100;
}

/// <summary>What a row measures: its unit, and which way is better (for the ratio).</summary>
/// <param name="Name">Row id, the same on both sides (pytorch_bench.py uses it).</param>
/// <param name="Unit">Unit of the figure.</param>
/// <param name="HigherIsBetter">True for throughputs, false for times and memory.</param>
/// <param name="Compare">False where a ratio means nothing (live tensor counts: each framework counts differently; the
/// bandwidth bound, a property of the machine at the moment it was measured).</param>
public sealed record RowSpec(string Name, string Unit, bool HigherIsBetter, bool Compare = true);

/// <summary>
/// A benchmark workload: a group of rows measured together because they share a model or setup. The same
/// <see cref="Parameters"/> are handed to pytorch_bench.py, so both sides run the same shapes, dtype and step counts.
/// </summary>
public interface IWorkload
{
    /// <summary>Group name, used by --only and by pytorch_bench.py's --workload.</summary>
    string Name { get; }

    /// <summary>One line saying what is measured.</summary>
    string Description { get; }

    /// <summary>The rows this workload reports, in table order.</summary>
    IReadOnlyList<RowSpec> Rows { get; }

    /// <summary>True when pytorch_bench.py implements the same workload (most do; the library-only ones say false).</summary>
    bool HasPyTorch => true;

    /// <summary>Shapes, step counts and repetitions; smoke mode gives tiny ones.</summary>
    JsonObject Parameters(bool smoke);

    /// <summary>Runs the workload on TorchSharp and returns one <see cref="Figure"/> per row.</summary>
    IReadOnlyList<Figure> Run(JsonObject parameters);
}

/// <summary>What every workload states about itself, given once.</summary>
/// <param name="name">Group name (--only, pytorch_bench.py's --workload).</param>
/// <param name="description">One line saying what is measured.</param>
/// <param name="rows">The rows it reports, in table order.</param>
public abstract class Workload(string name, string description, IReadOnlyList<RowSpec> rows) : IWorkload
{
    /// <inheritdoc/>
    public string Name { get; } = name;
    /// <inheritdoc/>
    public string Description { get; } = description;
    /// <inheritdoc/>
    public IReadOnlyList<RowSpec> Rows { get; } = rows;
    /// <inheritdoc/>
    public virtual bool HasPyTorch => true;
    /// <inheritdoc/>
    public abstract JsonObject Parameters(bool smoke);
    /// <inheritdoc/>
    public abstract IReadOnlyList<Figure> Run(JsonObject parameters);
}

/// <summary>Small statistics and measurement helpers shared by the workloads.</summary>
public static class Stats
{
    /// <summary>The median (mean of the two middle values for an even count).</summary>
    public static double Median(IReadOnlyCollection<double> xs)
    {
        if (xs.Count == 0) return double.NaN;
        var s = xs.OrderBy(x => x).ToArray();
        return s.Length % 2 == 1 ? s[s.Length / 2] : (s[s.Length / 2 - 1] + s[s.Length / 2]) / 2;
    }

    /// <summary>
    /// Runs <paramref name="once"/> <paramref name="warmup"/> times unmeasured (JIT, allocator, thread pool warm-up),
    /// then <paramref name="reps"/> times, returning the seconds each measured call took.
    /// </summary>
    public static double[] TimeReps(int reps, int warmup, Action once)
    {
        for (int i = 0; i < warmup; i++) once();
        var seconds = new double[reps];
        for (int r = 0; r < reps; r++)
        {
            // Collect the previous repetition's garbage now, outside the timed region.
            GC.Collect();
            GC.WaitForPendingFinalizers();
            var sw = Stopwatch.StartNew();
            once();
            seconds[r] = sw.Elapsed.TotalSeconds;
        }
        return seconds;
    }

    /// <summary>Resident set size of this process in MiB, from /proc/self/status (VmRSS); NaN elsewhere.</summary>
    public static double RssMiB()
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/self/status"))
                if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                    return double.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) / 1024.0;
        }
        catch (IOException) { }
        return double.NaN;
    }

    /// <summary>
    /// Where this process's resident memory is, from /proc/self/smaps: MiB per mapped file (by name: libtorch_cpu.so,
    /// the .NET runtime and assemblies, ...) and for anonymous memory (heaps: native malloc, the GC heap, thread stacks),
    /// largest first. Empty where /proc is not available.
    /// </summary>
    public static JsonObject RssBreakdown(int top = 12)
    {
        var byName = new Dictionary<string, double>();
        try
        {
            string current = "[anonymous]";
            foreach (var line in File.ReadLines("/proc/self/smaps"))
            {
                var parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                if (parts.Length >= 5 && parts[0].Contains('-') && !line.EndsWith(':'))
                {
                    if (parts.Length >= 6 && !parts[1].Contains(':')) current = parts[5].StartsWith('[') ? parts[5] : Path.GetFileName(string.Join(' ', parts.Skip(5)));
                    else current = "[anonymous]";
                    continue;
                }
                if (parts.Length >= 2 && parts[0] == "Rss:")
                    byName[current] = byName.GetValueOrDefault(current) + double.Parse(parts[1], CultureInfo.InvariantCulture) / 1024.0;
            }
        }
        catch (IOException) { }
        var result = new JsonObject { ["total_mib"] = Math.Round(byName.Values.Sum(), 1) };
        foreach (var (name, mib) in byName.OrderByDescending(kv => kv.Value).Take(top)) result[name] = Math.Round(mib, 1);
        result["other_mib"] = Math.Round(byName.OrderByDescending(kv => kv.Value).Skip(top).Sum(kv => kv.Value), 1);
        return result;
    }

    /// <summary>Tensors alive right now on this thread, as TorchSharp counts them (created and not yet disposed).</summary>
    public static long LiveTensors() => DisposeScopeManager.Statistics.ThreadTotalLiveCount;

    /// <summary>Reads an int parameter.</summary>
    public static int Int(this JsonObject p, string key) =>
        p[key]?.GetValue<int>() ?? throw new ArgumentException($"Workload parameter '{key}' is missing.", nameof(p));

    /// <summary>Reads a double parameter.</summary>
    public static double Dbl(this JsonObject p, string key) =>
        p[key]?.GetValue<double>() ?? throw new ArgumentException($"Workload parameter '{key}' is missing.", nameof(p));

    /// <summary>Reads an int-array parameter.</summary>
    public static long[] Longs(this JsonObject p, string key) =>
        (p[key] as JsonArray)?.Select(n => (long)n!.GetValue<int>()).ToArray() ?? throw new ArgumentException($"Workload parameter '{key}' is missing.", nameof(p));
}
