using System.Buffers.Binary;
using System.Text;
using TorchSharp;
using Workbook.IO;
using Workbook.Tests.Training;
using Workbook.Training;
using static TorchSharp.torch;

namespace Workbook.Tests.Reliability;

/// <summary>
/// Findings 1 to 3 of issue 14: a corrupt RNG state must not kill the process, a failed load must change nothing
/// (and fail at load time, not after Fit), and interrupted saves must not leave temporary files behind for ever.
/// </summary>
[Collection(TorchGlobalStateCollection.Name)]
public sealed class TrainerCheckpointReliabilityTests : IClassFixture<TrainerCheckpointReliabilityTests.RngChild>
{
    readonly RngChild _rng;

    public TrainerCheckpointReliabilityTests(RngChild rng) => _rng = rng;

    // ---- Finding 1: the RNG state is checked in C# before libtorch sees it ----

    /// <summary>
    /// Writes one checkpoint per corruption of <c>rng.cpu</c> and loads them in a child process (a libtorch abort
    /// there ends the child, not the test run; the child is restarted for the remaining cases); each test then reads
    /// its case's outcome.
    /// </summary>
    public sealed class RngChild
    {
        public Dictionary<string, (string Result, string? Message, string? State)> Outcomes { get; } = new();
        public string Output { get; }
        public int ExitCode { get; private set; }  // the worst exit code of the child runs

        static readonly (string Name, Func<byte[], Tensor> Corrupt)[] Cases =
        [
            ("left-bit-flip", s => { s[9] ^= 0x80; return torch.tensor(s); }),          // the byte 9: 'left' out of [1, 624]
            ("left-in-range", s => { s[8] ^= 0x02; return torch.tensor(s); }),          // 'left' still in range: breaks left + next = 625
            ("u8-10", s => torch.tensor(s[..10])),                                       // U8[10]
            ("f32", s => torch.tensor(new float[s.Length / 4])),                         // stored as F32
            ("other-libtorch", s => torch.tensor(s[..5048])),                            // the legacy 5,048-byte layout of older libtorch
            ("not-seeded", s => { s[12] = 0; return torch.tensor(s); }),                 // 'seeded' = 0
        ];

        public RngChild()
        {
            var folder = Hostile.Folder("rng");
            var good = Path.Combine(folder, "good.safetensors");
            ReliabilityModels.WriteCheckpoint(good);
            var files = new List<string>();
            foreach (var (name, corrupt) in Cases)
            {
                var file = Path.Combine(folder, name + ".safetensors");
                File.Copy(good, file);
                Hostile.Rewrite(file, (tensors, _) =>
                {
                    var state = tensors["rng.cpu"].bytes.ToArray();
                    tensors["rng.cpu"].Dispose();
                    tensors["rng.cpu"] = corrupt(state);
                });
                files.Add(file);
            }
            // A case that kills the child is recorded as "died"; the child is restarted for the cases after it.
            var output = new StringBuilder();
            while (files.Count > 0)
            {
                using var child = ChildProcess.Start(["rng-load", .. files]);
                var stderr = child.StandardError.ReadToEndAsync();
                var stdout = child.StandardOutput.ReadToEndAsync();
                if (!child.WaitForExit(TimeSpan.FromMinutes(2))) { child.Kill(entireProcessTree: true); child.WaitForExit(); }
                output.Append(stdout.Result).Append(stderr.Result);
                ExitCode = Math.Max(ExitCode, child.ExitCode);
                string? current = null;
                foreach (var line in stdout.Result.Split('\n').Select(l => l.TrimEnd('\r')))
                {
                    if (line.StartsWith("CASE ", StringComparison.Ordinal)) { current = Path.GetFileNameWithoutExtension(line[5..]); Outcomes[current] = ("died", null, null); }
                    else if (line.StartsWith("RESULT ", StringComparison.Ordinal) && current is not null)
                    {
                        var parts = line[7..].Split(' ', 2);
                        Outcomes[current] = (parts[0], parts.Length > 1 ? Encoding.UTF8.GetString(Convert.FromBase64String(parts[1])) : null, null);
                    }
                    else if (line.StartsWith("STATE ", StringComparison.Ordinal) && current is not null)
                        Outcomes[current] = Outcomes[current] with { State = line[6..] };
                }
                int done = files.FindIndex(f => Path.GetFileNameWithoutExtension(f) == current);
                if (done < 0) break; // the child did not even start a case: give up, the tests report it
                files.RemoveRange(0, done + 1);
            }
            Output = output.ToString();
        }
    }

