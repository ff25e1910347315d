using System.Diagnostics;
using System.Text.Json.Nodes;

namespace Workbook.Tests.Bench;

/// <summary>
/// The benchmark's smoke test: runs tools/Workbook.Bench with --smoke (tiny sizes, a few steps; PyTorch too where
/// /usr/bin/python3 has torch) and checks that bench.json names every workload row with positive figures on the
/// TorchSharp side (and on the PyTorch side when it ran). No timing assertions: CI machines are too noisy.
/// </summary>
public class BenchSmokeTests
{
    static readonly string[] ExpectedRows =
    [
        "chargpt_train",
        "gpt2_decode_cache", "gpt2_decode_plain", "gpt2_decode_bf16", "gpt2_decode_int8", "gpt2_decode_nocache", "gpt2_decode_bound",
        "gpt2_forward_128", "gpt2_forward_128_plain", "gpt2_prefill_128",
        "shipped_decode_cache", "shipped_decode_plain", "shipped_decode_bf16", "shipped_decode_int8", "shipped_decode_nocache", "shipped_decode_bound",
        "shipped_forward_128", "shipped_forward_128_plain", "shipped_prefill_128",
        "mlp_train", "cnn_train", "attn_explicit", "attn_fused", "copy_bandwidth", "read_bandwidth",
        "trainer_overhead", "runner_loop_overhead", "runner_kernel_start", "linear3d_module", "linear3d_addmm",
        "memory_train_rss", "memory_train_live_tensors", "memory_generate_rss", "memory_generate_live_tensors",
        "mha_ours", "mha_torchsharp", "cnn_inference", "shipped_val_loss_fp32", "shipped_val_loss_bf16", "shipped_val_loss_int8",
    ];

    /// <summary>PyTorch rows that torch 1.13 cannot provide may be missing on that side; every other row must be there.</summary>
    static readonly string[] PyTorchOptional = ["attn_fused"];

    /// <summary>Rows about our own tools (runner, Trainer): no PyTorch counterpart.</summary>
    static readonly string[] TorchSharpOnly = ["trainer_overhead", "runner_loop_overhead", "runner_kernel_start",
        "mha_ours", "mha_torchsharp", "cnn_inference", "shipped_val_loss_fp32", "shipped_val_loss_bf16", "shipped_val_loss_int8"];

