using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using TorchSharp;
using static TorchSharp.torch;

namespace Workbook.Doctor.Checks;

/// <summary>Throughput of the fixed calibration workload on this machine.</summary>
/// <param name="MatmulPerSecond">512×512 float32 matrix products per second.</param>
/// <param name="ConvPerSecond">Forward passes per second of two 3×3 convolutions on a [16, 3, 32, 32] batch.</param>
/// <param name="MlpStepsPerSecond">Training steps per second (forward, backward, SGD) of a 256-512-10 MLP on a batch of 256.</param>
/// <param name="Seconds">Wall time of the measurement.</param>
public sealed record CalibrationResult(double MatmulPerSecond, double ConvPerSecond, double MlpStepsPerSecond, double Seconds)
{
    /// <summary>
    /// The machine's speed score: the geometric mean of the three rates. A notebook's cost factor is its run time
    /// multiplied by the score of the machine it ran on ("work units"); the estimate elsewhere is units / score.
    /// </summary>
    public double Score => Math.Cbrt(MatmulPerSecond * ConvPerSecond * MlpStepsPerSecond);
}

/// <summary>A fixed small workload (matmul, convolution, MLP training step) timed for a few seconds, on one thread.</summary>
public static class Calibration
{
    /// <summary>
    /// Runs the three kernels in <paramref name="rounds"/> rounds (after a warm-up), each kernel for
    /// budget / (3 × rounds) per round, and keeps each kernel's median rate: a burst of load from another process
    /// spoils one round, not the result. libtorch runs on one thread meanwhile (restored afterwards): with two, each of
    /// these sub-millisecond ops ends in an OpenMP barrier, and on a machine whose cores are busy with other work the
    /// score fell 50× (6 against 330 on the same 2-core VM) while the notebooks, which spend most of their time in
    /// the kernel, the compiler and C# code, slowed 7×; estimates were then 5–30× off. One thread tracks the share of
    /// a core this process gets, which is what the notebooks' times follow.
    /// </summary>
    public static CalibrationResult Measure(TimeSpan budget, int rounds = 3)
    {
        if (rounds < 1) throw new ArgumentOutOfRangeException(nameof(rounds), rounds, "rounds must be at least 1.");
        int threads = torch.get_num_threads();
        torch.set_num_threads(1);
        try { return MeasureOnOneThread(budget, rounds); }
        finally { torch.set_num_threads(threads); }
    }

    static CalibrationResult MeasureOnOneThread(TimeSpan budget, int rounds)
    {
        var total = Stopwatch.StartNew();
        var slice = budget / (3 * rounds);
        var gen = new Generator(1234);
        using var a = randn(512, 512, generator: gen);
        using var b = randn(512, 512, generator: gen);
        using var images = randn(new long[] { 16, 3, 32, 32 }, generator: gen);
        using var conv1 = nn.Conv2d(3, 32, 3, padding: 1);
        using var conv2 = nn.Conv2d(32, 64, 3, padding: 1);
        using var x = randn(256, 256, generator: gen);
        using var y = randint(0, 10, new long[] { 256 }, generator: gen);
        using var mlp = nn.Sequential(("fc1", nn.Linear(256, 512)), ("relu", nn.ReLU()), ("fc2", nn.Linear(512, 10)));
        using var opt = optim.SGD(mlp.parameters(), 0.01);

        Action matmul = () => { using var c = a.matmul(b); };
        Action conv = () => { using var s = NewDisposeScope(); using var g = no_grad(); conv2.forward(nn.functional.relu(conv1.forward(images))); };
        Action step = () =>
        {
            using var s = NewDisposeScope();
            opt.zero_grad();
            nn.functional.cross_entropy(mlp.forward(x), y).backward();
            opt.step();
        };
        var rates = new List<double>[] { new(), new(), new() };
        for (int r = 0; r < rounds; r++)
        {
            rates[0].Add(Rate(slice, matmul, warmup: r == 0));
            rates[1].Add(Rate(slice, conv, warmup: r == 0));
            rates[2].Add(Rate(slice, step, warmup: r == 0));
        }
        static double Median(List<double> v) { var o = v.Order().ToArray(); return o.Length % 2 == 1 ? o[o.Length / 2] : (o[o.Length / 2 - 1] + o[o.Length / 2]) / 2; }
        return new CalibrationResult(Median(rates[0]), Median(rates[1]), Median(rates[2]), total.Elapsed.TotalSeconds);
    }

    static double Rate(TimeSpan slice, Action step, bool warmup)
    {
        if (warmup) for (int i = 0; i < 3; i++) step(); // allocator, thread pool, kernel selection
        var sw = Stopwatch.StartNew();
        long n = 0;
        do { step(); n++; } while (sw.Elapsed < slice);
        return n / sw.Elapsed.TotalSeconds;
    }
}

