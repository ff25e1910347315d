using TorchSharp;
using TorchSharp.Modules;
using Workbook.Kernels;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;
using F = TorchSharp.torch.nn.functional;

namespace Workbook.Gpt;

/// <summary>
/// Multi-head causal self-attention of GPT-2. One linear layer <c>c_attn</c> makes queries, keys and values for all
/// heads at once; each head attends with <c>softmax(q kᵀ / √d_head + causal mask) v</c>; <c>c_proj</c> mixes the heads.
/// Parameter names follow Hugging Face's GPT-2 (<c>attn.c_attn</c>, <c>attn.c_proj</c>) so checkpoints load by name.
/// </summary>
public sealed class CausalSelfAttention : Module<Tensor, Tensor>
{
    // A Linear, or a module standing in for one (LoRA adapters): see GptModel.ReplaceProjections.
    Module<Tensor, Tensor> c_attn, c_proj;
    readonly Dropout resid_dropout;
    readonly int _nHead, _nEmbd;
    readonly double _attnDropout;

    /// <summary>Creates the attention layer of a block.</summary>
    public CausalSelfAttention(GptConfig config) : base(nameof(CausalSelfAttention))
    {
        _nHead = config.NumHeads;
        _nEmbd = config.DModel;
        _attnDropout = config.Dropout;
        c_attn = Linear(config.DModel, 3 * config.DModel);
        c_proj = Linear(config.DModel, config.DModel);
        resid_dropout = Dropout(config.Dropout);
        RegisterComponents();
    }

    /// <summary>Self-attention over a whole sequence <c>[B, T, E]</c> with the causal mask.</summary>
    public override Tensor forward(Tensor x) => Forward(x, null, -1, null);

    /// <summary>
    /// Attention with an optional cache: the new positions' keys and values are appended to <paramref name="cache"/>'s
    /// layer <paramref name="layer"/> and the queries attend to all cached positions. <paramref name="mask"/> is an
    /// additive mask <c>[B or 1, 1, T, S]</c> (0 = may attend, -inf = may not); null means plain causal attention
    /// over a sequence without past (or a single new token, which may attend everything before it).
    /// </summary>
    internal Tensor Forward(Tensor x, KvCache? cache, int layer, Tensor? mask)
    {
        using var scope = NewDisposeScope();
        long B = x.shape[0], T = x.shape[1], hd = _nEmbd / _nHead;
        // [B, T, 3E] -> three [B, T, E] -> [B, H, T, hd]: each head sees its own hd-wide slice of the features.
        var qkv = Projections.Apply(c_attn, x).split(_nEmbd, dim: 2);
        var q = qkv[0].view(B, T, _nHead, hd).transpose(1, 2);
        var k = qkv[1].view(B, T, _nHead, hd).transpose(1, 2);
        var v = qkv[2].view(B, T, _nHead, hd).transpose(1, 2);
        bool pastExists = cache is not null && cache.Length > 0;
        if (cache is not null) (k, v) = cache.Append(layer, k, v);
        double p = training ? _attnDropout : 0.0;
        // softmax(q kᵀ / √hd + mask) v in one fused kernel. Without a past, "is_causal" builds the lower-triangular mask
        // itself; one new token after a past may attend to every cached position, so it needs no mask at all.
        var y = mask is not null ? F.scaled_dot_product_attention(q, k, v, mask, p)
            : F.scaled_dot_product_attention(q, k, v, null, p, is_casual: !(pastExists && T == 1));
        y = y.transpose(1, 2).contiguous().view(B, T, _nEmbd); // heads side by side again
        return resid_dropout.forward(Projections.Apply(c_proj, y)).MoveToOuterDisposeScope();
    }

    internal int ReplaceProjections(string prefix, Func<string, Module<Tensor, Tensor>, Module<Tensor, Tensor>?> replace) =>
        Projections.Replace(this, prefix + "c_attn", "c_attn", ref c_attn, replace) + Projections.Replace(this, prefix + "c_proj", "c_proj", ref c_proj, replace);
}

/// <summary>GPT-2's position-wise MLP: <c>c_proj(gelu_tanh(c_fc(x)))</c>, 4× wider in the middle.</summary>
public sealed class GptMlp : Module<Tensor, Tensor>
{
    Module<Tensor, Tensor> c_fc, c_proj; // Linear, or a stand-in (see GptModel.ReplaceProjections)
    readonly Dropout dropout;

