using System.Buffers.Binary;
using System.Diagnostics;
using System.Text;
using TorchSharp;
using Workbook.Data;
using Workbook.IO;
using Workbook.Tests.Training;
using Workbook.Training;
using static TorchSharp.torch;

namespace Workbook.Tests.Reliability;

/// <summary>
/// Shared pieces of the reliability suite (issue 14, "Hostile and broken inputs"): temporary folders, the assertion
/// that an error is the library's own and says what is wrong, hand-made files, and memory measurements.
/// </summary>
static class Hostile
{
    /// <summary>A fresh temporary folder.</summary>
    public static string Folder(string tag) => Directory.CreateDirectory(Path.Combine(Path.GetTempPath(), $"wb-rel-{tag}-{Guid.NewGuid():N}")).FullName;

    /// <summary>
    /// Runs <paramref name="action"/> and asserts it throws <typeparamref name="T"/> (or a subclass) whose message
    /// contains every one of <paramref name="mustMention"/>: the argument or path, and the expected and actual values.
    /// </summary>
    public static T Throws<T>(Action action, params string[] mustMention) where T : Exception
    {
        Exception? caught = null;
        try { action(); }
        catch (Exception e) { caught = e; }
        Assert.True(caught is not null, $"expected {typeof(T).Name}, but nothing was thrown");
        Assert.True(caught is T, $"expected {typeof(T).Name}, got {caught!.GetType().FullName}: {caught.Message}");
        foreach (var m in mustMention)
            Assert.True(caught.Message.Contains(m, StringComparison.Ordinal), $"the message should mention \"{m}\":\n{caught.Message}");
        return (T)caught;
    }

    /// <summary>Runs <paramref name="action"/> on the thread pool and fails if it takes longer than <paramref name="limit"/> (a hang).</summary>
    public static void Within(TimeSpan limit, Action action, string what)
    {
        var task = Task.Run(action);
        if (!task.Wait(limit)) Assert.Fail($"{what} did not finish within {limit.TotalSeconds:0.#} s (it hangs)");
    }

    /// <summary>A safetensors file written byte by byte: the 8-byte length, <paramref name="header"/> (UTF-8 unless given as bytes), then <paramref name="data"/>.</summary>
    public static string RawSafetensors(string path, string header, byte[]? data = null) => RawSafetensors(path, Encoding.UTF8.GetBytes(header), data);

