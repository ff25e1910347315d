using System.Buffers.Binary;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using TorchSharp;
using Workbook.Data;
using Workbook.Gpt;
using Workbook.IO;
using Workbook.Tests.Training;
using Workbook.Training;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace Workbook.Tests.Reliability;

/// <summary>
/// A bounded, seeded mutation fuzz of the three loaders that read files a reader may get from anywhere:
/// <see cref="SafeTensors.Load"/>, <see cref="GptCheckpoint.Load"/> and <see cref="Trainer.LoadCheckpoint"/>.
/// Each case applies one to three mutations (bit flips, interesting bytes, truncation, insertion, deletion, a new
/// header length, copied slices, numbers swapped inside the JSON header) to a small valid file and loads it. Allowed
/// outcomes: it loads, or the loader's own exception (<see cref="InvalidDataException"/>, <see cref="CheckpointException"/>)
/// naming the file. Anything else, a case slower than the per-case bound, or a failed Trainer load that changed the
/// model, optimizer or RNG fails the test, which names the case and keeps the input for a replay.
/// <para>
/// CI runs 2,000 cases (seed 14). A longer run: <c>WORKBOOK_FUZZ_MUTATIONS=30000 dotnet test -c Release --filter
/// FullyQualifiedName~LoaderFuzzTests</c> (optionally <c>WORKBOOK_FUZZ_SEED</c>, and <c>WORKBOOK_FUZZ_REPORT=file</c> for the
/// outcome counts); see tests/Workbook.Tests/Reliability/README.md.
/// </para>
/// </summary>
[Collection(TorchGlobalStateCollection.Name)]
public sealed class LoaderFuzzTests
{
    readonly ITestOutputHelper _output;
    public LoaderFuzzTests(ITestOutputHelper output) => _output = output;

    static int Env(string name, int fallback) =>
        int.TryParse(Environment.GetEnvironmentVariable(name), NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) && v > 0 ? v : fallback;

    static readonly TimeSpan PerCase = TimeSpan.FromSeconds(10);

    /// <summary>One loader under test: where its valid input is, and how to load a mutated copy.</summary>
    sealed class Target
    {
        public required string Name { get; init; }
        public required byte[] Valid { get; init; }
        public required string Path { get; init; }            // where the mutated bytes go
        public required Action Load { get; init; }            // loads Path
        public required Type[] Allowed { get; init; }
        public Func<object>? Before { get; init; }            // state snapshot before a load (Trainer)
        public Action<object>? AssertUnchanged { get; init; } // after a failed load
        public byte[]? Config { get; init; }                  // GPT: the valid config.json, mutated sometimes instead
        public string? ConfigPath { get; init; }
    }

