using System.Globalization;
using System.Text.Json;
using Workbook.Bench;
using Workbook.Bench.Workloads;
using Workbook.Runtime;

// Workbook.Bench: every benchmark of issue 8 on TorchSharp and, right after each, the same workload in PyTorch.
return BenchCli.Run(args);

namespace Workbook.Bench
{
    static class BenchCli
    {
        const string Usage = """
            Usage: dotnet run --project tools/Workbook.Bench -c Release -- [options]
              Runs the benchmarks on TorchSharp and, where python3 with torch is installed, the same workloads in
              PyTorch (pytorch_bench.py) right after each one; prints a side-by-side table and writes bench.json.
            Options:
              --smoke          tiny sizes and few steps (the CI check; figures mean nothing)
              --out DIR        output folder (default: out/bench)
              --only NAME      run one workload group (repeatable): chargpt, gpt2, shipped, mlp, cnn, attention,
                               bandwidth, trainer, runner, memory, linear (diagnostic), library
              --threads N      intra-op threads on both sides (default 2)
              --no-pytorch     TorchSharp only
              --python PATH    python with torch (default: $WORKBOOK_BENCH_PYTHON, else /usr/bin/python3)
            Exit code: 0 when every workload ran, 1 when one failed, 2 for bad arguments.
            """;

        /// <summary>Every workload, in the order the issue lists them.</summary>
        static IReadOnlyList<IWorkload> All() =>
        [
            new CharGptTrainWorkload(), new Gpt2Workload(), new ShippedWorkload(), new MlpTrainWorkload(), new CnnTrainWorkload(),
            new AttentionWorkload(), new BandwidthWorkload(), new TrainerOverheadWorkload(), new RunnerOverheadWorkload(),
            new MemoryWorkload(), new LinearWorkload(), new LibraryWorkload(),
        ];