    /// <summary>Creates the MLP of a block.</summary>
    public GptMlp(GptConfig config) : base(nameof(GptMlp))
    {
        c_fc = Linear(config.DModel, config.DimFeedforward);
        c_proj = Linear(config.DimFeedforward, config.DModel);
        dropout = Dropout(config.Dropout);
        RegisterComponents();
    }

    /// <summary>
    /// <c>x → c_proj(GELU(c_fc(x)))</c> with GPT-2's tanh approximation of GELU,
    /// <c>0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³)))</c> (Hugging Face's "gelu_new").
    /// </summary>
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var h = F.gelu(Projections.Apply(c_fc, x), approximate: TorchSharp.Modules.GELU.Approximate.tanh);
        return dropout.forward(Projections.Apply(c_proj, h)).MoveToOuterDisposeScope();
    }

    internal int ReplaceProjections(string prefix, Func<string, Module<Tensor, Tensor>, Module<Tensor, Tensor>?> replace) =>
        Projections.Replace(this, prefix + "c_fc", "c_fc", ref c_fc, replace) + Projections.Replace(this, prefix + "c_proj", "c_proj", ref c_proj, replace);
}

/// <summary>
/// A GPT-2 transformer block, pre-LayerNorm: <c>x = x + attn(ln_1(x)); x = x + mlp(ln_2(x))</c>. Normalising the input
/// of each branch (not the sum, as in the original Transformer) keeps a clean residual path from the embeddings to the
/// output, which is what lets deep stacks train without warm-up tricks.
/// </summary>
public sealed class GptBlock : Module<Tensor, Tensor>
{
    readonly LayerNorm ln_1, ln_2;
    readonly CausalSelfAttention attn;
    readonly GptMlp mlp;

    /// <summary>Creates a block.</summary>
    public GptBlock(GptConfig config) : base(nameof(GptBlock))
    {
        ln_1 = LayerNorm(config.DModel, config.LayerNormEps);
        attn = new CausalSelfAttention(config);
        ln_2 = LayerNorm(config.DModel, config.LayerNormEps);
        mlp = new GptMlp(config);
        RegisterComponents();
    }

    /// <summary>The block over a whole sequence (causal, no cache).</summary>
    public override Tensor forward(Tensor x) => Forward(x, null, -1, null);

    internal int ReplaceProjections(string prefix, Func<string, Module<Tensor, Tensor>, Module<Tensor, Tensor>?> replace) =>
        attn.ReplaceProjections(prefix + "attn.", replace) + mlp.ReplaceProjections(prefix + "mlp.", replace);

    internal Tensor Forward(Tensor x, KvCache? cache, int layer, Tensor? mask)
    {
        using var scope = NewDisposeScope();
        x = x + attn.Forward(ln_1.forward(x), cache, layer, mask);
        x = x + mlp.forward(ln_2.forward(x));
        return x.MoveToOuterDisposeScope();
    }
}

/// <summary>
/// GPT-2 (Radford et al. 2019), the same network as Hugging Face's <c>GPT2LMHeadModel</c>: token embedding
/// <c>wte</c> plus learned position embedding <c>wpe</c>, <see cref="GptConfig.NumLayers"/> pre-LN blocks <c>h.i</c>, a final
/// LayerNorm <c>ln_f</c>, and an LM head that reuses <c>wte</c>'s matrix (weight tying), so
/// <c>logits = ln_f(h) · wteᵀ</c>. Parameter names are Hugging Face's without the <c>transformer.</c> prefix.
/// Load real weights with <see cref="GptCheckpoint"/> or <see cref="GptHub"/>.
/// </summary>
public sealed class GptModel : Module<Tensor, Tensor>
{
    readonly Embedding wte, wpe;
    readonly Dropout drop;
    readonly ModuleList<GptBlock> h;
    readonly LayerNorm ln_f;

    /// <summary>Creates a GPT-2 with GPT-2's initialisation (see <see cref="InitWeights"/>).</summary>
    public GptModel(GptConfig config, Device? device = null) : base(nameof(GptModel))
    {
        Config = config.Validate();
        wte = Embedding(config.VocabSize, config.DModel);
        wpe = Embedding(config.MaxLength, config.DModel);
        drop = Dropout(config.Dropout);
        h = new ModuleList<GptBlock>(Enumerable.Range(0, config.NumLayers).Select(_ => new GptBlock(config)).ToArray());
        ln_f = LayerNorm(config.DModel, config.LayerNormEps);
        RegisterComponents();
        InitWeights();
        if (device is not null && device.type != DeviceType.CPU) this.to(device);
    }

