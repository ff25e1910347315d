using System.Buffers.Binary;
using System.Globalization;
using TorchSharp;
using Workbook.IO;
using static TorchSharp.torch;

namespace Workbook.Training;

/// <summary>A checkpoint that cannot be used: corrupt, truncated, not a checkpoint, or not matching the model/optimizer.</summary>
public sealed class CheckpointException : IOException
{
    /// <summary>Creates the exception.</summary>
    public CheckpointException(string message, Exception? inner = null) : base(message, inner) { }

    /// <summary>The individual problems (missing, unexpected or mis-shaped tensors), when the file itself was readable.</summary>
    public IReadOnlyList<string> Problems { get; init; } = Array.Empty<string>();
}

/// <summary>What <see cref="Checkpoint.Load"/> restored besides the tensors.</summary>
/// <param name="Path">The file.</param>
/// <param name="Epoch">Completed epochs at save time.</param>
/// <param name="Step">Optimizer steps done at save time.</param>
/// <param name="Seed">The run's seed.</param>
/// <param name="History">The training history up to the save.</param>
/// <param name="Metadata">All metadata strings (including any extra ones given to Save).</param>
public sealed record CheckpointInfo(string Path, int Epoch, long Step, int Seed, TrainingHistory History, IReadOnlyDictionary<string, string> Metadata);

/// <summary>
/// Training checkpoints as one safetensors file (<see cref="SafeTensors"/>, written atomically: a temporary file
/// renamed into place, so a crash during a save leaves the previous checkpoint intact). Contents:
/// <list type="bullet">
/// <item><c>model.NAME</c>: every entry of the model's <c>state_dict()</c> (parameters and buffers), bit-exact;</item>
/// <item><c>optimizer.PARAM.FIELD</c>: the optimizer state (<see cref="Optimizers.ExportState"/>);</item>
/// <item><c>rng.cpu</c>: torch's CPU generator state, so dropout continues with the same random numbers;</item>
/// <item><c>extra.NAME</c>: any extra tensors (the <see cref="Trainer"/> keeps early stopping's best weights there);</item>
/// <item>metadata: format, epoch, step, seed, the training history as JSON, the optimizer type and learning rates.</item>
/// </list>
/// Loading checks everything before changing anything: a corrupt or truncated file, a file that is not a checkpoint,
/// missing, unexpected or mis-shaped tensors (model and optimizer), metadata that does not parse, and an RNG state
/// that is not a valid state of torch's CPU generator all raise a <see cref="CheckpointException"/> that lists them
/// by name with what was expected and found, and the model, optimizer and RNG are left untouched.
/// </summary>
public static class Checkpoint
{
    /// <summary>The <c>format</c> metadata value of files written here.</summary>
    public const string Format = "workbook-checkpoint/1";

    /// <summary>Saves a checkpoint (atomically).</summary>
    /// <param name="path">The file, conventionally <c>*.safetensors</c>; folders are created.</param>
    /// <param name="model">The model.</param>
    /// <param name="optimizer">The optimizer (SGD, Adam, AdamW), or null.</param>
    /// <param name="epoch">Completed epochs.</param>
    /// <param name="step">Optimizer steps done.</param>
    /// <param name="seed">The run's seed (default: <see cref="Notebook.Seed"/>).</param>
    /// <param name="history">The training history so far.</param>
    /// <param name="metadata">Extra metadata strings.</param>
    /// <param name="extraTensors">Extra tensors, stored as <c>extra.NAME</c>.</param>
    public static void Save(string path, torch.nn.Module model, torch.optim.Optimizer? optimizer = null, int epoch = 0, long step = 0,
        int? seed = null, TrainingHistory? history = null, IReadOnlyDictionary<string, string>? metadata = null,
        IReadOnlyDictionary<string, Tensor>? extraTensors = null)
    {
        using var scope = torch.NewDisposeScope();
        var tensors = new List<KeyValuePair<string, Tensor>>();
        foreach (var (name, t) in model.state_dict()) tensors.Add(new("model." + name, t));
        var meta = new Dictionary<string, string>
        {
            ["format"] = Format,
            ["epoch"] = epoch.ToString(CultureInfo.InvariantCulture),
            ["step"] = step.ToString(CultureInfo.InvariantCulture),
            ["seed"] = (seed ?? Notebook.Seed).ToString(CultureInfo.InvariantCulture),
            ["history"] = (history ?? new TrainingHistory()).ToJson(),
            ["saved_utc"] = DateTime.UtcNow.ToString("O", CultureInfo.InvariantCulture),
        };
        if (optimizer is not null)
        {
            var (state, optMeta) = Optimizers.ExportState(optimizer, model);
            tensors.AddRange(state);
            foreach (var (k, v) in optMeta) meta[k] = v;
        }
        tensors.Add(new("rng.cpu", torch.get_rng_state()));
        if (extraTensors is not null)
            foreach (var (k, v) in extraTensors) tensors.Add(new("extra." + k, v));
        if (metadata is not null)
            foreach (var (k, v) in metadata)
            {
                if (meta.ContainsKey(k)) throw new ArgumentException($"Metadata key '{k}' is reserved by the checkpoint format.", nameof(metadata));
                meta[k] = v;
            }
        SafeTensors.Save(path, tensors, meta);
    }