    [Fact]
    public async Task MutatedFilesGiveOnlyLibraryErrors()
    {
        int total = Env("WORKBOOK_FUZZ_MUTATIONS", 2000), seed = Env("WORKBOOK_FUZZ_SEED", 14);
        var dir = Hostile.Folder("fuzz");
        var targets = new[] { SafeTensorsTarget(dir), GptTarget(dir), TrainerTarget(dir) };
        var random = new Random(seed);
        var counts = targets.ToDictionary(t => t.Name, _ => new SortedDictionary<string, int>(StringComparer.Ordinal));
        var reasons = new SortedDictionary<string, int>(StringComparer.Ordinal);
        var otherExamples = new List<string>();
        var slowest = TimeSpan.Zero;
        var clock = Stopwatch.StartNew();
        for (int i = 0; i < total; i++)
        {
            var target = targets[i % targets.Length];
            bool config = target.Config is not null && random.NextDouble() < 0.15;
            var input = Mutate(config ? target.Config! : target.Valid, random, config ? 0 : HeaderEnd(target.Valid));
            File.WriteAllBytes(config ? target.ConfigPath! : target.Path, input);
            if (target.Config is not null) File.WriteAllBytes(config ? target.Path : target.ConfigPath!, config ? target.Valid : target.Config);
            var state = target.Before?.Invoke();
            Exception? error = null;
            var started = Stopwatch.StartNew();
            var run = Task.Run(() => { try { target.Load(); } catch (Exception e) { error = e; } });
            try { await run.WaitAsync(PerCase); }
            catch (TimeoutException) { Fail(dir, i, target, input, $"hung for more than {PerCase.TotalSeconds} s"); }
            slowest = started.Elapsed > slowest ? started.Elapsed : slowest;
            string outcome;
            if (error is null) outcome = "loaded";
            else
            {
                outcome = error.GetType().Name;
                if (!target.Allowed.Any(t => t.IsInstanceOfType(error)))
                    Fail(dir, i, target, input, $"threw {error.GetType().FullName}: {error.Message}\n{error.StackTrace}");
                var named = config ? target.ConfigPath! : target.Path;
                if (!error.Message.Contains(named, StringComparison.Ordinal) && !error.Message.Contains(System.IO.Path.GetDirectoryName(named)!, StringComparison.Ordinal))
                    Fail(dir, i, target, input, $"the error does not name the file: {error.Message}");
                if (state is not null) target.AssertUnchanged!(state);
            }
            counts[target.Name][outcome] = counts[target.Name].GetValueOrDefault(outcome) + 1;
            if (error is not null)
            {
                var reason = Reason(error.Message);
                reasons[reason] = reasons.GetValueOrDefault(reason) + 1;
                if (reason == "other" && otherExamples.Count < 3) otherExamples.Add(string.Join(" | ", error.Message.Split('\n').Take(3)).Trim());
            }
        }

        var report = new StringBuilder($"Loader fuzz: {total} mutations, seed {seed}, {clock.Elapsed.TotalSeconds:F1} s, slowest case {slowest.TotalMilliseconds:F0} ms\n");
        foreach (var (name, byOutcome) in counts)
            report.Append($"  {name}: ").AppendJoin(", ", byOutcome.Select(kv => $"{kv.Key} {kv.Value}")).Append('\n');
        report.Append("  errors by what they report: ").AppendJoin(", ", reasons.OrderByDescending(kv => kv.Value).Select(kv => $"{kv.Key} {kv.Value}")).Append('\n');
        foreach (var example in otherExamples) report.Append("  e.g. other: ").Append(example).Append('\n');
        _output.WriteLine(report.ToString());
        if (Environment.GetEnvironmentVariable("WORKBOOK_FUZZ_REPORT") is { Length: > 0 } file) File.WriteAllText(file, report.ToString());
        // The fuzz must reach the loaders' checks, not only fail at the first byte: every target sees failures and successes.
        foreach (var (name, byOutcome) in counts)
        {
            Assert.True(byOutcome.GetValueOrDefault("loaded") > 0, $"{name}: no mutated file loaded ({report})");
            Assert.True(byOutcome.Where(kv => kv.Key != "loaded").Sum(kv => kv.Value) > 0, $"{name}: no mutated file was rejected ({report})");
        }
    }

    /// <summary>A coarse label of an error message, for the report: the first of these phrases it contains.</summary>
    static string Reason(string message) => new[]
    {
        "truncated", "not a safetensors file", "not JSON", "invalid UTF-8", "expected a JSON object", "appears twice", "__metadata__",
        "malformed", "invalid data_offsets", "unsupported dtype", "negative dimension", "64 bits", "needs", "overlaps", "gap before", "trailing byte",
        "not a Workbook checkpoint", "rng.cpu", "does not match", "does not fit", "metadata", "history", "is not a supported GPT-2 config",
        "is not valid JSON", "expected an integer", "must be", "lm_head",
    }.FirstOrDefault(p => message.Contains(p, StringComparison.Ordinal)) ?? "other";

    static void Fail(string dir, int i, Target target, byte[] input, string what)
    {
        var keep = System.IO.Path.Combine(dir, $"case-{i}-{target.Name}.bin");
        File.WriteAllBytes(keep, input);
        Assert.Fail($"fuzz case {i} ({target.Name}) {what}\nthe input is kept at {keep}");
    }

    /// <summary>The end of the 8-byte length and the JSON header, where most mutations go.</summary>
    static int HeaderEnd(byte[] file) => (int)Math.Min(file.Length, 8 + (long)BinaryPrimitives.ReadUInt64LittleEndian(file));

