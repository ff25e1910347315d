using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;
using F = TorchSharp.torch.nn.functional;

namespace Workbook.Gpt;

// The linear layers below are fields of type Module<Tensor, Tensor>, not Linear, and not readonly: inference
// converters swap in layers that compute the same product from the same weights (weight-only quantization in
// Workbook.Quantization, the CPU accelerator in Workbook.Runtime.Kernels), as PyTorch's quantize_dynamic swaps nn.Linear,
// and fine-tuning wraps them in LoRA adapters (GptModel.ReplaceProjections). What the model offers beyond the paper's
// forward pass (attention capture, hidden states, projection swaps, parameter counts) is in GptModelTools.cs.

/// <summary>
/// Multi-head causal self-attention of GPT-2. One linear layer <c>c_attn</c> makes queries, keys and values for all
/// heads at once; each head attends with <c>softmax(q kᵀ / √d_head + causal mask) v</c>; <c>c_proj</c> mixes the heads.
/// Parameter names follow Hugging Face's GPT-2 (<c>attn.c_attn</c>, <c>attn.c_proj</c>) so checkpoints load by name.
/// </summary>
public sealed partial class CausalSelfAttention : Module<Tensor, Tensor>
{
    Module<Tensor, Tensor> c_attn, c_proj;
    readonly Dropout resid_dropout;
    readonly int _nHead, _nEmbd;
    readonly double _attnDropout;

    /// <summary>Creates the attention layer of a block.</summary>
    public CausalSelfAttention(GptConfig config) : base(nameof(CausalSelfAttention))
    {
        (_nHead, _nEmbd, _attnDropout) = (config.NumHeads, config.DModel, config.Dropout);
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
    /// (a single new token after a past may attend to everything before it).
    /// </summary>
    internal Tensor Forward(Tensor x, KvCache? cache, int layer, Tensor? mask)
    {
        long B = x.shape[0], T = x.shape[1];
        var qkv = c_attn.forward(x).split(_nEmbd, dim: 2);                    // [B, T, 3E] -> 3 × [B, T, E]
        Tensor q = Heads(qkv[0]), k = Heads(qkv[1]), v = Heads(qkv[2]);       // [B, H, T, hd]
        bool oneTokenAfterPast = cache is { Length: > 0 } && T == 1;
        if (cache is not null) (k, v) = cache.Append(layer, k, v);
        // The weights themselves only when asked (ForwardWithAttention): the fused kernel below never forms them.
        if (CaptureInto is not null) CaptureInto.Add(AttentionWeights(q, k, mask).DetachFromDisposeScope());
        // softmax(q kᵀ / √hd + mask) v in one fused kernel; "is_causal" builds the lower-triangular mask itself.
        var y = F.scaled_dot_product_attention(q, k, v, mask, training ? _attnDropout : 0.0, is_casual: mask is null && !oneTokenAfterPast);
        y = y.transpose(1, 2).contiguous().view(B, T, _nEmbd);                // heads side by side again
        return resid_dropout.forward(c_proj.forward(y));
    }

    // [B, T, E] -> [B, H, T, hd]: each head sees its own hd-wide slice of the features.
    Tensor Heads(Tensor t) => t.view(t.shape[0], t.shape[1], _nHead, _nEmbd / _nHead).transpose(1, 2);

}

/// <summary>GPT-2's position-wise MLP: <c>c_proj(gelu_tanh(c_fc(x)))</c>, 4× wider in the middle.</summary>
public sealed partial class GptMlp : Module<Tensor, Tensor>
{
    Module<Tensor, Tensor> c_fc, c_proj;
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
    public override Tensor forward(Tensor x) =>
        dropout.forward(c_proj.forward(F.gelu(c_fc.forward(x), approximate: TorchSharp.Modules.GELU.Approximate.tanh)));
}

/// <summary>
/// A GPT-2 transformer block, pre-LayerNorm: <c>x = x + attn(ln_1(x)); x = x + mlp(ln_2(x))</c>. Normalising the input
/// of each branch (not the sum, as in the original Transformer) keeps a clean residual path from the embeddings to the
/// output, which is what lets deep stacks train without warm-up tricks.
/// </summary>
public sealed partial class GptBlock : Module<Tensor, Tensor>
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

