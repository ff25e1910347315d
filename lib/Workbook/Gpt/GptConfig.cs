using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Workbook.Gpt;

/// <summary>
/// The hyper-parameters of a GPT-2 model, with Hugging Face's <c>config.json</c> names in the docs.
/// The published sizes are <see cref="Gpt2"/> (124M), <see cref="Gpt2Medium"/> (355M), <see cref="Gpt2Large"/> (774M)
/// and <see cref="Gpt2XL"/> (1.5B); <see cref="FromPreset"/> picks one by its hub name.
/// </summary>
public sealed record GptConfig
{
    /// <summary>Vocabulary size (<c>vocab_size</c>): 50,257 for GPT-2's tokenizer.</summary>
    public int VocabSize { get; init; } = 50257;

    /// <summary>Context length, the number of learned positions (<c>n_positions</c>, nanoGPT's block_size).</summary>
    public int MaxLength { get; init; } = 1024;

    /// <summary>Width of the residual stream, d_model (<c>n_embd</c>).</summary>
    public int DModel { get; init; } = 768;

    /// <summary>Number of transformer blocks (<c>n_layer</c>).</summary>
    public int NumLayers { get; init; } = 12;

    /// <summary>Number of attention heads (<c>n_head</c>); <see cref="DModel"/> must be divisible by it.</summary>
    public int NumHeads { get; init; } = 12;

    /// <summary>
    /// Hidden width of the MLP, d_ff (<c>n_inner</c>): 4 × <see cref="DModel"/> unless set, as in GPT-2. The default
    /// follows <see cref="DModel"/> (<c>config with { DModel = 64 }</c> gets 256); an explicit value is kept.
    /// </summary>
    public int DimFeedforward { get => _dimFeedforward ?? 4 * DModel; init => _dimFeedforward = value; }
    readonly int? _dimFeedforward;

    /// <summary>LayerNorm epsilon (<c>layer_norm_epsilon</c>), 1e-5.</summary>
    public double LayerNormEps { get; init; } = 1e-5;

    /// <summary>Dropout on embeddings, attention weights and residual branches (<c>embd_pdrop</c>, <c>attn_pdrop</c>, <c>resid_pdrop</c>); 0.1 in GPT-2's pretraining, 0 for inference.</summary>
    public double Dropout { get; init; }

    /// <summary>Id of the end-of-text token (<c>eos_token_id</c>, also <c>bos_token_id</c>): 50256 in GPT-2.</summary>
    public int EosTokenId { get; init; } = 50256;

    /// <summary>Head size, <see cref="DModel"/> / <see cref="NumHeads"/>.</summary>
    public int HeadDim => DModel / NumHeads;

    /// <summary>GPT-2 small: 12 layers, 12 heads, 768 wide, 124,439,808 parameters.</summary>
    public static GptConfig Gpt2 => new();

    /// <summary>GPT-2 medium: 24 layers, 16 heads, 1024 wide (354.8M parameters).</summary>
    public static GptConfig Gpt2Medium => new() { NumLayers = 24, NumHeads = 16, DModel = 1024 };

    /// <summary>GPT-2 large: 36 layers, 20 heads, 1280 wide (774.0M parameters).</summary>
    public static GptConfig Gpt2Large => new() { NumLayers = 36, NumHeads = 20, DModel = 1280 };

    /// <summary>GPT-2 XL: 48 layers, 25 heads, 1600 wide (1557.6M parameters).</summary>
    public static GptConfig Gpt2XL => new() { NumLayers = 48, NumHeads = 25, DModel = 1600 };

    /// <summary>The published names: gpt2, gpt2-medium, gpt2-large, gpt2-xl.</summary>
    public static IReadOnlyList<string> PresetNames { get; } = ["gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl"];

    /// <summary>The config of a published GPT-2 by its hub name (an optional <c>openai-community/</c> prefix is accepted).</summary>
    /// <exception cref="ArgumentException">The name is not one of <see cref="PresetNames"/>.</exception>
    public static GptConfig FromPreset(string name) => (name.StartsWith("openai-community/", StringComparison.Ordinal) ? name["openai-community/".Length..] : name) switch
    {
        "gpt2" => Gpt2,
        "gpt2-medium" => Gpt2Medium,
        "gpt2-large" => Gpt2Large,
        "gpt2-xl" => Gpt2XL,
        _ => throw new ArgumentException($"Unknown GPT-2 preset '{name}'; expected one of {string.Join(", ", PresetNames)}.", nameof(name)),
    };