    static readonly byte[] Interesting = [0x00, 0xFF, 0x7F, 0x80, (byte)'"', (byte)'{', (byte)'}', (byte)'[', (byte)']', (byte)',', (byte)':',
        (byte)'-', (byte)'0', (byte)'1', (byte)'9', (byte)'e', (byte)'.', (byte)' ', (byte)'\\', 0xC3];

    static readonly string[] Numbers = ["-1", "0", "1", "2", "7", "255", "5056", "65535", "2147483647", "2147483648", "-2147483649",
        "4611686018427387905", "9223372036854775807", "18446744073709551615", "1e12", "2.5", "-0", "null", "\"x\"", "[]", "{}"];

    static byte[] Mutate(byte[] valid, Random r, int headerEnd)
    {
        var b = new List<byte>(valid);
        int Pos() => b.Count == 0 ? 0 : headerEnd > 8 && r.NextDouble() < 0.7 ? r.Next(0, Math.Min(headerEnd, b.Count)) : r.Next(0, b.Count);
        int mutations = 1 + r.Next(3);
        for (int m = 0; m < mutations && b.Count > 0; m++)
        {
            switch (r.Next(8))
            {
                case 0: { int p = Pos(); b[p] ^= (byte)(1 << r.Next(r.NextDouble() < 0.75 ? 7 : 8)); break; } // mostly ASCII-preserving flips

                case 1: { b[Pos()] = Interesting[r.Next(Interesting.Length)]; break; }
                case 2: { int cut = r.Next(b.Count); b.RemoveRange(cut, b.Count - cut); break; }
                case 3:
                    {
                        var extra = new byte[1 + r.Next(16)];
                        r.NextBytes(extra);
                        if (r.NextDouble() < 0.75) for (int k = 0; k < extra.Length; k++) extra[k] = (byte)"{}[]\",:-0123456789.eE abc_ntrufl"[extra[k] % 32];
                        b.InsertRange(Pos(), extra);
                        break;
                    }
                case 4: { int p = Pos(); b.RemoveRange(p, Math.Min(b.Count - p, 1 + r.Next(16))); break; }
                case 5:
                    if (b.Count >= 8)
                    {
                        ulong n = BinaryPrimitives.ReadUInt64LittleEndian(b.GetRange(0, 8).ToArray());
                        ulong[] choices = [0, n - 1, n + 1, n + 8, (ulong)b.Count, ulong.MaxValue, 1UL << 40, (ulong)r.Next()];
                        var bytes = new byte[8];
                        BinaryPrimitives.WriteUInt64LittleEndian(bytes, choices[r.Next(choices.Length)]);
                        for (int k = 0; k < 8; k++) b[k] = bytes[k];
                    }
                    break;
                case 6: { int from = r.Next(b.Count), len = Math.Min(b.Count - from, 1 + r.Next(32)); var slice = b.GetRange(from, len); int to = Pos(); for (int k = 0; k < len && to + k < b.Count; k++) b[to + k] = slice[k]; break; }
                case 7:
                    {
                        // Swap a number in the JSON for an interesting one: sizes, offsets, shapes, metadata values.
                        int limit = Math.Min(headerEnd > 8 ? headerEnd : b.Count, b.Count);
                        var digits = Enumerable.Range(0, limit).Where(k => b[k] is >= (byte)'0' and <= (byte)'9' && (k == 0 || b[k - 1] is < (byte)'0' or > (byte)'9')).ToList();
                        if (digits.Count == 0) break;
                        int at = digits[r.Next(digits.Count)], end = at;
                        while (end < b.Count && b[end] is >= (byte)'0' and <= (byte)'9') end++;
                        b.RemoveRange(at, end - at);
                        var number = Encoding.ASCII.GetBytes(Numbers[r.Next(Numbers.Length)]);
                        b.InsertRange(at, number);
                        // Half the time the header length follows the new width (a well-framed header with a hostile
                        // value); otherwise it is left as it was, and so is wrong on purpose.
                        if (headerEnd > 8 && r.Next(2) == 0)
                        {
                            var len = new byte[8];
                            BinaryPrimitives.WriteUInt64LittleEndian(len, (ulong)(headerEnd - 8 + number.Length - (end - at)));
                            for (int k = 0; k < 8; k++) b[k] = len[k];
                            headerEnd += number.Length - (end - at);
                        }
                        break;
                    }
            }
        }
        return b.ToArray();
    }