    [Fact]
    public void Smoke_run_reports_every_workload_with_positive_figures()
    {
        var outDir = Path.Combine(Path.GetTempPath(), $"workbook-bench-smoke-{Environment.ProcessId}");
        if (Directory.Exists(outDir)) Directory.Delete(outDir, recursive: true);
        var (code, output) = RunBench(outDir);
        Assert.True(code == 0, $"bench --smoke exited {code}:\n{output}");

        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(outDir, "bench.json")))!.AsObject();
        Assert.True(json["smoke"]!.GetValue<bool>());
        var rows = json["rows"]!.AsArray().Select(r => r!.AsObject()).ToDictionary(r => r["name"]!.GetValue<string>());
        Assert.Equal(ExpectedRows.Order(), rows.Keys.Order());
        bool pytorchRan = json["pytorch"] is JsonObject;
        foreach (var name in ExpectedRows)
        {
            var row = rows[name];
            AssertPositive(row["torchsharp"], $"{name} (TorchSharp): {row["torchsharp_error"]}");
            if (pytorchRan && !PyTorchOptional.Contains(name) && !TorchSharpOnly.Contains(name))
                AssertPositive(row["pytorch"], $"{name} (PyTorch): {row["pytorch_error"]}");
        }
        // The KV cache and full recompute must decode the same greedy tokens (same model, same prompt).
        Assert.True(rows["gpt2_decode_cache"]["torchsharp"]!["extra"]!["cache_and_recompute_agree"]!.GetValue<bool>());
        // The accelerator is the same function: plain and accelerated decoding pick the same greedy tokens.
        Assert.True(rows["gpt2_decode_cache"]["torchsharp"]!["extra"]!["plain_and_accelerated_agree"]!.GetValue<bool>());
        Assert.True(rows["shipped_decode_cache"]["torchsharp"]!["extra"]!["plain_and_accelerated_agree"]!.GetValue<bool>());
        Assert.True(File.Exists(Path.Combine(outDir, "bench.txt")));
        Directory.Delete(outDir, recursive: true);
    }

    /// <summary>
    /// WORKBOOK_MALLOC=on reaches glibc in a process of its own (mallopt is process-wide and would slow the CNN tests
    /// here: see Workbook.Runtime.NativeHeap), and the memory workload reports what was set.
    /// </summary>
    [Fact]
    public void Malloc_opt_in_sets_the_mmap_threshold_in_a_fresh_process()
    {
        if (!OperatingSystem.IsLinux() || Workbook.Runtime.NativeHeap.Info() is null) return; // glibc only
        var outDir = Path.Combine(Path.GetTempPath(), $"workbook-bench-malloc-{Environment.ProcessId}");
        if (Directory.Exists(outDir)) Directory.Delete(outDir, recursive: true);
        var (code, output) = RunBench(outDir, ["--only", "memory", "--no-pytorch"], [("WORKBOOK_MALLOC", "on"), ("MALLOC_MMAP_THRESHOLD_", "")]);
        Assert.True(code == 0, $"bench --smoke --only memory exited {code}:\n{output}");
        var rows = JsonNode.Parse(File.ReadAllText(Path.Combine(outDir, "bench.json")))!["rows"]!.AsArray();
        var heap = rows.First(r => r!["name"]!.GetValue<string>() == "memory_train_rss")!["torchsharp"]!["extra"]!["native_heap"]!.GetValue<string>();
        Assert.StartsWith($"M_MMAP_THRESHOLD = {Workbook.Runtime.NativeHeap.MmapThreshold} (glibc ", heap);
        Directory.Delete(outDir, recursive: true);
    }

    static void AssertPositive(JsonNode? figure, string what)
    {
        Assert.True(figure is JsonObject, $"{what}: no figure");
        var samples = figure!["samples"]!.AsArray().Select(s => s!.GetValue<double>()).ToArray();
        Assert.True(samples.Length >= 3, $"{what}: {samples.Length} samples, expected at least 3");
        Assert.All(samples, s => Assert.True(double.IsFinite(s) && s > 0, $"{what}: sample {s} is not a positive number"));
        Assert.True(figure["median"]!.GetValue<double>() > 0, $"{what}: median not positive");
    }

    /// <summary>Runs the built bench (same configuration as these tests) if present, else `dotnet run` builds it.</summary>
    static (int Code, string Output) RunBench(string outDir, string[]? extraArgs = null, (string Name, string Value)[]? env = null)
    {
        var repo = TestSetup.RepoRoot;
        var config = AppContext.BaseDirectory.Contains($"{Path.DirectorySeparatorChar}Debug{Path.DirectorySeparatorChar}") ? "Debug" : "Release";
        var dll = Path.Combine(repo, "tools", "Workbook.Bench", "bin", config, "net10.0", "Workbook.Bench.dll");
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false, WorkingDirectory = repo };
        if (File.Exists(dll)) psi.ArgumentList.Add(dll);
        else foreach (var a in new[] { "run", "--project", Path.Combine(repo, "tools", "Workbook.Bench"), "-c", config, "--" }) psi.ArgumentList.Add(a);
        foreach (var a in new[] { "--smoke", "--out", outDir }.Concat(extraArgs ?? [])) psi.ArgumentList.Add(a);
        foreach (var (name, value) in env ?? []) psi.Environment[name] = value;
        using var p = Process.Start(psi)!;
        var stderr = p.StandardError.ReadToEndAsync();
        var stdout = p.StandardOutput.ReadToEndAsync();
        if (!p.WaitForExit(TimeSpan.FromMinutes(10)))
        {
            p.Kill(entireProcessTree: true);
            return (-1, "timed out after 10 minutes\n" + stdout.Result + stderr.Result);
        }
        p.WaitForExit();
        return (p.ExitCode, stdout.Result + stderr.Result);
    }
}
