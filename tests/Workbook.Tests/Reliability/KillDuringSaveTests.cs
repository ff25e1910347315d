using System.Diagnostics;
using TorchSharp;
using Workbook.Tests.Training;
using Workbook.Training;
using static TorchSharp.torch;

namespace Workbook.Tests.Reliability;

/// <summary>
/// A process killed with SIGKILL in the middle of a checkpoint save (atomicity: the file on disk is always one
/// complete save, and the temporary file the kill leaves is deleted by the next load), and a training run killed
/// mid-epoch, resumed in this process, equal bit for bit to an uninterrupted run.
/// </summary>
[Collection(TorchGlobalStateCollection.Name)]
public sealed class KillDuringSaveTests
{
    /// <summary>Reads a child's stdout on a thread; <see cref="WaitFor"/> blocks until a line satisfies a test.</summary>
    sealed class Lines
    {
        readonly List<string> _lines = new();
        public Lines(Process p) => _ = Task.Run(() => { string? l; while ((l = p.StandardOutput.ReadLine()) is not null) lock (_lines) { _lines.Add(l); Monitor.PulseAll(_lines); } });

        public bool WaitFor(Func<string, bool> test, TimeSpan limit)
        {
            var until = DateTime.UtcNow + limit;
            lock (_lines)
                while (true)
                {
                    if (_lines.Any(test)) return true;
                    var left = until - DateTime.UtcNow;
                    if (left <= TimeSpan.Zero || !Monitor.Wait(_lines, left)) return _lines.Any(test);
                }
        }

        public override string ToString() { lock (_lines) return string.Join("\n", _lines.TakeLast(20)); }
    }

    static void Kill(Process p)
    {
        p.Kill(entireProcessTree: true); // SIGKILL on Unix: no finally blocks, no flush
        p.WaitForExit();
    }

    [Fact]
    public void KillDuringSaveLeavesALoadableCheckpointAndTheOrphanIsCleanedUp()
    {
        var folder = Hostile.Folder("kill");
        var path = Path.Combine(folder, "loop.safetensors");
        var random = new Random(14);
        int kills = 0, orphansSeen = 0;
        // Kill until at least two kills landed mid-write (a temporary file left behind), up to 12 kills.
        while (kills < 12 && (kills < 4 || orphansSeen < 2))
        {
            using var child = ChildProcess.Start("save-loop", path);
            var lines = new Lines(child);
            var started = lines.WaitFor(l => l == "saved 2", TimeSpan.FromMinutes(1));
            if (!started) { Kill(child); Assert.Fail($"the child never saved:\n{lines}\n{child.StandardError.ReadToEnd()}"); }
            Thread.Sleep(random.Next(0, 40));
            Kill(child);
            kills++;

            var orphans = Directory.GetFiles(folder, "loop.safetensors.*.tmp");
            if (orphans.Length > 0) orphansSeen++;
            var model = new TinyMlp(1024, 1024, 2);
            var info = Checkpoint.Load(path, model, restoreRng: false); // must be a complete save ...
            foreach (var p in model.parameters())                           // ... and one single save: every weight = its step
                Assert.True(p.eq(info.Step).all().item<bool>(), $"kill {kills}: the checkpoint mixes saves (step {info.Step})");
            Assert.Empty(Directory.GetFiles(folder, "loop.safetensors.*.tmp")); // the load removed the orphan
        }
        Assert.True(orphansSeen >= 1, $"none of {kills} kills landed during a write, so atomicity was not exercised");
    }

    [Fact]
    public void RunKilledMidEpochResumesBitForBit()
    {
        var (train, val, data) = ReliabilityModels.Data();
        using var _ = data;

        // A: the uninterrupted run, here.
        torch.manual_seed(11);
        var modelA = new DropoutMlp(10, 32, 4);
        var historyA = ReliabilityModels.Trainer(modelA, 4, train.BatchCount).Fit(train, val);

        // B: the same run in a child process, killed with SIGKILL after epoch 2's checkpoint, in the middle of epoch 3.
        var path = Path.Combine(Hostile.Folder("resume"), "run.safetensors");
        using (var child = ChildProcess.Start("train", path, "40"))
        {
            var lines = new Lines(child);
            bool reached = lines.WaitFor(l => l == "epoch-end 1", TimeSpan.FromMinutes(2));
            Thread.Sleep(100); // into epoch 3
            Kill(child);
            Assert.True(reached, $"the child never finished epoch 2:\n{lines}");
            Assert.False(lines.WaitFor(l => l == "finished", TimeSpan.Zero), "the child finished before it was killed");
        }

        // C: a fresh model (other initial weights) resumed from what the killed process left.
        torch.manual_seed(12345);
        var modelC = new DropoutMlp(10, 32, 4);
        var c = ReliabilityModels.Trainer(modelC, 4, train.BatchCount);
        var info = c.LoadCheckpoint(path);
        Assert.InRange(info.Epoch, 2, 3);
        var historyC = c.Fit(train, val);

        Assert.Equal(historyA.Steps.Count, historyC.Steps.Count);
        for (int i = 0; i < historyA.Steps.Count; i++)
        {
            Assert.Equal(historyA.Steps[i].Loss, historyC.Steps[i].Loss);
            Assert.Equal(historyA.Steps[i].LearningRate, historyC.Steps[i].LearningRate);
            Assert.Equal(historyA.Steps[i].GradNorm, historyC.Steps[i].GradNorm);
        }
        Assert.Equal(historyA.Column("val_loss"), historyC.Column("val_loss"));
        var wa = TrainingData.Bytes(modelA); var wc = TrainingData.Bytes(modelC);
        for (int i = 0; i < wa.Length; i++) Assert.True(wa[i].SequenceEqual(wc[i]), $"parameter {i} differs after the resume");
    }
}