    static Target SafeTensorsTarget(string dir)
    {
        var path = System.IO.Path.Combine(dir, "plain.safetensors");
        torch.manual_seed(2); // the same valid file in every run, so a seed replays the same cases
        using (var scope = torch.NewDisposeScope())
            SafeTensors.Save(path, new Dictionary<string, Tensor>
            {
                ["f32"] = torch.randn(3, 4), ["f16"] = torch.randn(5).to(float16), ["i64"] = torch.arange(3), ["u8"] = torch.arange(7).to(uint8),
                ["bool"] = torch.tensor(new[] { true, false }), ["scalar"] = torch.tensor(2.5f), ["empty"] = torch.zeros(0, 3),
            }, new Dictionary<string, string> { ["format"] = "pt", ["note"] = "fuzz" });
        var valid = File.ReadAllBytes(path);
        return new Target
        {
            Name = "SafeTensors.Load", Valid = valid, Path = path, Allowed = [typeof(InvalidDataException)],
            Load = () => { foreach (var t in SafeTensors.Load(path).Values) t.Dispose(); },
        };
    }

    static Target GptTarget(string dir)
    {
        var source = Directory.CreateDirectory(System.IO.Path.Combine(dir, "gpt-source")).FullName;
        torch.manual_seed(3);
        using (var model = new GptModel(new GptConfig { VocabSize = 16, MaxLength = 8, DModel = 8, NumLayers = 1, NumHeads = 2, EosTokenId = 15 }))
            GptCheckpoint.Save(model, source);
        var folder = Directory.CreateDirectory(System.IO.Path.Combine(dir, "gpt")).FullName;
        return new Target
        {
            Name = "GptCheckpoint.Load", Valid = File.ReadAllBytes(System.IO.Path.Combine(source, GptCheckpoint.WeightsFile)),
            Config = File.ReadAllBytes(System.IO.Path.Combine(source, GptCheckpoint.ConfigFile)),
            Path = System.IO.Path.Combine(folder, GptCheckpoint.WeightsFile), ConfigPath = System.IO.Path.Combine(folder, GptCheckpoint.ConfigFile),
            Allowed = [typeof(InvalidDataException)],
            Load = () => GptCheckpoint.Load(folder).Dispose(),
        };
    }

    static Target TrainerTarget(string dir)
    {
        var data = TrainingData.Classification(40, 4, 3, seed: 1);
        var loader = new BatchLoader(data, 8, shuffle: true, seed: 2);
        Trainer Make(int seed)
        {
            torch.manual_seed(seed);
            var model = new DropoutMlp(4, 6, 3);
            return new Trainer(model, Optimizers.AdamW(model.parameters(), lr: 1e-2), Losses.CrossEntropy)
            { Epochs = 2, EarlyStopping = new EarlyStopping("train_loss", Patience: 5), Seed = seed };
        }
        var path = System.IO.Path.Combine(dir, "trainer.safetensors");
        var writer = Make(1);
        writer.Fit(loader);
        writer.SaveCheckpoint(path);
        var valid = File.ReadAllBytes(path);
        var trainer = Make(2);
        trainer.Fit(loader); // has weights, optimizer state and a history of its own
        return new Target
        {
            Name = "Trainer.LoadCheckpoint", Valid = valid, Path = path, Allowed = [typeof(CheckpointException)],
            Load = () => trainer.LoadCheckpoint(path),
            Before = () => (Hostile.Snapshot(trainer.Model, trainer.Optimizer), trainer.Step, trainer.History.ToJson()),
            AssertUnchanged = before =>
            {
                var (snapshot, step, history) = ((List<byte[]>, long, string))before;
                Hostile.AssertSame(snapshot, Hostile.Snapshot(trainer.Model, trainer.Optimizer), "Trainer.LoadCheckpoint failed but changed state");
                Assert.Equal(step, trainer.Step);
                Assert.Equal(history, trainer.History.ToJson());
            },
        };
    }
}