    /// <summary>
    /// The parameter count, computed from the sizes: token and position embeddings, per block two LayerNorms
    /// (2 × 2E), attention (E·3E + 3E and E·E + E) and MLP (E·4E + 4E and 4E·E + E), and the final LayerNorm.
    /// The LM head shares the token embedding, so it adds nothing.
    /// </summary>
    public long ParameterCount => (long)VocabSize * DModel + (long)MaxLength * DModel + NumLayers * BlockParameterCount + 2L * DModel;

    /// <summary>Parameters in one transformer block.</summary>
    public long BlockParameterCount
    {
        get
        {
            long e = DModel, f = DimFeedforward;
            return 2 * e + (e * 3 * e + 3 * e) + (e * e + e) + 2 * e + (e * f + f) + (f * e + e);
        }
    }

    /// <summary>Checks that the sizes make sense.</summary>
    /// <exception cref="ArgumentException">A size is not positive, or <see cref="DModel"/> is not divisible by <see cref="NumHeads"/>.</exception>
    public GptConfig Validate()
    {
        foreach (var (name, v) in new[] { (nameof(VocabSize), VocabSize), (nameof(MaxLength), MaxLength), (nameof(DModel), DModel), (nameof(NumLayers), NumLayers), (nameof(NumHeads), NumHeads), (nameof(DimFeedforward), DimFeedforward) })
            if (v <= 0) throw new ArgumentException($"GptConfig.{name} must be positive, got {v}.");
        if (DModel % NumHeads != 0) throw new ArgumentException($"GptConfig.DModel ({DModel}) must be divisible by NumHeads ({NumHeads}).");
        if (Dropout is < 0 or >= 1) throw new ArgumentException($"GptConfig.Dropout must be in [0, 1), got {Dropout}.");
        return this;
    }