    /// <summary>
    /// Loads a checkpoint into <paramref name="model"/> (and <paramref name="optimizer"/>), after checking that every
    /// tensor is present with the right shape and dtype, that the metadata parses (epoch, step, seed, history, learning
    /// rates) and that the RNG state is a valid state of torch's CPU generator; restores that state unless told not to.
    /// Nothing is changed unless the whole checkpoint is valid. Orphaned temporary files of interrupted saves of
    /// <paramref name="path"/> are deleted first (<see cref="SafeTensors.DeleteOrphanedTemporaryFiles"/>).
    /// </summary>
    /// <param name="path">The file.</param>
    /// <param name="model">The model, built with the same architecture.</param>
    /// <param name="optimizer">The optimizer to restore (same type as saved), or null to skip optimizer state.</param>
    /// <param name="restoreRng">Restore torch's CPU random generator (needed for an exact resume with dropout).</param>
    /// <param name="extraTensors">Receives the <c>extra.*</c> tensors (names without the prefix; the caller owns them); null drops them.</param>
    /// <exception cref="FileNotFoundException">No file at <paramref name="path"/>.</exception>
    /// <exception cref="CheckpointException">Corrupt, truncated, not a checkpoint, or mismatched; the message lists each problem.</exception>
    public static CheckpointInfo Load(string path, torch.nn.Module model, torch.optim.Optimizer? optimizer = null, bool restoreRng = true,
        Dictionary<string, Tensor>? extraTensors = null) => LoadValidated(path, model, optimizer, restoreRng, extraTensors, validate: null);