    /// <summary>The model's sizes.</summary>
    public GptConfig Config { get; }

    /// <summary>The token embedding <c>[vocab, n_embd]</c>, also the LM head's weight.</summary>
    public Tensor TokenEmbedding => wte.weight!;

    /// <summary>The device the parameters are on.</summary>
    public Device Device => wte.weight!.device;

    /// <summary>Total number of parameters (the tied LM head counted once).</summary>
    public long ParameterCount => parameters().Sum(p => p.numel());

    /// <summary>
    /// GPT-2's initialisation: weights ~ N(0, 0.02²), biases 0, LayerNorm 1/0, and the residual projections
    /// (<c>attn.c_proj</c>, <c>mlp.c_proj</c>) ~ N(0, (0.02/√(2·n_layer))²) so the residual stream's variance does not
    /// grow with depth.
    /// </summary>
    public void InitWeights()
    {
        using var _ = no_grad();
        double residStd = 0.02 / Math.Sqrt(2.0 * Config.NumLayers);
        foreach (var (name, p) in named_parameters())
        {
            if (name.EndsWith(".bias", StringComparison.Ordinal)) p.zero_();
            else if (name.StartsWith("ln_", StringComparison.Ordinal) || name.Contains(".ln_")) p.fill_(1.0);
            else if (name.EndsWith("c_proj.weight", StringComparison.Ordinal)) nn.init.normal_(p, 0, residStd);
            else nn.init.normal_(p, 0, 0.02);
        }
    }

    /// <summary>Logits <c>[B, T, vocab]</c> for token ids <c>[B, T]</c> (positions 0..T-1, causal).</summary>
    public override Tensor forward(Tensor idx) => Forward(idx);