    [Theory]
    [InlineData("left-bit-flip", "'left' counter (byte 8) is", "expected 1 to 624")]
    [InlineData("left-in-range", "position is inconsistent", "expected 625")]
    [InlineData("u8-10", "rng.cpu is U8 [10]", "U8 [5056]")]
    [InlineData("f32", "rng.cpu is F32 [1264]", "U8 [5056]")]
    [InlineData("other-libtorch", "rng.cpu is U8 [5048]", "U8 [5056]")]
    [InlineData("not-seeded", "'seeded' flag (byte 12) is 0", "expected 1")]
    public void CorruptRngStateIsALibraryErrorAndTheProcessLives(string name, string actual, string expected)
    {
        Assert.True(_rng.Outcomes.TryGetValue(name, out var outcome), $"the child never reached case {name}; exit code {_rng.ExitCode}:\n{Tail(_rng.Output)}");
        Assert.True(outcome.Result != "died", $"case {name} killed the process (exit code {_rng.ExitCode}):\n{Tail(_rng.Output)}");
        Assert.Equal(typeof(CheckpointException).FullName, outcome.Result);
        Assert.Contains("rng.cpu", outcome.Message);
        Assert.Contains(actual, outcome.Message);
        Assert.Contains(expected, outcome.Message);
        Assert.Contains(".safetensors", outcome.Message); // the path
        Assert.Equal("unchanged", outcome.State);
    }

    static string Tail(string s) => s.Length > 3000 ? s[^3000..] : s;

    // ---- Finding 2: validate everything, then apply ----

    static string GoodCheckpoint()
    {
        var path = Path.Combine(Hostile.Folder("ckpt"), "run.safetensors");
        ReliabilityModels.WriteCheckpoint(path);
        return path;
    }

    /// <summary>Loads <paramref name="path"/> into a trainer with state of its own and asserts the load fails clearly and changes nothing.</summary>
    static CheckpointException FailsAndChangesNothing(string path, params string[] mustMention)
    {
        var trainer = ReliabilityModels.Fresh();
        var before = Hostile.Snapshot(trainer.Model, trainer.Optimizer);
        var (epoch, step, history) = (trainer.Epoch, trainer.Step, trainer.History.ToJson());
        var e = Hostile.Throws<CheckpointException>(() => trainer.LoadCheckpoint(path), [path, .. mustMention]);
        Hostile.AssertSame(before, Hostile.Snapshot(trainer.Model, trainer.Optimizer), "after a failed load");
        Assert.Equal((epoch, step, history), (trainer.Epoch, trainer.Step, trainer.History.ToJson()));
        return e;
    }

    static void EditMetadata(string path, string key, string value) => Hostile.Rewrite(path, (_, meta) => meta[key] = value);

    [Fact]
    public void EpochThatIsNotANumber()
    {
        var path = GoodCheckpoint();
        EditMetadata(path, "epoch", "abc");
        FailsAndChangesNothing(path, "'epoch'", "'abc'", "integer");
    }

    [Fact]
    public void EpochThatDisagreesWithTheHistory()
    {
        var path = GoodCheckpoint();
        EditMetadata(path, "epoch", "5");
        FailsAndChangesNothing(path, "metadata says epoch 5 but the history has 2 epochs");
    }

    [Fact]
    public void CorruptHistory()
    {
        var path = GoodCheckpoint();
        EditMetadata(path, "history", """{"Steps": null, "Epochs": []}""");
        FailsAndChangesNothing(path, "training history", "corrupt");
        EditMetadata(path, "history", "[1, 2");
        FailsAndChangesNothing(path, "training history", "corrupt");
    }

    [Fact]
    public void EarlyStoppingStateThatIsNotJson()
    {
        var path = GoodCheckpoint();
        EditMetadata(path, "trainer.early_stopping", "{bad json");
        FailsAndChangesNothing(path, "metadata 'trainer.early_stopping' is '{bad json'");
    }