    /// <inheritdoc cref="RawSafetensors(string, string, byte[])"/>
    public static string RawSafetensors(string path, byte[] header, byte[]? data = null)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        using var fs = File.Create(path);
        Span<byte> len = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(len, (ulong)header.Length);
        fs.Write(len);
        fs.Write(header);
        if (data is not null) fs.Write(data);
        return path;
    }

    /// <summary>Rewrites a safetensors file with edited tensors and metadata (our writer, so the result is well-formed).</summary>
    public static void Rewrite(string path, Action<Dictionary<string, Tensor>, Dictionary<string, string>> edit)
    {
        var tensors = SafeTensors.Load(path);
        var meta = SafeTensors.ReadMetadata(path).ToDictionary(kv => kv.Key, kv => kv.Value);
        edit(tensors, meta);
        SafeTensors.Save(path, tensors, meta);
        foreach (var t in tensors.Values) t.Dispose();
    }

    /// <summary>
    /// What <paramref name="action"/> allocates: managed bytes (<see cref="GC.GetTotalAllocatedBytes"/>, which counts
    /// every allocation, freed or not) and, on Linux, the growth of the process's peak resident memory (VmHWM, reset
    /// through /proc/self/clear_refs), which sees native (libtorch, Skia) allocations that were touched. The action
    /// runs once first, so that JIT compilation is not counted.
    /// </summary>
    public static (long Managed, long? PeakResident) Allocation(Action action)
    {
        action();
        GC.Collect();
        GC.WaitForPendingFinalizers();
        bool peak = ResetPeak();
        long rss0 = peak ? Status("VmHWM:") : 0;
        long m0 = GC.GetTotalAllocatedBytes(precise: true);
        action();
        long managed = GC.GetTotalAllocatedBytes(precise: true) - m0;
        return (managed, peak ? Status("VmHWM:") - rss0 : null);
    }

    /// <summary>Asserts the measured allocation is at most <paramref name="fileBytes"/> plus <paramref name="slack"/>.</summary>
    public static void AssertAllocationBounded((long Managed, long? PeakResident) used, long fileBytes, long slack, string what)
    {
        Assert.True(used.Managed <= fileBytes + slack, $"{what} allocated {used.Managed:N0} managed bytes for a {fileBytes:N0}-byte file (allowed: the file plus {slack:N0})");
        if (used.PeakResident is { } rss)
            Assert.True(rss <= fileBytes + 32L * 1024 * 1024, $"{what} grew the peak resident memory by {rss:N0} bytes for a {fileBytes:N0}-byte file (allowed: the file plus 32 MiB)");
    }

    static bool ResetPeak()
    {
        if (!OperatingSystem.IsLinux()) return false;
        try { File.WriteAllText("/proc/self/clear_refs", "5"); return true; }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return false; }
    }

    static long Status(string field)
    {
        var line = File.ReadLines("/proc/self/status").First(l => l.StartsWith(field, StringComparison.Ordinal));
        return long.Parse(line[field.Length..].Trim().Split(' ')[0]) * 1024;
    }

    /// <summary>The id of a process that has exited (so a temp file named after it is an orphan).</summary>
    public static int DeadPid()
    {
        using var p = Process.Start(new ProcessStartInfo("true") { UseShellExecute = false })!;
        p.WaitForExit();
        return p.Id;
    }

    /// <summary>Every parameter's and optimizer state tensor's bytes, the learning rates and torch's RNG state.</summary>
    public static List<byte[]> Snapshot(nn.Module model, torch.optim.Optimizer optimizer)
    {
        var all = TrainingData.Bytes(model).ToList();
        var (state, meta) = Optimizers.ExportState(optimizer, model);
        foreach (var (k, t) in state.OrderBy(kv => kv.Key, StringComparer.Ordinal)) { all.Add(Encoding.UTF8.GetBytes(k)); all.Add(t.bytes.ToArray()); t.Dispose(); }
        all.Add(Encoding.UTF8.GetBytes(string.Join(";", meta.OrderBy(kv => kv.Key).Select(kv => kv.Key + "=" + kv.Value))));
        using var rng = torch.get_rng_state();
        all.Add(rng.bytes.ToArray());
        return all;
    }

    public static void AssertSame(List<byte[]> before, List<byte[]> after, string what)
    {
        Assert.Equal(before.Count, after.Count);
        for (int i = 0; i < before.Count; i++) Assert.True(before[i].AsSpan().SequenceEqual(after[i]), $"{what}: entry {i} of the model/optimizer/RNG snapshot changed");
    }
}

/// <summary>The trainers the reliability tests (and their child processes) build: the same in every process.</summary>
static class ReliabilityModels
{
    /// <summary>A small classifier trainer with dropout, AdamW, a schedule, clipping, accumulation and early stopping with best weights.</summary>
    public static Trainer Trainer(DropoutMlp model, int epochs, int batchesPerEpoch) => new(model, Optimizers.AdamW(model.parameters(), lr: 3e-3), Losses.CrossEntropy)
    {
        Epochs = epochs,
        Metrics = { Metric.Accuracy },
        Schedule = LRSchedule.WarmupCosine(3e-3, warmupSteps: 5, totalSteps: epochs * (batchesPerEpoch + 1) / 2),
        ClipGradNorm = 0.5,
        AccumulationSteps = 2,
        EarlyStopping = new EarlyStopping("val_loss", Patience: 10),
        Seed = 11,
    };

    /// <summary>The data of <see cref="Trainer"/>: a seeded problem, split, shuffled by a seeded loader.</summary>
    public static (BatchLoader Train, BatchLoader Val, InMemoryDataset Data) Data()
    {
        var data = TrainingData.Classification(200, 10, 4, seed: 3);
        var (train, val) = data.Split(0.2, seed: 4);
        return (new BatchLoader(train, 16, shuffle: true, seed: 5), new BatchLoader(val, 64), data);
    }

    /// <summary>A trainer checkpoint after <paramref name="epochs"/> epochs (with best weights), written to <paramref name="path"/>.</summary>
    public static void WriteCheckpoint(string path, int epochs = 2)
    {
        var (train, val, data) = Data();
        using var _ = data;
        torch.manual_seed(11);
        var model = new DropoutMlp(10, 32, 4);
        var trainer = Trainer(model, epochs, train.BatchCount);
        trainer.Fit(train, val);
        trainer.SaveCheckpoint(path);
    }

    /// <summary>A trainer that has taken a few steps of its own, so a load has something to overwrite.</summary>
    public static Trainer Fresh(int seed = 99)
    {
        torch.manual_seed(seed);
        var model = new DropoutMlp(10, 32, 4);
        var (train, val, data) = Data();
        var trainer = Trainer(model, 4, train.BatchCount);
        trainer.Epochs = 1;
        using (data) trainer.Fit(train, val);
        return trainer;
    }
}