    /// <summary>
    /// The forward pass with the options of incremental and batched decoding.
    /// </summary>
    /// <param name="idx">Token ids <c>[B, T]</c> (int64).</param>
    /// <param name="cache">If given, the tokens continue the cached sequence: their keys and values are appended and
    /// they attend to the cached positions too. Positions then start at <c>cache.Length</c>.</param>
    /// <param name="positions">Position ids <c>[B, T]</c>; defaults to <c>past .. past+T-1</c>. Left-padded batches pass
    /// each row's own count so that its first real token is at position 0.</param>
    /// <param name="padding">Bool <c>[B, past+T]</c>, true where a key position is padding and must not be attended to.</param>
    /// <param name="hiddenStates">If given, receives the embeddings, the residual stream after each block but the last,
    /// and the output of <c>ln_f</c> (Hugging Face's <c>output_hidden_states</c>); the caller disposes them.</param>
    /// <param name="lastPositionOnly">Return logits <c>[B, 1, V]</c> for the last position only: generation needs no
    /// more, and the LM head is the most expensive layer of a small model.</param>
    /// <exception cref="ArgumentException">The input is not <c>[B, T]</c> int64, holds an id outside the vocabulary, or
    /// runs past the context length; the positions are outside the context; or the cache was made for another config or batch.</exception>
    public Tensor Forward(Tensor idx, KvCache? cache = null, Tensor? positions = null, Tensor? padding = null, List<Tensor>? hiddenStates = null,
        bool lastPositionOnly = false)
    {
        CheckInput(idx, cache?.Length ?? 0);
        long B = idx.shape[0], T = idx.shape[1];
        if (cache is not null) CheckCache(cache, B);
        if (positions is not null)
        {
            if (positions.dim() != 2 || positions.shape[0] != B || positions.shape[1] != T || positions.dtype != ScalarType.Int64)
                throw new ArgumentException($"Positions must be int64 [batch {B}, time {T}] like the token ids, got {positions.dtype} [{string.Join(", ", positions.shape)}].", nameof(positions));
            CheckRange(positions, Config.MaxLength, "Position", "the context", nameof(positions));
        }

        using var scope = NewDisposeScope();
        // One token without gradients (cached decoding): the linear layers become matrix-vector products on the
        // MatVec kernel, which needs the cores more than libtorch's tiny ops do (see InferenceLinear.DecodeScope).
        using var decode = B * T == 1 && !(is_grad_enabled() && wte.weight!.requires_grad) && idx.device_type == DeviceType.CPU
            ? InferenceLinear.DecodeScope() : null;
        var x = Body(idx, cache, positions, padding, hiddenStates);
        if (lastPositionOnly) x = x.narrow(1, T - 1, 1);
        // Weight tying: the LM head scores each token by the dot product with its own input embedding. Under no_grad,
        // InferenceLinear runs it (and every other linear layer) on the fastest CPU path for the shape; with gradients
        // it is F.linear.
        return InferenceLinear.Forward(x, wte.weight!).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The final hidden states <c>ln_f(h)</c> <c>[B, T, n_embd]</c> for token ids <c>[B, T]</c>, with gradients: what a
    /// task head reads instead of the LM head (see <see cref="GptSequenceClassifier"/>).
    /// </summary>
    /// <param name="idx">Token ids <c>[B, T]</c> (int64), positions 0..T-1, causal.</param>
    /// <param name="padding">Bool <c>[B, T]</c>, true where a key position must not be attended to (see <see cref="Forward"/>).</param>
    /// <exception cref="ArgumentException">The input is not <c>[B, T]</c> int64, or runs past the context length.</exception>
    public Tensor HiddenStates(Tensor idx, Tensor? padding = null)
    {
        CheckInput(idx, 0);
        using var scope = NewDisposeScope();
        return Body(idx, null, null, padding, null).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Replaces linear projections of every block (<c>h.i.attn.c_attn</c>, <c>h.i.attn.c_proj</c>, <c>h.i.mlp.c_fc</c>,
    /// <c>h.i.mlp.c_proj</c>) by what <paramref name="replace"/> returns for their full name and current module (a
    /// <see cref="TorchSharp.Modules.Linear"/> at first); null keeps a module. The replacement must map <c>[..., in]</c> to
    /// <c>[..., out]</c> like the layer it stands for; it is registered under the same name, so its parameters appear
    /// as <c>h.i.attn.c_attn.*</c>. Used for LoRA adapters (<see cref="FineTuning.LoRA"/>).
    /// </summary>
    /// <returns>The number of modules replaced.</returns>
    public int ReplaceProjections(Func<string, Module<Tensor, Tensor>, Module<Tensor, Tensor>?> replace)
    {
        ArgumentNullException.ThrowIfNull(replace);
        int n = 0;
        for (int i = 0; i < h.Count; i++) n += h[i].ReplaceProjections($"h.{i}.", replace);
        return n;
    }

    void CheckInput(Tensor idx, int past)
    {
        if (idx.dim() != 2) throw new ArgumentException($"Token ids must be [batch, time], got shape [{string.Join(", ", idx.shape)}].", nameof(idx));
        if (idx.dtype != ScalarType.Int64) throw new ArgumentException($"Token ids must be int64, got {idx.dtype}.", nameof(idx));
        long T = idx.shape[1];
        if (T == 0) throw new ArgumentException("Token ids have no positions (T = 0).", nameof(idx));
        if (past + T > Config.MaxLength)
            throw new ArgumentException($"Sequence of {past + T} tokens ({past} cached + {T} new) is longer than the context of {Config.MaxLength} positions.", nameof(idx));
        // libtorch's embedding would fail with "index out of range in self", naming neither the id nor the vocabulary.
        CheckRange(idx, Config.VocabSize, "Token id", "the vocabulary", nameof(idx));
    }

    // Embeddings, blocks and ln_f, in the caller's dispose scope (hidden states go one scope further out, to Forward's caller).
    Tensor Body(Tensor idx, KvCache? cache, Tensor? positions, Tensor? padding, List<Tensor>? hiddenStates)
    {
        long B = idx.shape[0], T = idx.shape[1];
        int past = cache?.Length ?? 0;
        positions ??= arange(past, past + T, dtype: ScalarType.Int64, device: idx.device).unsqueeze(0);
        var x = drop.forward(wte.forward(idx) + wpe.forward(positions)); // [B, T, E]
        hiddenStates?.Add(x.detach().clone().MoveToOuterDisposeScope());

        var mask = BuildMask(B, T, past, padding, idx.device, x.dtype);
        for (int i = 0; i < h.Count; i++)
        {
            x = h[i].Forward(x, cache, i, mask);
            if (hiddenStates is not null && i < h.Count - 1) hiddenStates.Add(x.detach().clone().MoveToOuterDisposeScope());
        }
        cache?.Advance((int)T);
        x = ln_f.forward(x);
        hiddenStates?.Add(x.detach().clone().MoveToOuterDisposeScope());
        return x;
    }

    /// <summary>Throws if a value of <paramref name="ids"/> is outside [0, <paramref name="limit"/>), naming the first one and where it is.</summary>
    static void CheckRange(Tensor ids, long limit, string what, string range, string argument)
    {
        long min, max;
        if (ids.numel() == 1) min = max = ids.item<long>(); // the single-token decode path: no reductions
        else
        {
            using var mn = ids.min();
            using var mx = ids.max();
            min = mn.item<long>();
            max = mx.item<long>();
        }
        if (min >= 0 && max < limit) return;
        using var scope = NewDisposeScope();
        var at = ids.lt(0).logical_or(ids.ge(limit)).nonzero()[0].cpu().data<long>().ToArray();
        long value = ids[at[0], at[1]].item<long>();
        throw new ArgumentException($"{what} {value} at [{at[0]}, {at[1]}] is outside {range} [0, {limit}).", argument);
    }

    /// <summary>Throws unless <paramref name="cache"/> was made for this model's layers and heads and for batch <paramref name="batch"/>.</summary>
    void CheckCache(KvCache cache, long batch)
    {
        var c = cache.Config;
        if (c.NumLayers != Config.NumLayers || c.NumHeads != Config.NumHeads || c.HeadDim != Config.HeadDim || cache.Capacity > Config.MaxLength)
            throw new ArgumentException($"The KV cache was made for {c.NumLayers} layers × {c.NumHeads} heads × head size {c.HeadDim} with capacity {cache.Capacity}, " +
                $"but this model has {Config.NumLayers} layers × {Config.NumHeads} heads × head size {Config.HeadDim} and a context of {Config.MaxLength}; " +
                "create it with new KvCache(model.Config, ...).", nameof(cache));
        if (cache.Batch != batch)
            throw new ArgumentException($"The KV cache was made for batch {cache.Batch}, but the input has batch {batch}.", nameof(cache));
    }

    /// <summary>
    /// The additive attention mask <c>[B|1, 1, T, past+T]</c>, or null when the attention layers can use plain causal
    /// attention. Query i (absolute position past+i) may see key s iff s ≤ past+i and key s is not padding; a padding
    /// query may always see itself, so that no row is fully masked (its output is never used).
    /// </summary>
    static Tensor? BuildMask(long B, long T, int past, Tensor? padding, Device device, ScalarType dtype)
    {
        if (padding is null && (past == 0 || T == 1)) return null;
        long S = past + T;
        var query = arange(past, S, device: device).view(T, 1);
        var key = arange(0, S, device: device).view(1, S);
        var allowed = key.le(query).view(1, 1, T, S);
        if (padding is not null)
        {
            if (padding.dim() != 2 || padding.shape[0] != B || padding.shape[1] != S)
                throw new ArgumentException($"Padding mask must be [batch {B}, past+T {S}], got [{string.Join(", ", padding.shape)}].", nameof(padding));
            allowed = allowed.logical_and(padding.logical_not().view(B, 1, 1, S)).logical_or(key.eq(query).view(1, 1, T, S));
        }
        return zeros(allowed.shape, dtype: dtype, device: device).masked_fill(allowed.logical_not(), double.NegativeInfinity);
    }

    /// <summary>
    /// Mean cross-entropy of next-token prediction: <paramref name="logits"/> <c>[B, T, V]</c> against
    /// <paramref name="targets"/> <c>[B, T]</c> (the inputs shifted by one). log(V) at initialisation, ≈10.8 for GPT-2.
    /// </summary>
    public static Tensor Loss(Tensor logits, Tensor targets) =>
        F.cross_entropy(logits.view(-1, logits.shape[^1]), targets.view(-1));

    /// <summary>Parameter counts by part (embeddings, each block, final LayerNorm), for the architecture walk-through.</summary>
    public IReadOnlyList<(string Part, long Parameters)> ParameterBreakdown()
    {
        var groups = new List<(string, long)>();
        foreach (var (name, p) in named_parameters())
        {
            var parts = name.Split('.');
            string part = parts[0] == "h" ? $"h.{parts[1]}" : parts[0];
            int at = groups.FindIndex(g => g.Item1 == part);
            if (at < 0) groups.Add((part, p.numel()));
            else groups[at] = (part, groups[at].Item2 + p.numel());
        }
        return groups;
    }
}