    /// <summary>
    /// <see cref="Load(string, torch.nn.Module, torch.optim.Optimizer?, bool, Dictionary{string, Tensor}?)"/> with a
    /// caller's own checks (<paramref name="validate"/> gets the parsed info and the <c>extra.*</c> tensors and returns
    /// its problems), run with all the others before anything is changed.
    /// </summary>
    internal static CheckpointInfo LoadValidated(string path, torch.nn.Module model, torch.optim.Optimizer? optimizer, bool restoreRng,
        Dictionary<string, Tensor>? extraTensors, Func<CheckpointInfo, IReadOnlyDictionary<string, Tensor>, IEnumerable<string>>? validate)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"Checkpoint not found: '{path}'.", path);
        SafeTensors.DeleteOrphanedTemporaryFiles(path);
        SafeTensorsHeader header;
        try { header = SafeTensors.ReadHeader(path); }
        catch (InvalidDataException e) { throw new CheckpointException($"Cannot load checkpoint: {e.Message}", e); }
        if (!header.Metadata.TryGetValue("format", out var format) || format != Format)
            throw new CheckpointException($"'{path}' is a safetensors file but not a Workbook checkpoint (format '{format ?? "none"}', expected " +
                $"'{Format}'). For plain weights use SafeTensors.Load and load_state_dict.");

        // 1. What the header alone tells: the model's tensors, the RNG state's dtype and size, the metadata.
        var problems = new List<string>();
        var modelState = model.state_dict();
        var inFile = header.Tensors.ToDictionary(t => t.Name);
        foreach (var (name, t) in modelState)
        {
            var key = "model." + name;
            if (!inFile.TryGetValue(key, out var info)) problems.Add($"missing {key} {Shape(t.shape)}");
            else if (!info.Shape.SequenceEqual(t.shape) || info.DType != SafeTensors.DTypeName(t.dtype))
                problems.Add($"{key} is {Shape(info.Shape)} {info.DType} in the checkpoint but {Shape(t.shape)} {SafeTensors.DTypeName(t.dtype)} in the model");
        }
        foreach (var info in header.Tensors.Where(t => t.Name.StartsWith("model.", StringComparison.Ordinal) && !modelState.ContainsKey(t.Name[6..])))
            problems.Add($"unexpected {info.Name} {Shape(info.Shape)} (the model has no such tensor)");
        if (problems.Count > 0) throw Mismatch(path, problems);
        if (restoreRng)
        {
            if (!inFile.TryGetValue("rng.cpu", out var rng)) problems.Add("missing rng.cpu (torch's RNG state)");
            else if (CpuRngState.CheckHeader(rng.DType, rng.Shape) is { } rngProblem) problems.Add(rngProblem);
        }
        var meta = header.Metadata;
        int epoch = (int)ParseInteger(meta, "epoch", 0, int.MaxValue, problems);
        long step = ParseInteger(meta, "step", 0, long.MaxValue, problems);
        int seed = (int)ParseInteger(meta, "seed", int.MinValue, int.MaxValue, problems);
        TrainingHistory history = new();
        if (meta.TryGetValue("history", out var h))
            try { history = TrainingHistory.FromJson(h); }
            catch (InvalidDataException e) { problems.Add($"the training history in the metadata is corrupt: {e.Message}"); }
        if (problems.Count > 0) throw Invalid(path, problems);

        // 2. The tensors themselves: optimizer state, RNG state content, the caller's checks (e.g. the Trainer's best weights).
        Dictionary<string, Tensor> tensors;
        try { tensors = SafeTensors.Load(path); }
        catch (InvalidDataException e) { throw new CheckpointException($"Cannot load checkpoint: {e.Message}", e); }
        try
        {
            if (optimizer is not null)
            {
                problems.AddRange(Optimizers.CheckState(optimizer, model, tensors, meta));
                if (problems.Count > 0) throw Mismatch(path, problems);
            }
            if (restoreRng && CpuRngState.Check(tensors["rng.cpu"].bytes) is { } rngProblem) problems.Add(rngProblem);
            var result = new CheckpointInfo(path, epoch, step, seed, history, meta);
            var extras = tensors.Where(kv => kv.Key.StartsWith("extra.", StringComparison.Ordinal)).ToDictionary(kv => kv.Key[6..], kv => kv.Value);
            if (validate is not null) problems.AddRange(validate(result, extras));
            if (problems.Count > 0) throw Invalid(path, problems);

            // 3. Everything checked: apply.
            using (torch.no_grad())
                foreach (var (name, t) in modelState) t.copy_(tensors["model." + name]);
            if (optimizer is not null) Optimizers.ImportState(optimizer, model, tensors, meta);
            if (restoreRng) torch.set_rng_state(tensors["rng.cpu"]);
            if (extraTensors is not null)
                foreach (var (k, v) in extras)
                {
                    extraTensors[k] = v;
                    tensors.Remove("extra." + k);
                }
            return result;
        }
        finally
        {
            foreach (var t in tensors.Values) t.Dispose();
        }
    }

    static CheckpointException Mismatch(string path, List<string> problems) =>
        new($"Checkpoint '{path}' does not match the model/optimizer ({problems.Count} problem{(problems.Count == 1 ? "" : "s")}):\n  " +
            string.Join("\n  ", problems)) { Problems = problems.ToArray() };

    static CheckpointException Invalid(string path, List<string> problems) =>
        new($"Checkpoint '{path}' is invalid ({problems.Count} problem{(problems.Count == 1 ? "" : "s")}); nothing was loaded:\n  " +
            string.Join("\n  ", problems)) { Problems = problems.ToArray() };

    static long ParseInteger(IReadOnlyDictionary<string, string> meta, string key, long min, long max, List<string> problems)
    {
        if (!meta.TryGetValue(key, out var v)) { problems.Add($"metadata '{key}' is missing (expected an integer in [{min}, {max}])"); return 0; }
        if (!long.TryParse(v, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var x) || x < min || x > max)
        {
            problems.Add($"metadata '{key}' is '{v}', expected an integer in [{min}, {max}]");
            return 0;
        }
        return x;
    }

    static string Shape(long[] shape) => "[" + string.Join(", ", shape) + "]";
}

