using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Workbook.Gpt;

// What GptModel offers beside the paper's forward pass (GptModel.cs): the attention weights for analysis (chapter 05),
// the final hidden states for task heads and the projection swap for LoRA (chapter 09), parameter counts (chapter 05),
// and the TorchSharp plumbing that keeps the LM head tied to the token embedding.

public sealed partial class CausalSelfAttention
{
    /// <summary>When set, every forward appends its attention weights <c>[B, H, T, S]</c> here (opt-in, for analysis;
    /// see <see cref="GptModel.ForwardWithAttention"/>). The tensors belong to no dispose scope.</summary>
    internal List<Tensor>? CaptureInto { get; set; }

    /// <summary>
    /// The weights the fused kernel applies, written out from the same queries and keys:
    /// <c>softmax(q kᵀ / √hd + mask)</c>, with the causal mask (query i sees keys ≤ i + S − T) when no mask is given.
    /// Attention dropout is not applied (the weights are those of eval mode).
    /// </summary>
    static Tensor AttentionWeights(Tensor q, Tensor k, Tensor? mask)
    {
        using var noGrad = no_grad();
        long T = q.shape[2], S = k.shape[2];
        var scores = q.matmul(k.transpose(-2, -1)) / Math.Sqrt(q.shape[^1]);
        if (mask is not null) scores = scores + mask;
        else scores = scores.masked_fill(ones(T, S, dtype: ScalarType.Bool, device: q.device).tril(S - T).logical_not(), double.NegativeInfinity);
        return scores.softmax(-1);
    }

    internal int ReplaceProjections(string prefix, Func<string, Module<Tensor, Tensor>, Module<Tensor, Tensor>?> replace) =>
        Projections.Replace(this, prefix + "c_attn", "c_attn", ref c_attn, replace) + Projections.Replace(this, prefix + "c_proj", "c_proj", ref c_proj, replace);
}

public sealed partial class GptMlp
{
    internal int ReplaceProjections(string prefix, Func<string, Module<Tensor, Tensor>, Module<Tensor, Tensor>?> replace) =>
        Projections.Replace(this, prefix + "c_fc", "c_fc", ref c_fc, replace) + Projections.Replace(this, prefix + "c_proj", "c_proj", ref c_proj, replace);
}

public sealed partial class GptBlock
{
    /// <summary>The block's attention layer.</summary>
    internal CausalSelfAttention Attention => attn;

    internal int ReplaceProjections(string prefix, Func<string, Module<Tensor, Tensor>, Module<Tensor, Tensor>?> replace) =>
        attn.ReplaceProjections(prefix + "attn.", replace) + mlp.ReplaceProjections(prefix + "mlp.", replace);
}

public sealed partial class GptModel
{
    /// <summary>
    /// The final hidden states <c>ln_f(h)</c> <c>[B, T, n_embd]</c> for token ids <c>[B, T]</c>, with gradients: what a
    /// task head reads instead of the LM head (see <see cref="GptSequenceClassifier"/>).
    /// </summary>
    /// <param name="idx">Token ids <c>[B, T]</c> (int64), positions 0..T-1, causal.</param>
    /// <param name="padding">Bool <c>[B, T]</c>, true where a key position must not be attended to (see <see cref="Forward"/>).</param>
    /// <exception cref="ArgumentException">The input is not <c>[B, T]</c> int64, holds an id outside the vocabulary, or runs past the context length.</exception>
    public Tensor HiddenStates(Tensor idx, Tensor? padding = null)
    {
        GptInputs.Validate(idx, 0, Config);
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

    /// <summary>
    /// The forward pass that also returns every layer's attention weights (Hugging Face's <c>output_attentions</c>):
    /// one tensor <c>[B, n_head, T, T]</c> per layer, row i holding the softmax weights of query position i over the keys
    /// (0 above the diagonal, each row summing to 1). The logits are exactly <see cref="Forward"/>'s: the attention still
    /// runs in the fused kernel, and the weights are computed beside it from the same queries, keys and mask (without
    /// attention dropout). The caller disposes the weights.
    /// </summary>
    /// <param name="idx">Token ids <c>[B, T]</c> (int64).</param>
    /// <param name="positions">As in <see cref="Forward"/>.</param>
    /// <param name="padding">As in <see cref="Forward"/>: padded keys get weight 0.</param>
    public (Tensor Logits, Tensor[] Attention) ForwardWithAttention(Tensor idx, Tensor? positions = null, Tensor? padding = null)
    {
        var captured = new List<Tensor>();
        foreach (var block in h) block.Attention.CaptureInto = captured;
        try
        {
            return (Forward(idx, positions: positions, padding: padding), captured.ToArray());
        }
        catch
        {
            foreach (var t in captured) t.Dispose();
            throw;
        }
        finally
        {
            foreach (var block in h) block.Attention.CaptureInto = null;
        }
    }

    /// <summary>Parameter counts by part (embeddings, each block, final LayerNorm), for the architecture walk-through.</summary>
    public IReadOnlyList<(string Part, long Parameters)> ParameterBreakdown() =>
        named_parameters().GroupBy(p => p.name.StartsWith("h.", StringComparison.Ordinal) ? string.Join('.', p.name.Split('.').Take(2)) : p.name.Split('.')[0])
            .Select(g => (g.Key, g.Sum(p => p.parameter.numel()))).ToList();

    // TorchSharp's to(device / dtype) replaces each module's parameters with moved copies, one module at a time, which
    // would leave lm_head with a copy of wte's matrix: tie them again afterwards.
    /// <inheritdoc/>
    protected override Module _to(Device device, ScalarType dtype, bool non_blocking) { base._to(device, dtype, non_blocking); return Tie(); }
    /// <inheritdoc/>
    protected override Module _to(DeviceType deviceType, int deviceIndex, bool non_blocking) { base._to(deviceType, deviceIndex, non_blocking); return Tie(); }
    /// <inheritdoc/>
    protected override Module _to(ScalarType dtype, bool non_blocking) { base._to(dtype, non_blocking); return Tie(); }

    Module Tie()
    {
        if (lm_head is Linear head && head.weight.Handle != EmbeddingMatrix().Handle) head.weight = EmbeddingMatrix();
        return this;
    }

    // The parameter object wte registered (its weight property returns a new handle on each call, which
    // named_parameters would not recognise as the same tensor).
    Parameter EmbeddingMatrix() => wte.named_parameters(recurse: false).Single().parameter;
}
