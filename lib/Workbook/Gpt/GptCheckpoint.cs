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

    /// <summary>Loads a checkpoint folder (<c>config.json</c> + <c>model.safetensors</c>) into a new model.</summary>
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
        var model = new GptModel(config);
        LoadWeights(model, weightsPath);
        model.eval();
        if (device is not null && device.type != DeviceType.CPU) model.to(device);
        return model;
    }

    /// <summary>
    /// Copies a Hugging Face GPT-2 <c>model.safetensors</c> into <paramref name="model"/>, converting Conv1D weights
    /// and dtypes (e.g. float16 storage) to the model's.
    /// </summary>
    /// <exception cref="InvalidDataException">Truncated or corrupt file, or missing / unexpected / mis-shaped tensors (all listed).</exception>
    public static void LoadWeights(GptModel model, string safetensorsPath)
    {
        var header = SafeTensors.ReadHeader(safetensorsPath); // throws InvalidDataException naming truncation or corruption
        var fileNames = header.Tensors.ToDictionary(t => t.Name, t => t);
        bool prefixed = header.Tensors.Any(t => t.Name.StartsWith("transformer.", StringComparison.Ordinal));
        string Strip(string n) => prefixed && n.StartsWith("transformer.", StringComparison.Ordinal) ? n["transformer.".Length..] : n;
        var byName = header.Tensors.ToDictionary(t => Strip(t.Name), t => t);

        var problems = new List<string>();
        var parameters = model.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        var toLoad = new List<(string Param, SafeTensorInfo Info, bool Transpose)>();
        foreach (var (name, p) in parameters)
        {
            if (!byName.TryGetValue(name, out var info)) { problems.Add($"missing '{name}' {Shape(p.shape)}"); continue; }
            bool transpose = IsConv1DWeight(name);
            var expected = transpose ? Enumerable.Reverse(p.shape).ToArray() : p.shape;
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
            if (parameters.ContainsKey(name) || AttentionBuffer().IsMatch(name)) continue;
            if (name == "lm_head.weight")
            {
                if (!byName.TryGetValue("wte.weight", out var wte) || !info.Shape.SequenceEqual(wte.Shape))
                    problems.Add($"'{info.Name}' {Shape(info.Shape)} does not match wte.weight (the LM head must be tied to the token embedding)");
                continue;
            }
            problems.Add($"unexpected '{info.Name}' {Shape(info.Shape)}");
        }
        if (problems.Count > 0)
            throw new InvalidDataException($"'{safetensorsPath}' does not fit this GPT-2 ({model.Config.NumLayers} layers, n_embd {model.Config.DModel}, vocab {model.Config.VocabSize}, context {model.Config.MaxLength}); " +
                $"{problems.Count} problem(s):\n  " + string.Join("\n  ", problems));

        var names = toLoad.Select(t => t.Info.Name).ToList();
        if (byName.ContainsKey("lm_head.weight")) names.Add(fileNames.Keys.First(k => Strip(k) == "lm_head.weight"));
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
            var lmHeadName = names.FirstOrDefault(n => Strip(n) == "lm_head.weight");
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
    /// <paramref name="dtype"/> Float16 halves the file (loading converts back to float32).
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
        File.WriteAllText(Path.Combine(folder, ConfigFile), model.Config.ToJson(dtypeName) + "\n");
        return weights;
    }

    static string Shape(IEnumerable<long> shape) => "[" + string.Join(", ", shape.Select(d => d.ToString(CultureInfo.InvariantCulture))) + "]";
}