    [Fact]
    public void LearningRateThatIsNotANumber()
    {
        var path = GoodCheckpoint();
        EditMetadata(path, "optimizer.lr", "fast");
        FailsAndChangesNothing(path, "metadata 'optimizer.lr' is 'fast'", "finite rate");
    }

    [Fact]
    public void OptimizerStepOfTheWrongDtype()
    {
        var path = GoodCheckpoint();
        Hostile.Rewrite(path, (t, _) => { t["optimizer.fc1.weight.step"].Dispose(); t["optimizer.fc1.weight.step"] = torch.tensor(7.0f); });
        FailsAndChangesNothing(path, "optimizer.fc1.weight.step is [] Float32", "Int64 scalar []");
    }

    [Fact]
    public void OptimizerStepOfTheWrongShape()
    {
        var path = GoodCheckpoint();
        Hostile.Rewrite(path, (t, _) => { t["optimizer.fc1.weight.step"].Dispose(); t["optimizer.fc1.weight.step"] = torch.tensor(new long[] { 7, 7 }); });
        FailsAndChangesNothing(path, "optimizer.fc1.weight.step is [2] Int64", "Int64 scalar []");
    }

    [Fact]
    public void MissingBestWeightsFailAtLoadNotAfterFit()
    {
        var path = GoodCheckpoint();
        Hostile.Rewrite(path, (t, _) => { t["extra.best.fc1.weight"].Dispose(); t.Remove("extra.best.fc1.weight"); });
        FailsAndChangesNothing(path, "missing extra.best.fc1.weight [32, 10]");
    }

    [Fact]
    public void MisshapenBestWeightsFailAtLoadNotAfterFit()
    {
        var path = GoodCheckpoint();
        Hostile.Rewrite(path, (t, _) => { t["extra.best.fc2.bias"].Dispose(); t["extra.best.fc2.bias"] = torch.zeros(5); });
        FailsAndChangesNothing(path, "extra.best.fc2.bias is [5] Float32 in the checkpoint but [4] Float32 in the model");
    }

    [Fact]
    public void AGoodCheckpointStillLoadsAndResumes()
    {
        var path = GoodCheckpoint();
        var trainer = ReliabilityModels.Fresh();
        var info = trainer.LoadCheckpoint(path);
        Assert.Equal(2, info.Epoch);
        Assert.Equal(2, trainer.Epoch);
        Assert.Equal(info.Step, trainer.Step);
    }

    // ---- Finding 3: orphaned temporary files ----

    [Fact]
    public void OrphanedTemporaryFilesAreDeletedOnTheNextSaveAndLoad()
    {
        var path = GoodCheckpoint();
        var folder = Path.GetDirectoryName(path)!;
        string Tmp(int pid) { var f = $"{path}.{pid}.{Guid.NewGuid():N}.tmp"; File.WriteAllBytes(f, new byte[1000]); return f; }
        using var live = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("sleep", "60") { UseShellExecute = false })!;
        try
        {
            var dead = Tmp(Hostile.DeadPid());
            var ours = Tmp(Environment.ProcessId);      // this process, but no save of it is running: an orphan of an earlier kill
            var running = Tmp(live.Id);                  // a live process that may be saving right now: left alone
            var unrelated = Path.Combine(folder, "notes.tmp");
            File.WriteAllText(unrelated, "not ours");

            var trainer = ReliabilityModels.Fresh();
            trainer.SaveCheckpoint(path);
            Assert.False(File.Exists(dead), "a dead process's temporary file survived the next save");
            Assert.False(File.Exists(ours));
            Assert.True(File.Exists(running), "a live process's temporary file was deleted");
            Assert.True(File.Exists(unrelated));

            var again = Tmp(Hostile.DeadPid());
            trainer.LoadCheckpoint(path);
            Assert.False(File.Exists(again), "a dead process's temporary file survived the next load");
            Assert.Single(Directory.GetFiles(folder, "*.tmp"), f => f != unrelated);
        }
        finally
        {
            live.Kill();
            live.WaitForExit();
        }
    }
}