    /// <summary>Reads a Hugging Face GPT-2 <c>config.json</c>.</summary>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="InvalidDataException">The file is not a GPT-2 config or asks for a variant this implementation does not have.</exception>
    public static GptConfig Load(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"GPT-2 config not found: '{path}'.", path);
        return FromJson(File.ReadAllText(path), path);
    }

    /// <summary>Parses a Hugging Face GPT-2 config from JSON text (<paramref name="source"/> names it in errors).</summary>
    /// <exception cref="InvalidDataException">Not a GPT-2 config, or an unsupported variant.</exception>
    public static GptConfig FromJson(string json, string source = "config.json")
    {
        JsonObject o;
        try
        {
            var node = JsonNode.Parse(json) ?? throw new InvalidDataException($"'{source}' is empty (JSON null).");
            o = node as JsonObject ?? throw new InvalidDataException($"'{source}' is not a config: expected a JSON object, got {node.GetValueKind()}.");
            _ = o.Count; // materialises the properties: duplicate keys throw here
        }
        catch (JsonException e) { throw new InvalidDataException($"'{source}' is not valid JSON: {e.Message}", e); }
        catch (ArgumentException e) { throw new InvalidDataException($"'{source}' is not a valid config (a key appears twice?): {e.Message}", e); }

        var problems = new List<string>();
        string? Str(string key) => o[key] is JsonValue v && v.TryGetValue<string>(out var s) ? s : null;
        double? Dbl(string key) => o[key] is JsonValue v && v.TryGetValue<double>(out var d) ? d : null;
        bool? Bool(string key) => o[key] is JsonValue v && v.TryGetValue<bool>(out var b) ? b : null;
        var ints = new Dictionary<string, int?>();
        int? Int(string key)
        {
            if (ints.TryGetValue(key, out var known)) return known;
            int? value = null;
            if (o[key] is JsonNode node)
            {
                // A size must be a whole number that fits an int: 1e12 would otherwise saturate to int.MaxValue.
                if (node is JsonValue v && v.TryGetValue<double>(out var d) && d == Math.Floor(d) && d is >= int.MinValue and <= int.MaxValue) value = (int)d;
                else problems.Add($"'{key}' is {node.ToJsonString()}, expected an integer in [{int.MinValue}, {int.MaxValue}]");
            }
            return ints[key] = value;
        }

        var modelType = Str("model_type");
        if (modelType is not null && modelType != "gpt2")
            throw new InvalidDataException($"'{source}' describes a '{modelType}' model; only model_type 'gpt2' is supported.");
        var act = Str("activation_function") ?? "gelu_new";
        if (act is not ("gelu_new" or "gelu_pytorch_tanh" or "gelu_fast"))
            problems.Add($"activation_function is '{act}', but this GPT-2 implements the tanh GELU ('gelu_new')");
        if (Bool("tie_word_embeddings") == false) problems.Add("tie_word_embeddings is false, but the LM head here is tied to the token embedding");
        if (Bool("scale_attn_by_inverse_layer_idx") == true) problems.Add("scale_attn_by_inverse_layer_idx is true (not supported)");
        if (Bool("scale_attn_weights") == false) problems.Add("scale_attn_weights is false (not supported)");
        if (Bool("add_cross_attention") == true) problems.Add("add_cross_attention is true (not supported)");
        foreach (var key in new[] { "vocab_size", "n_embd", "n_layer", "n_head" })
            if (Int(key) is null && o[key] is null) problems.Add($"'{key}' is missing");
        if (Int("n_positions") is null && Int("n_ctx") is null && o["n_positions"] is null && o["n_ctx"] is null) problems.Add("'n_positions' is missing");
        _ = Int("n_inner");
        _ = Int("eos_token_id");
        if (problems.Count > 0) throw new InvalidDataException($"'{source}' is not a supported GPT-2 config: {string.Join("; ", problems)}.");

        var dropouts = new[] { Dbl("embd_pdrop"), Dbl("attn_pdrop"), Dbl("resid_pdrop") }.Where(d => d is not null).Select(d => d!.Value).ToList();
        try
        {
            var config = new GptConfig
            {
                VocabSize = Int("vocab_size")!.Value,
                MaxLength = Int("n_positions") ?? Int("n_ctx")!.Value,
                DModel = Int("n_embd")!.Value,
                NumLayers = Int("n_layer")!.Value,
                NumHeads = Int("n_head")!.Value,
                LayerNormEps = Dbl("layer_norm_epsilon") ?? 1e-5,
                Dropout = dropouts.Count > 0 ? dropouts.Max() : 0,
                EosTokenId = Int("eos_token_id") ?? 50256,
            };
            if (Int("n_inner") is int inner) config = config with { DimFeedforward = inner };
            return config.Validate();
        }
        catch (ArgumentException e) { throw new InvalidDataException($"'{source}': {e.Message}", e); }
    }

    /// <summary>This config as a Hugging Face <c>config.json</c> (loadable by <c>transformers.GPT2LMHeadModel</c>).</summary>
    public string ToJson(string torchDtype = "float32")
    {
        var o = new JsonObject
        {
            ["activation_function"] = "gelu_new",
            ["architectures"] = new JsonArray("GPT2LMHeadModel"),
            ["attn_pdrop"] = Dropout,
            ["bos_token_id"] = EosTokenId,
            ["embd_pdrop"] = Dropout,
            ["eos_token_id"] = EosTokenId,
            ["initializer_range"] = 0.02,
            ["layer_norm_epsilon"] = LayerNormEps,
            ["model_type"] = "gpt2",
            ["n_ctx"] = MaxLength,
            ["n_embd"] = DModel,
            ["n_head"] = NumHeads,
            ["n_inner"] = _dimFeedforward,
            ["n_layer"] = NumLayers,
            ["n_positions"] = MaxLength,
            ["resid_pdrop"] = Dropout,
            ["scale_attn_weights"] = true,
            ["tie_word_embeddings"] = true,
            ["torch_dtype"] = torchDtype,
            ["vocab_size"] = VocabSize,
        };
        return o.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
    }

    /// <inheritdoc/>
    public override string ToString() => string.Create(CultureInfo.InvariantCulture,
        $"GPT-2 config: {NumLayers} layers, {NumHeads} heads, n_embd {DModel}, context {MaxLength}, vocab {VocabSize}, {ParameterCount:N0} parameters");
}
