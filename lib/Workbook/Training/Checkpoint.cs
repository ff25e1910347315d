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
/// and missing, unexpected or mis-shaped tensors all raise a <see cref="CheckpointException"/> that lists them by
/// name with both shapes, and the model is left untouched.
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
    /// tensor is present with the right shape and dtype; restores torch's CPU RNG state unless told not to.
    /// </summary>
    /// <param name="path">The file.</param>
    /// <param name="model">The model, built with the same architecture.</param>
    /// <param name="optimizer">The optimizer to restore (same type as saved), or null to skip optimizer state.</param>
    /// <param name="restoreRng">Restore torch's CPU random generator (needed for an exact resume with dropout).</param>
    /// <param name="extraTensors">Receives the <c>extra.*</c> tensors (names without the prefix; the caller owns them); null drops them.</param>
    /// <exception cref="FileNotFoundException">No file at <paramref name="path"/>.</exception>
    /// <exception cref="CheckpointException">Corrupt, truncated, not a checkpoint, or mismatched; the message lists each problem.</exception>
    public static CheckpointInfo Load(string path, torch.nn.Module model, torch.optim.Optimizer? optimizer = null, bool restoreRng = true,
        Dictionary<string, Tensor>? extraTensors = null)
    {
        SafeTensorsHeader header;
        try { header = SafeTensors.ReadHeader(path); }
        catch (InvalidDataException e) { throw new CheckpointException($"Cannot load checkpoint: {e.Message}", e); }
        if (!header.Metadata.TryGetValue("format", out var format) || format != Format)
            throw new CheckpointException($"'{path}' is a safetensors file but not a Workbook checkpoint (format '{format ?? "none"}', expected " +
                $"'{Format}'). For plain weights use SafeTensors.Load and load_state_dict.");

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
        if (restoreRng && !inFile.ContainsKey("rng.cpu")) problems.Add("missing rng.cpu (torch's RNG state)");
        if (problems.Count > 0) throw Mismatch(path, problems);

        Dictionary<string, Tensor> tensors;
        try { tensors = SafeTensors.Load(path); }
        catch (InvalidDataException e) { throw new CheckpointException($"Cannot load checkpoint: {e.Message}", e); }
        try
        {
            if (optimizer is not null)
            {
                problems.AddRange(Optimizers.CheckState(optimizer, model, tensors, header.Metadata));
                if (problems.Count > 0) throw Mismatch(path, problems);
            }
            using (torch.no_grad())
                foreach (var (name, t) in modelState) t.copy_(tensors["model." + name]);
            if (optimizer is not null) Optimizers.ImportState(optimizer, model, tensors, header.Metadata);
            if (restoreRng) torch.set_rng_state(tensors["rng.cpu"]);
            if (extraTensors is not null)
                foreach (var (k, v) in tensors.Where(kv => kv.Key.StartsWith("extra.", StringComparison.Ordinal)))
                {
                    extraTensors[k[6..]] = v;
                    tensors.Remove(k);
                }

            var meta = header.Metadata;
            TrainingHistory history;
            try { history = meta.TryGetValue("history", out var h) ? TrainingHistory.FromJson(h) : new TrainingHistory(); }
            catch (InvalidDataException e) { throw new CheckpointException($"'{path}': the training history in the metadata is corrupt: {e.Message}", e); }
            return new CheckpointInfo(path, ParseInt(meta, "epoch", path), ParseLong(meta, "step", path), ParseInt(meta, "seed", path), history, meta);
        }
        finally
        {
            foreach (var t in tensors.Values) t.Dispose();
        }
    }

    static CheckpointException Mismatch(string path, List<string> problems) =>
        new($"Checkpoint '{path}' does not match the model/optimizer ({problems.Count} problem{(problems.Count == 1 ? "" : "s")}):\n  " +
            string.Join("\n  ", problems)) { Problems = problems.ToArray() };

    static int ParseInt(IReadOnlyDictionary<string, string> meta, string key, string path) => (int)ParseLong(meta, key, path);

    static long ParseLong(IReadOnlyDictionary<string, string> meta, string key, string path) =>
        meta.TryGetValue(key, out var v) && long.TryParse(v, NumberStyles.Integer, CultureInfo.InvariantCulture, out var x) ? x
        : throw new CheckpointException($"'{path}': metadata '{key}' is missing or not an integer ('{v}').");

    static string Shape(long[] shape) => "[" + string.Join(", ", shape) + "]";
}