        public static int Run(string[] args)
        {
            bool smoke = false, pytorch = true;
            string outDir = Path.Combine("out", "bench");
            var only = new List<string>();
            int threads = 2;
            string python = Environment.GetEnvironmentVariable("WORKBOOK_BENCH_PYTHON") is { Length: > 0 } envPy ? envPy : "/usr/bin/python3";
            try
            {
                for (int i = 0; i < args.Length; i++)
                {
                    switch (args[i])
                    {
                        case "-h" or "--help": Console.WriteLine(Usage); return 0;
                        case "--smoke": smoke = true; break;
                        case "--out": outDir = Next(args, ref i); break;
                        case "--only": only.Add(Next(args, ref i)); break;
                        case "--threads": threads = int.Parse(Next(args, ref i), CultureInfo.InvariantCulture); break;
                        case "--no-pytorch": pytorch = false; break;
                        case "--python": python = Next(args, ref i); break;
                        default: throw new ArgumentException($"Unknown argument '{args[i]}'.");
                    }
                }
                if (threads < 1) throw new ArgumentException($"--threads must be at least 1, got {threads}.");
            }
            catch (Exception e) when (e is ArgumentException or FormatException)
            {
                Console.Error.WriteLine($"{e.Message}\n{Usage}");
                return 2;
            }

            var workloads = All();
            foreach (var name in only)
                if (!workloads.Any(w => w.Name == name))
                {
                    Console.Error.WriteLine($"--only '{name}' is not a workload; expected one of {string.Join(", ", workloads.Select(w => w.Name))}.");
                    return 2;
                }
            if (only.Count > 0) workloads = workloads.Where(w => only.Contains(w.Name)).ToList();

            TorchRuntime.EnsureLoaded();
            torch.set_num_threads(threads);
            outDir = Path.GetFullPath(outDir);
            Directory.CreateDirectory(outDir);

            var py = pytorch ? PyTorchSide.Probe(python, threads) : null;
            var info = new JsonObject
            {
                ["smoke"] = smoke, ["threads"] = threads, ["started_utc"] = DateTime.UtcNow.ToString("o"),
                ["machine"] = new JsonObject { ["cores"] = Environment.ProcessorCount, ["os"] = System.Runtime.InteropServices.RuntimeInformation.OSDescription, ["cpu"] = CpuModel() },
                ["torchsharp"] = new JsonObject
                {
                    ["version"] = typeof(torch).Assembly.GetName().Version?.ToString(), ["libtorch"] = torch.__version__,
                    ["threads"] = torch.get_num_threads(), ["dotnet"] = Environment.Version.ToString(),
                },
                ["pytorch"] = py?.Info ?? (JsonNode)JsonValue.Create(pytorch ? $"not available: {PyTorchSide.LastProbeError}" : "disabled (--no-pytorch)")!,
            };
            Console.WriteLine($"Workbook bench{(smoke ? " (smoke: tiny sizes, figures mean nothing)" : "")}: {threads} threads, {Environment.ProcessorCount} cores ({CpuModel()}), output {outDir}");
            Console.WriteLine($"  TorchSharp {info["torchsharp"]!["version"]} (libtorch {torch.__version__}), .NET {Environment.Version}");
            Console.WriteLine(py is null
                ? $"  PyTorch: {(pytorch ? $"not available ({PyTorchSide.LastProbeError}); TorchSharp only" : "disabled")}"
                : $"  PyTorch {py.Info["torch"]} via {python}, BLAS loaded: {py.Info["blas"]}");

            var rows = new JsonArray();
            bool allOk = true;
            foreach (var w in workloads)
            {
                var parameters = w.Parameters(smoke);
                Console.WriteLine($"\n[{w.Name}] {w.Description}");
                Console.WriteLine($"  parameters: {parameters.ToJsonString()}");
                IReadOnlyList<Figure>? ours = null;
                string? oursError = null;
                try
                {
                    var sw = System.Diagnostics.Stopwatch.StartNew();
                    ours = w.Run((JsonObject)parameters.DeepClone());
                    Console.WriteLine($"  TorchSharp done in {sw.Elapsed.TotalSeconds:F1}s");
                }
                catch (Exception e)
                {
                    oursError = $"{e.GetType().Name}: {e.Message}";
                    Console.WriteLine($"  TorchSharp FAILED: {oursError}");
                    allOk = false;
                }
                IReadOnlyList<Figure>? theirs = null;
                string? theirsError = w.HasPyTorch ? null : "no PyTorch counterpart";
                if (py is not null && w.HasPyTorch)
                {
                    (theirs, theirsError) = py.Run(w.Name, parameters);
                    Console.WriteLine(theirs is not null ? "  PyTorch done" : $"  PyTorch FAILED: {theirsError}");
                }
                foreach (var spec in w.Rows)
                {
                    var a = ours?.FirstOrDefault(f => f.Name == spec.Name);
                    var b = theirs?.FirstOrDefault(f => f.Name == spec.Name);
                    if (ours is not null && a is null) { allOk = false; oursError = $"row {spec.Name} missing"; }
                    double? ratio = a is not null && b is not null && spec.Compare && a.Median > 0 && b.Median > 0
                        ? (spec.HigherIsBetter ? a.Median / b.Median : b.Median / a.Median) : null;
                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"  {spec.Name,-30} TorchSharp {(a is null ? "n/a" : $"{a.Median:G4} ±{a.SpreadPercent:F0}%"),-18} PyTorch {(b is null ? "n/a" : $"{b.Median:G4} ±{b.SpreadPercent:F0}%"),-18} {spec.Unit}{(ratio is null ? "" : $"  ratio {ratio:F2}")}"));
                    rows.Add(new JsonObject
                    {
                        ["workload"] = w.Name, ["name"] = spec.Name, ["unit"] = spec.Unit, ["higher_is_better"] = spec.HigherIsBetter,
                        ["parameters"] = parameters.DeepClone(),
                        ["torchsharp"] = a is null ? null : FigureJson(a), ["torchsharp_error"] = a is null ? oursError : null,
                        ["pytorch"] = b is null ? null : FigureJson(b), ["pytorch_error"] = b is null ? theirsError ?? (py is null ? "PyTorch not available" : $"row {spec.Name} missing") : null,
                        ["ratio"] = ratio,
                    });
                }
            }