/// <summary>One notebook's cost factors: its run time times the speed score of the machine it was measured on.</summary>
/// <param name="Notebook">Path relative to notebooks/, e.g. "08-your-own-data.ipynb".</param>
/// <param name="QuickUnits">Quick run seconds × score, or null when not measured.</param>
/// <param name="FullUnits">Full run seconds × score, or null when not measured.</param>
/// <param name="QuickSource">Where the Quick number comes from (machine, threads, score, date).</param>
/// <param name="FullSource">Where the Full number comes from.</param>
/// <param name="FullMissing">Why no Full factor is recorded yet (a measured run that did not finish, say): a gap said
/// out loud, which the factor test accepts; a notebook with neither a factor nor a reason fails it.</param>
public sealed record NotebookCost(string Notebook, double? QuickUnits, double? FullUnits, string? QuickSource = null, string? FullSource = null, string? FullMissing = null);

/// <summary>
/// The per-notebook cost factors (tools/Workbook.Doctor/notebook-costs.json). Recorded from a runner report:
/// <c>doctor --record-costs out/report.json</c> calibrates this machine and stores seconds × score per notebook,
/// so an estimate on another machine is units / its score. Run-time overheads that do not scale with compute
/// (process start, package restore, compilation) are included in the units, so estimates for much faster
/// machines are slightly optimistic.
/// </summary>
public static class NotebookCosts
{
    /// <summary>Reads the costs file; an absent file is an empty list.</summary>
    public static List<NotebookCost> Read(string path)
    {
        if (!File.Exists(path)) return new List<NotebookCost>();
        var root = JsonNode.Parse(File.ReadAllText(path))!;
        return root["notebooks"]!.AsArray().Select(n => new NotebookCost(
            (string)n!["notebook"]!, (double?)n["quick_units"], (double?)n["full_units"], (string?)n["quick_source"], (string?)n["full_source"], (string?)n["full_missing"])).ToList();
    }

    /// <summary>Writes the costs file, notebooks sorted by name.</summary>
    public static void Write(string path, IEnumerable<NotebookCost> costs)
    {
        var arr = new JsonArray(costs.OrderBy(c => c.Notebook, StringComparer.Ordinal).Select(c => (JsonNode)new JsonObject
        {
            ["notebook"] = c.Notebook,
            ["quick_units"] = c.QuickUnits is { } q ? Math.Round(q, 1) : null,
            ["full_units"] = c.FullUnits is { } f ? Math.Round(f, 1) : null,
            ["quick_source"] = c.QuickSource,
            ["full_source"] = c.FullSource,
            ["full_missing"] = c.FullUnits is null ? c.FullMissing : null,
        }).ToArray());
        var root = new JsonObject
        {
            ["about"] = "Cost factors per notebook: run seconds x calibration score of the machine measured on. Estimate = units / score. " +
                        "Update with: dotnet run --project tools/Workbook.Doctor -c Release -- --record-costs out/report.json",
            ["notebooks"] = arr,
        };
        File.WriteAllText(path, root.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
    }

    /// <summary>
    /// Merges a runner report (out/report.json: profile and per-notebook seconds) into <paramref name="costs"/>,
    /// converting seconds to units with <paramref name="score"/>. Failed notebooks are skipped.
    /// </summary>
    /// <returns>How many notebooks were recorded.</returns>
    public static int Record(List<NotebookCost> costs, string reportJson, double score, string source)
    {
        var root = JsonNode.Parse(reportJson) ?? throw new InvalidDataException("The runner report is empty.");
        bool quick = string.Equals((string?)root["profile"], "Quick", StringComparison.OrdinalIgnoreCase);
        int n = 0;
        foreach (var nb in root["notebooks"]?.AsArray() ?? new JsonArray())
        {
            if (nb?["ok"]?.GetValue<bool>() != true) continue;
            var name = (string?)nb["relative"] ?? Path.GetFileName((string?)nb["notebook"] ?? "");
            if (string.IsNullOrEmpty(name) || nb["seconds"] is null) continue;
            double units = nb["seconds"]!.GetValue<double>() * score;
            int i = costs.FindIndex(c => c.Notebook == name);
            var old = i >= 0 ? costs[i] : new NotebookCost(name, null, null);
            var updated = quick ? old with { QuickUnits = units, QuickSource = source } : old with { FullUnits = units, FullSource = source, FullMissing = null };
            if (i >= 0) costs[i] = updated; else costs.Add(updated);
            n++;
        }
        return n;
    }

    /// <summary>
    /// The estimate (units / <paramref name="score"/>) against the measured time of every notebook that ran ok in a
    /// runner report: the acceptance check of the factors (<c>doctor --check-costs out/report.json</c>).
    /// </summary>
    public static List<CostCheck> Compare(IReadOnlyList<NotebookCost> costs, string reportJson, double score)
    {
        var root = JsonNode.Parse(reportJson) ?? throw new InvalidDataException("The runner report is empty.");
        bool quick = string.Equals((string?)root["profile"], "Quick", StringComparison.OrdinalIgnoreCase);
        var result = new List<CostCheck>();
        foreach (var nb in root["notebooks"]?.AsArray() ?? new JsonArray())
        {
            if (nb?["ok"]?.GetValue<bool>() != true || nb["seconds"] is null) continue;
            var name = (string?)nb["relative"] ?? Path.GetFileName((string?)nb["notebook"] ?? "");
            var c = costs.FirstOrDefault(c => c.Notebook == name);
            double? units = quick ? c?.QuickUnits : c?.FullUnits;
            result.Add(new CostCheck(name, nb["seconds"]!.GetValue<double>(), units is { } u ? CalibrationCheck.EstimateSeconds(u, score) : null));
        }
        return result;
    }

    /// <summary>The notebooks under <paramref name="notebooksDirectory"/> (chapters and solutions) that lack a Quick or a Full factor.</summary>
    public static List<string> Missing(IReadOnlyList<NotebookCost> costs, string notebooksDirectory) =>
        Directory.GetFiles(notebooksDirectory, "*.ipynb", SearchOption.AllDirectories)
            .Select(f => Path.GetRelativePath(notebooksDirectory, f).Replace('\\', '/'))
            .Where(f => !f.Contains(".ipynb_checkpoints"))
            .Where(f => costs.FirstOrDefault(c => c.Notebook == f || c.Notebook == Path.GetFileName(f)) is not { QuickUnits: not null } cost
                        || (cost.FullUnits is null && string.IsNullOrWhiteSpace(cost.FullMissing)))
            .Order(StringComparer.Ordinal).ToList();
}

/// <summary>One notebook's estimate against a measured time (see <see cref="NotebookCosts.Compare"/>).</summary>
/// <param name="Notebook">Path relative to notebooks/.</param>
/// <param name="MeasuredSeconds">The report's time.</param>
/// <param name="EstimateSeconds">units / score, or null when no factor is recorded for the report's profile.</param>
public sealed record CostCheck(string Notebook, double MeasuredSeconds, double? EstimateSeconds)
{
    /// <summary>(estimate − measured) / measured, or null without an estimate.</summary>
    public double? Error => EstimateSeconds is { } e && MeasuredSeconds > 0 ? (e - MeasuredSeconds) / MeasuredSeconds : null;