/// <summary>
/// Checks the bytes of torch's CPU generator state before they reach libtorch, whose <c>set_rng_state</c> aborts the
/// whole process (a C++ exception through the native boundary) on a state of the wrong type or size or an invalid
/// mt19937 state. The layout is libtorch's <c>CPUGeneratorImplState</c> (<c>aten/src/ATen/CPUGeneratorImpl.cpp</c>),
/// 5,056 bytes in libtorch 2.x: the legacy POD <c>{ int64 the_initial_seed; int32 left; int32 seeded; uint64 next;
/// uint64 state[624]; double normal_x, normal_y, normal_rho; int32 normal_is_valid; }</c> (5,048 bytes with padding),
/// then <c>float next_float_normal_sample; bool is_next_float_normal_sample_valid;</c>. libtorch itself requires
/// seeded, 1 ≤ left ≤ 624 and next ≤ 624; the generator also keeps left + next = 625 once it has drawn (left 1, next 0
/// right after seeding), its state words are 32-bit values stored in 64-bit slots, and the flags are 0 or 1.
/// </summary>
static class CpuRngState
{
    /// <summary>Bytes of the state this library knows the layout of.</summary>
    public const int Size = 5056;

    const int N = 624, LeftAt = 8, SeededAt = 12, NextAt = 16, StateAt = 24, NormalValidAt = 5040, FloatNormalValidAt = 5052;

    /// <summary>Null when this process's libtorch uses the known layout, else why rng.cpu cannot be restored safely.</summary>
    static readonly Lazy<string?> RuntimeProblem = new(() =>
    {
        using var live = torch.get_rng_state();
        if (live.dtype != ScalarType.Byte || live.numel() != Size)
            return $"this libtorch's CPU generator state is {SafeTensors.DTypeName(live.dtype)} [{live.numel()}], a layout this library does not know " +
                $"(it knows U8 [{Size}]); restoring rng.cpu is not safe: load with restoreRng: false";
        return Check(live.bytes) is { } p ? $"this libtorch's own CPU generator state fails the layout check ({p}); load with restoreRng: false" : null;
    });

    /// <summary>What is wrong with an <c>rng.cpu</c> entry's dtype and shape (null if nothing).</summary>
    public static string? CheckHeader(string dtype, long[] shape)
    {
        if (RuntimeProblem.Value is { } runtime) return runtime;
        if (dtype != "U8" || shape.Length != 1 || shape[0] != Size)
            return $"rng.cpu is {dtype} [{string.Join(", ", shape)}] but torch's CPU generator state is U8 [{Size}] (from another libtorch, or corrupt)";
        return null;
    }

    /// <summary>What is wrong with the state bytes (null if they form a valid generator state).</summary>
    public static string? Check(ReadOnlySpan<byte> s)
    {
        if (s.Length != Size) return $"rng.cpu has {s.Length} bytes, expected {Size}";
        const string corrupt = "rng.cpu (torch's CPU generator state) is corrupt: ";
        int left = BinaryPrimitives.ReadInt32LittleEndian(s[LeftAt..]);
        int seeded = BinaryPrimitives.ReadInt32LittleEndian(s[SeededAt..]);
        ulong next = BinaryPrimitives.ReadUInt64LittleEndian(s[NextAt..]);
        if (seeded != 1) return corrupt + $"its 'seeded' flag (byte {SeededAt}) is {seeded}, expected 1";
        if (left is < 1 or > N) return corrupt + $"its mt19937 'left' counter (byte {LeftAt}) is {left}, expected 1 to {N}";
        if (next > N) return corrupt + $"its mt19937 'next' index (byte {NextAt}) is {next}, expected 0 to {N}";
        if (!(left == 1 && next == 0) && left + (long)next != N + 1)
            return corrupt + $"its mt19937 position is inconsistent: left {left} + next {next} = {left + (long)next}, expected {N + 1} (or left 1, next 0 after seeding)";
        for (int i = 0; i < N; i++)
            if (BinaryPrimitives.ReadUInt64LittleEndian(s[(StateAt + 8 * i)..]) >> 32 != 0)
                return corrupt + $"mt19937 state word {i} (byte {StateAt + 8 * i}) does not fit in 32 bits";
        int normalValid = BinaryPrimitives.ReadInt32LittleEndian(s[NormalValidAt..]);
        if (normalValid is not (0 or 1)) return corrupt + $"its 'normal_is_valid' flag (byte {NormalValidAt}) is {normalValid}, expected 0 or 1";
        if (s[FloatNormalValidAt] > 1) return corrupt + $"its float-normal flag (byte {FloatNormalValidAt}) is {s[FloatNormalValidAt]}, expected 0 or 1";
        return null;
    }
}