            info["finished_utc"] = DateTime.UtcNow.ToString("o");
            info["ratio_means"] = "TorchSharp speed / PyTorch speed (>1: TorchSharp faster); for times and memory PyTorch / TorchSharp";
            info["rows"] = rows;
            var jsonPath = Path.Combine(outDir, "bench.json");
            File.WriteAllText(jsonPath, info.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            var table = Table(rows);
            File.WriteAllText(Path.Combine(outDir, "bench.txt"), table);
            Console.WriteLine();
            Console.WriteLine(table);
            Console.WriteLine($"Wrote {jsonPath}");
            return allOk ? 0 : 1;
        }

        static JsonObject FigureJson(Figure f) => new()
        {
            ["median"] = f.Median, ["min"] = f.Samples.Min(), ["max"] = f.Samples.Max(), ["spread_pct"] = f.SpreadPercent,
            ["samples"] = new JsonArray(f.Samples.Select(s => (JsonNode)JsonValue.Create(s)!).ToArray()),
            ["extra"] = f.Extra?.DeepClone(),
        };

        /// <summary>The side-by-side table: figure ± spread on each side, and the ratio (TorchSharp relative speed).</summary>
        static string Table(JsonArray rows)
        {
            static string Num(double v) => v >= 1000 ? v.ToString("N0", CultureInfo.InvariantCulture)
                : v >= 10 ? v.ToString("F1", CultureInfo.InvariantCulture) : v.ToString("F3", CultureInfo.InvariantCulture);
            static string Cell(JsonNode? fig, string? error) => fig is null ? (error is null ? "-" : "n/a")
                : $"{Num(fig["median"]!.GetValue<double>())} ±{fig["spread_pct"]!.GetValue<double>():F0}%";
            var lines = new List<string[]> { new[] { "workload", "unit", "TorchSharp (±spread)", "PyTorch (±spread)", "ratio" } };
            foreach (var r in rows)
            {
                var ratio = r!["ratio"]?.GetValue<double>();
                lines.Add([r["name"]!.GetValue<string>(), r["unit"]!.GetValue<string>(),
                    Cell(r["torchsharp"], r["torchsharp_error"]?.GetValue<string>()), Cell(r["pytorch"], r["pytorch_error"]?.GetValue<string>()),
                    ratio is null ? "" : ratio.Value.ToString("F2", CultureInfo.InvariantCulture)]);
            }
            var widths = Enumerable.Range(0, 5).Select(c => lines.Max(l => l[c].Length)).ToArray();
            var sb = new System.Text.StringBuilder();
            foreach (var (l, i) in lines.Select((l, i) => (l, i)))
            {
                sb.AppendLine(string.Join("  ", l.Select((c, j) => j >= 2 ? c.PadLeft(widths[j]) : c.PadRight(widths[j]))));
                if (i == 0) sb.AppendLine(new string('-', widths.Sum() + 8));
            }
            sb.AppendLine("ratio = TorchSharp speed / PyTorch speed (times and memory: PyTorch / TorchSharp); >= 1 means TorchSharp is as fast or faster.");
            sb.AppendLine("Figures are medians of the repetitions; spread = (max - min) / median. Memory rows: median of the sampled series, spread = its range.");
            foreach (var r in rows)
            {
                var extra = r!["torchsharp"]?["extra"];
                if (r["name"]!.GetValue<string>() is "gpt2_decode_cache" or "shipped_decode_cache" && extra is not null)
                    sb.AppendLine(string.Create(CultureInfo.InvariantCulture,
                        $"{r["workload"]} decode: {extra["weight_bytes_per_token"]!.GetValue<long>() / 1e6:F0} MB of float32 weights per token, copy bandwidth {extra["copy_bandwidth_gbs"]!.GetValue<double>():F1} GB/s: the accelerated fp32 decode reaches {extra["fraction_of_bound"]!.GetValue<double>():P0} of the bound ({extra["fraction_of_read_bound"]!.GetValue<double>():P0} of the read-bandwidth bound), {extra["cache_speedup"]!.GetValue<double>():F1}x recompute;"
                        + $" accelerator / plain {extra["accelerator_speedup_over_plain"]!.GetValue<double>():F2}x (plain first/last run {extra["plain_first_and_last_runs"]}); int8 / accelerated fp32 {extra["int8_speedup_over_accelerated_fp32"]!.GetValue<double>():F2}x, int8 / plain fp32 {extra["int8_speedup_over_plain_fp32"]!.GetValue<double>():F2}x, bf16 / accelerated fp32 {extra["bf16_speedup_over_accelerated_fp32"]!.GetValue<double>():F2}x;"
                        + $" greedy tokens equal to fp32: bf16 {extra["bf16_greedy_tokens_equal_fp32"]}, int8 {extra["int8_greedy_tokens_equal_fp32"]}. Accelerator choices: {extra["accelerator_choices"]}."));
                if (r["name"]!.GetValue<string>().StartsWith("shipped_val_loss_", StringComparison.Ordinal) && extra is not null)
                    sb.AppendLine(string.Create(CultureInfo.InvariantCulture,
                        $"{r["name"]}: perplexity {extra["perplexity"]!.GetValue<double>():F2} ({extra["perplexity_increase_pct"]!.GetValue<double>():+0.00;-0.00}% against fp32) over {extra["tokens"]} validation tokens"));
                if (r["name"]!.GetValue<string>() == "attn_explicit" && extra?["sweep"] is JsonArray sweep)
                {
                    sb.AppendLine(string.Create(CultureInfo.InvariantCulture, $"attention: explicit {extra["explicit_gflops"]!.GetValue<double>():F0} GFLOP/s, fused {extra["fused_gflops"]!.GetValue<double>():F0} GFLOP/s on the same FLOPs; where fused wins (explicit / fused ms, peak MiB added):"));
                    foreach (var row in sweep)
                        sb.AppendLine(string.Create(CultureInfo.InvariantCulture, $"  {row!["shape"]}: {row["explicit_ms"]} / {row["fused_ms"]} ms (fused {row["fused_over_explicit"]}x), peak {row["explicit_peak_mib"]} / {row["fused_peak_mib"]} MiB (T×T scores {row["score_matrix_mib"]} MiB)"));
                }
                if (r["name"]!.GetValue<string>().StartsWith("memory_", StringComparison.Ordinal))
                {
                    string Growth(string side) => r[side]?["extra"]?["growth"] is JsonNode g ? g.GetValue<double>().ToString("F1", CultureInfo.InvariantCulture) : "-";
                    sb.AppendLine($"{r["name"]}: growth over the run TorchSharp {Growth("torchsharp")}, PyTorch {Growth("pytorch")} {r["unit"]}");
                    string Where(string side) => r[side]?["extra"]?["rss_breakdown"] is JsonObject b
                        ? string.Join(", ", b.Where(kv => kv.Key != "total_mib").Take(6).Select(kv => $"{kv.Key} {kv.Value}")) : "-";
                    if (r["torchsharp"]?["extra"]?["rss_breakdown"] is not null)
                        sb.AppendLine($"  resident MiB by mapping, TorchSharp: {Where("torchsharp")}; PyTorch: {Where("pytorch")}");
                }
                if (r["name"]!.GetValue<string>() is "trainer_overhead" or "runner_loop_overhead" && r["torchsharp"]?["extra"] is JsonNode ex)
                    sb.AppendLine($"{r["name"]}: {ex.ToJsonString()}");
            }
            return sb.ToString();
        }

        /// <summary>"Intel(R) Xeon(R) Processor, AVX-512" from /proc/cpuinfo: the ratios depend on it (oneMKL and OpenBLAS pick kernels by it).</summary>
        static string CpuModel()
        {
            try
            {
                var lines = File.ReadLines("/proc/cpuinfo").Take(64).ToList();
                var model = lines.FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim() ?? "?";
                var flags = lines.FirstOrDefault(l => l.StartsWith("flags", StringComparison.Ordinal)) ?? "";
                return model + (flags.Contains(" avx512f", StringComparison.Ordinal) ? ", AVX-512" : flags.Contains(" avx2", StringComparison.Ordinal) ? ", AVX2" : "");
            }
            catch (IOException) { return "unknown CPU"; }
            catch (UnauthorizedAccessException) { return "unknown CPU"; }
        }

        static string Next(string[] args, ref int i) =>
            i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value.");
    }
}