    internal Tensor Forward(Tensor x, KvCache? cache, int layer, Tensor? mask)
    {
        using var scope = NewDisposeScope(); // the block's intermediates go when it returns (autograd keeps what it needs)
        x = x + attn.Forward(ln_1.forward(x), cache, layer, mask);
        x = x + mlp.forward(ln_2.forward(x));
        return x.MoveToOuterDisposeScope();
    }
}

/// <summary>
/// GPT-2 (Radford et al. 2019), the same network as Hugging Face's <c>GPT2LMHeadModel</c>: token embedding
/// <c>wte</c> plus learned position embedding <c>wpe</c>, <see cref="GptConfig.NumLayers"/> pre-LN blocks <c>h.i</c>, a final
/// LayerNorm <c>ln_f</c>, and an LM head <c>lm_head</c> whose weight is <c>wte</c>'s matrix (weight tying), so
/// <c>logits = ln_f(h) · wteᵀ</c>. Parameter names are Hugging Face's without the <c>transformer.</c> prefix.
/// Load real weights with <see cref="GptCheckpoint"/> or <see cref="GptHub"/>.
/// </summary>
public sealed partial class GptModel : Module<Tensor, Tensor>
{
    readonly Embedding wte, wpe;
    readonly Dropout drop;
    readonly ModuleList<GptBlock> h;
    readonly LayerNorm ln_f;
    Module<Tensor, Tensor> lm_head;

    /// <summary>Creates a GPT-2 with GPT-2's initialisation (see <see cref="InitWeights"/>).</summary>
    public GptModel(GptConfig config, Device? device = null) : base(nameof(GptModel))
    {
        Config = config.Validate();
        wte = Embedding(config.VocabSize, config.DModel);
        wpe = Embedding(config.MaxLength, config.DModel);
        drop = Dropout(config.Dropout);
        h = new ModuleList<GptBlock>(Enumerable.Range(0, config.NumLayers).Select(_ => new GptBlock(config)).ToArray());
        ln_f = LayerNorm(config.DModel, config.LayerNormEps);
        lm_head = Linear(EmbeddingMatrix()); // weight tying: the very same parameter, no bias (counted once by named_parameters)
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

    /// <summary>The forward pass with the options of incremental and batched decoding.</summary>
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
        int past = cache?.Length ?? 0;
        GptInputs.Validate(idx, past, Config, cache, positions);
        long T = idx.shape[1];
        using var scope = NewDisposeScope();
        var x = Body(idx, cache, positions, padding, hiddenStates);
        if (lastPositionOnly) x = x.narrow(1, T - 1, 1);
        return lm_head.forward(x).MoveToOuterDisposeScope(); // each token scored by the dot product with its own embedding
    }

    // Embeddings, blocks and ln_f, in the caller's dispose scope (hidden states go one scope further out, to Forward's caller).
    Tensor Body(Tensor idx, KvCache? cache, Tensor? positions, Tensor? padding, List<Tensor>? hiddenStates)
    {
        long B = idx.shape[0], T = idx.shape[1];
        int past = cache?.Length ?? 0;
        positions ??= arange(past, past + T, dtype: ScalarType.Int64, device: idx.device).unsqueeze(0);
        var x = drop.forward(wte.forward(idx) + wpe.forward(positions)); // [B, T, E]
        var mask = GptInputs.AttentionMask(B, T, past, padding, idx.device, x.dtype);
        for (int i = 0; i < h.Count; i++)
        {
            Keep(hiddenStates, x);
            x = h[i].Forward(x, cache, i, mask);
        }
        cache?.Advance((int)T);
        x = ln_f.forward(x);
        Keep(hiddenStates, x);
        return x;
    }

    static void Keep(List<Tensor>? states, Tensor x) => states?.Add(x.detach().clone().MoveToOuterDisposeScope());

    /// <summary>
    /// Mean cross-entropy of next-token prediction: <paramref name="logits"/> <c>[B, T, V]</c> against
    /// <paramref name="targets"/> <c>[B, T]</c> (the inputs shifted by one). log(V) at initialisation, ≈10.8 for GPT-2.
    /// </summary>
    public static Tensor Loss(Tensor logits, Tensor targets) =>
        F.cross_entropy(logits.view(-1, logits.shape[^1]), targets.view(-1));
}
