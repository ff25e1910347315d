using System.Globalization;
using System.Text.RegularExpressions;
using TorchSharp;
using Workbook.IO;
using static TorchSharp.torch;

namespace Workbook.Gpt;

/// <summary>
/// Reads and writes GPT-2 checkpoints in Hugging Face's layout: a folder with <c>config.json</c> and
/// <c>model.safetensors</c>. Hugging Face stores the <c>c_attn</c>, <c>c_proj</c> and <c>c_fc</c> weights as
/// "Conv1D" matrices <c>[in, out]</c> (<c>y = x W + b</c>), the transpose of <c>nn.Linear</c>'s <c>[out, in]</c>;
/// loading transposes them, saving transposes them back, so our files open in <c>transformers</c> and theirs here.
/// Names may carry the <c>transformer.</c> prefix (as <c>save_pretrained</c> writes them) or not (as the hub's
/// <c>gpt2</c> file has them); the causal-mask buffers <c>h.i.attn.bias</c>/<c>masked_bias</c> are ignored; a stored
/// <c>lm_head.weight</c> must equal <c>wte.weight</c> (tied). Every name and shape is checked, and all mismatches are
/// reported in one exception.
/// </summary>
public static partial class GptCheckpoint
{
    /// <summary>The weights file of a checkpoint folder.</summary>
    public const string WeightsFile = "model.safetensors";

    /// <summary>The config file of a checkpoint folder.</summary>
    public const string ConfigFile = "config.json";

    [GeneratedRegex(@"^h\.\d+\.(attn\.c_attn|attn\.c_proj|mlp\.c_fc|mlp\.c_proj)\.weight$")]
    private static partial Regex Conv1DWeight();

    [GeneratedRegex(@"^h\.\d+\.attn\.(bias|masked_bias)$")]
    private static partial Regex AttentionBuffer();

    /// <summary>True for the weights Hugging Face stores as Conv1D <c>[in, out]</c>.</summary>
    public static bool IsConv1DWeight(string name) => Conv1DWeight().IsMatch(name);