    /// <summary>True when the estimate is within ±<paramref name="tolerance"/> (relative) of the measured time.</summary>
    public bool Within(double tolerance) => Error is { } e && Math.Abs(e) <= tolerance;
}

/// <summary>
/// Calibrates this machine (about 10 seconds) and estimates each notebook's Quick and Full run time from the
/// recorded cost factors. Never fails: estimates are advice; a notebook without factors is listed as unmeasured.
/// </summary>
/// <param name="costsPath">tools/Workbook.Doctor/notebook-costs.json.</param>
/// <param name="notebooksDirectory">notebooks/ (every *.ipynb there and in solutions/ gets a row).</param>
/// <param name="budget">Calibration time (default 10 s).</param>
public sealed class CalibrationCheck(string costsPath, string notebooksDirectory, TimeSpan? budget = null) : PreflightCheck
{
    /// <inheritdoc/>
    public override string Name => "calibration";

    /// <summary>The measurement, after <see cref="PreflightCheck.Run"/>.</summary>
    public CalibrationResult? Result { get; private set; }

    /// <summary>Seconds for <paramref name="units"/> on a machine with <paramref name="score"/>.</summary>
    public static double EstimateSeconds(double units, double score) => units / score;

    /// <summary>"45 s" or "3.2 min".</summary>
    public static string Format(double seconds) => seconds < 90 ? $"{seconds:F0} s" : $"{seconds / 60:F1} min";

    /// <inheritdoc/>
    protected override IEnumerable<CheckResult> Evaluate()
    {
        Result = Calibration.Measure(budget ?? TimeSpan.FromSeconds(10));
        var r = Result;
        yield return CheckResult.Pass(Name, $"score {r.Score:F1} (one thread: matmul 512² {r.MatmulPerSecond:F0}/s, conv {r.ConvPerSecond:F0}/s, MLP step {r.MlpStepsPerSecond:F0}/s; {r.Seconds:F1} s; notebooks run on {torch.get_num_threads()} threads)");
        var costs = NotebookCosts.Read(costsPath).ToDictionary(c => c.Notebook);
        var notebooks = Directory.Exists(notebooksDirectory)
            ? Directory.GetFiles(notebooksDirectory, "*.ipynb", SearchOption.AllDirectories)
                .Select(f => Path.GetRelativePath(notebooksDirectory, f).Replace('\\', '/'))
                .Where(f => !f.Contains(".ipynb_checkpoints")).OrderBy(f => f.Count(ch => ch == '/')).ThenBy(f => f, StringComparer.Ordinal).ToList()
            : new List<string>();
        foreach (var nb in notebooks)
        {
            var key = costs.ContainsKey(nb) ? nb : Path.GetFileName(nb);
            if (!costs.TryGetValue(key, out var c) || (c.QuickUnits is null && c.FullUnits is null))
            {
                yield return CheckResult.Warn($"  {nb}", "no cost factor recorded", "after running the notebooks: dotnet run --project tools/Workbook.Doctor -c Release -- --record-costs out/report.json");
                continue;
            }
            string Est(double? u) => u is { } v ? "~" + Format(EstimateSeconds(v, r.Score)) : "not measured";
            yield return CheckResult.Pass($"  {nb}", $"Quick {Est(c.QuickUnits)}, Full {Est(c.FullUnits)}");
        }
    }
}