    /// <summary>
    /// Loads a checkpoint folder (<c>config.json</c> + <c>model.safetensors</c>) into a new model. The config is checked
    /// against the weight file's header before the model is built, so a config that does not fit the weights (say
    /// 24 layers × 768 against a tiny file) fails at once, without allocating the model it describes.
    /// </summary>
    /// <exception cref="DirectoryNotFoundException">The folder does not exist.</exception>
    /// <exception cref="FileNotFoundException">A file of the checkpoint is missing.</exception>
    /// <exception cref="InvalidDataException">The config or weights are malformed, truncated, or do not match; the message lists every problem.</exception>
    public static GptModel Load(string folder, Device? device = null)
    {
        if (!Directory.Exists(folder)) throw new DirectoryNotFoundException($"GPT-2 checkpoint folder not found: '{folder}'.");
        var configPath = Path.Combine(folder, ConfigFile);
        var weightsPath = Path.Combine(folder, WeightsFile);
        if (!File.Exists(configPath)) throw new FileNotFoundException($"'{folder}' has no {ConfigFile}; a GPT-2 checkpoint folder needs {ConfigFile} and {WeightsFile}.", configPath);
        if (!File.Exists(weightsPath)) throw new FileNotFoundException($"'{folder}' has no {WeightsFile}; a GPT-2 checkpoint folder needs {ConfigFile} and {WeightsFile}.", weightsPath);
        var config = GptConfig.Load(configPath) with { Dropout = 0 }; // loaded for inference; set Dropout yourself to fine-tune
        var header = SafeTensors.ReadHeader(weightsPath);
        Plan(header, ParameterShapes(config), config, $"the config '{configPath}'"); // throws before anything is allocated
        var model = new GptModel(config);
        try
        {
            LoadWeights(model, header);
            model.eval();
            if (device is not null && device.type != DeviceType.CPU) model.to(device);
            return model;
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>
    /// The parameters a GPT-2 of <paramref name="config"/> has, by name, with their shapes in this model's layout
    /// (<c>nn.Linear</c>'s <c>[out, in]</c>), in <see cref="GptModel"/>'s order: what a checkpoint must provide.
    /// </summary>
    public static IReadOnlyList<(string Name, long[] Shape)> ParameterShapes(GptConfig config)
    {
        config.Validate();
        long e = config.DModel, f = config.DimFeedforward;
        var shapes = new List<(string, long[])> { ("wte.weight", [config.VocabSize, e]), ("wpe.weight", [config.MaxLength, e]) };
        for (int i = 0; i < config.NumLayers; i++)
        {
            var h = $"h.{i}.";
            shapes.AddRange([
                (h + "ln_1.weight", [e]), (h + "ln_1.bias", [e]), (h + "ln_2.weight", [e]), (h + "ln_2.bias", [e]),
                (h + "attn.c_attn.weight", [3 * e, e]), (h + "attn.c_attn.bias", [3 * e]),
                (h + "attn.c_proj.weight", [e, e]), (h + "attn.c_proj.bias", [e]),
                (h + "mlp.c_fc.weight", [f, e]), (h + "mlp.c_fc.bias", [f]),
                (h + "mlp.c_proj.weight", [e, f]), (h + "mlp.c_proj.bias", [e])]);
        }
        shapes.AddRange([("ln_f.weight", [e]), ("ln_f.bias", [e])]);
        return shapes;
    }

    /// <summary>
    /// Copies a Hugging Face GPT-2 <c>model.safetensors</c> into <paramref name="model"/>, converting Conv1D weights
    /// and dtypes (e.g. float16 storage) to the model's.
    /// </summary>
    /// <exception cref="InvalidDataException">Truncated or corrupt file, or missing / unexpected / mis-shaped tensors (all listed).</exception>
    public static void LoadWeights(GptModel model, string safetensorsPath) =>
        LoadWeights(model, SafeTensors.ReadHeader(safetensorsPath)); // throws InvalidDataException naming truncation or corruption

    /// <summary>Which file tensor goes into which parameter, after checking every name, shape and dtype (all problems in one exception).</summary>
    static List<(string Param, SafeTensorInfo Info, bool Transpose)> Plan(SafeTensorsHeader header, IEnumerable<(string Name, long[] Shape)> parameters,
        GptConfig config, string what)
    {
        var path = header.Path;
        var problems = new List<string>();
        // Names may carry "transformer." (save_pretrained) or not (the hub's gpt2); a file must not hold both spellings of one name.
        var byName = new Dictionary<string, SafeTensorInfo>();
        foreach (var t in header.Tensors)
        {
            var name = t.Name.StartsWith("transformer.", StringComparison.Ordinal) ? t.Name["transformer.".Length..] : t.Name;
            if (!byName.TryAdd(name, t)) problems.Add($"'{t.Name}' and '{byName[name].Name}' are the same parameter '{name}' spelled twice (with and without 'transformer.')");
        }
        var expectedNames = new HashSet<string>();
        var toLoad = new List<(string Param, SafeTensorInfo Info, bool Transpose)>();
        foreach (var (name, shape) in parameters)
        {
            expectedNames.Add(name);
            if (!byName.TryGetValue(name, out var info)) { problems.Add($"missing '{name}' {Shape(shape)}"); continue; }
            bool transpose = IsConv1DWeight(name);
            var expected = transpose ? Enumerable.Reverse(shape).ToArray() : shape;
            if (!info.Shape.SequenceEqual(expected))
            {
                string hint = name == "wte.weight" && info.Shape.Length == 2 && info.Shape[1] == expected[1]
                    ? $" (the checkpoint has a vocabulary of {info.Shape[0]} tokens, the config says {expected[0]})" : "";
                problems.Add($"'{info.Name}' has shape {Shape(info.Shape)} but the model expects {Shape(expected)}{(transpose ? " (Conv1D [in, out])" : "")}{hint}");
                continue;
            }
            if (info.DType is not ("F32" or "F16" or "BF16" or "F64")) { problems.Add($"'{info.Name}' has dtype {info.DType}, expected a floating type"); continue; }
            toLoad.Add((name, info, transpose));
        }
        foreach (var (name, info) in byName)
        {
            if (expectedNames.Contains(name) || AttentionBuffer().IsMatch(name)) continue;
            if (name == "lm_head.weight")
            {
                if (!byName.TryGetValue("wte.weight", out var wte) || !info.Shape.SequenceEqual(wte.Shape) || info.DType is not ("F32" or "F16" or "BF16" or "F64"))
                    problems.Add($"'{info.Name}' {Shape(info.Shape)} {info.DType} does not match wte.weight (the LM head must be tied to the token embedding)");
                continue;
            }
            problems.Add($"unexpected '{info.Name}' {Shape(info.Shape)}");
        }
        if (problems.Count > 0)
            throw new InvalidDataException($"'{path}' does not fit {what} ({config.NumLayers} layers, n_embd {config.DModel}, vocab {config.VocabSize}, context {config.MaxLength}); " +
                $"{problems.Count} problem(s):\n  " + string.Join("\n  ", problems));
        return toLoad;
    }

    static void LoadWeights(GptModel model, SafeTensorsHeader header)
    {
        var safetensorsPath = header.Path;
        var parameters = model.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        var toLoad = Plan(header, parameters.Select(p => (p.Key, p.Value.shape)), model.Config, "this GPT-2");
        var names = toLoad.Select(t => t.Info.Name).ToList();
        var lmHeadName = header.Tensors.Select(t => t.Name).FirstOrDefault(n => n is "lm_head.weight" or "transformer.lm_head.weight");
        if (lmHeadName is not null) names.Add(lmHeadName);
        var tensors = SafeTensors.Load(safetensorsPath, names: names);
        try
        {
            using var _ = no_grad();
            foreach (var (param, info, transpose) in toLoad)
            {
                var p = parameters[param];
                var src = tensors[info.Name];
                using var value = transpose ? src.t() : src.alias();
                p.copy_(value.to(p.dtype, p.device));
            }
            if (lmHeadName is not null)
            {
                using var head = tensors[lmHeadName].to(ScalarType.Float32);
                using var wte = parameters["wte.weight"].cpu().to(ScalarType.Float32);
                if (!head.allclose(wte, rtol: 1e-3, atol: 1e-6))
                    throw new InvalidDataException($"'{safetensorsPath}': lm_head.weight differs from wte.weight; this GPT-2 needs a tied LM head.");
            }
        }
        finally
        {
            foreach (var t in tensors.Values) t.Dispose();
        }
    }

    /// <summary>
    /// Saves <paramref name="model"/> as a Hugging Face checkpoint folder: <c>config.json</c> and
    /// <c>model.safetensors</c> (names without prefix, Conv1D weights <c>[in, out]</c>, no <c>lm_head.weight</c>).
    /// <paramref name="dtype"/> Float16 halves the file (loading converts back to float32). Both files are written
    /// atomically (a temporary file renamed into place).
    /// </summary>
    /// <returns>The path of the weights file.</returns>
    public static string Save(GptModel model, string folder, ScalarType dtype = ScalarType.Float32, IReadOnlyDictionary<string, string>? metadata = null)
    {
        if (dtype is not (ScalarType.Float32 or ScalarType.Float16 or ScalarType.BFloat16))
            throw new ArgumentException($"Checkpoints are stored as Float32, Float16 or BFloat16, not {dtype}.", nameof(dtype));
        Directory.CreateDirectory(folder);
        var meta = new Dictionary<string, string> { ["format"] = "pt" };
        if (metadata is not null) foreach (var (k, v) in metadata) meta[k] = v;
        using var scope = NewDisposeScope();
        var tensors = model.named_parameters()
            .OrderBy(p => p.name, StringComparer.Ordinal)
            .Select(p => new KeyValuePair<string, Tensor>(p.name,
                (IsConv1DWeight(p.name) ? p.parameter.detach().t() : p.parameter.detach()).to(dtype).cpu().contiguous()))
            .ToList();
        var weights = Path.Combine(folder, WeightsFile);
        SafeTensors.Save(weights, tensors, meta);
        var dtypeName = dtype switch { ScalarType.Float16 => "float16", ScalarType.BFloat16 => "bfloat16", _ => "float32" };
        // Like the weights, the config is renamed into place, so an interrupted save never leaves half a config.json.
        var config = Path.Combine(folder, ConfigFile);
        var tmp = config + $".{Environment.ProcessId}.{Guid.NewGuid():N}.tmp";
        try
        {
            File.WriteAllText(tmp, model.Config.ToJson(dtypeName) + "\n");
            File.Move(tmp, config, overwrite: true);
        }
        finally
        {
            if (File.Exists(tmp)) File.Delete(tmp);
        }
        return weights;
    }

    static string Shape(IEnumerable<long> shape) => "[" + string.Join(", ", shape.Select(d => d.ToString(CultureInfo.InvariantCulture))) + "]";
}
