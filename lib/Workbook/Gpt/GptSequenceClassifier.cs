using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Workbook.Gpt;

/// <summary>
/// Sequence classification with a GPT-2 backbone (Hugging Face's <c>GPT2ForSequenceClassification</c>): a new linear
/// head <c>score</c> <c>[classes, n_embd]</c> (no bias) reads the final hidden state <c>ln_f(h)</c> of each sequence's
/// <b>last non-pad token</b>, the only position whose causal attention has seen the whole text, and returns one logit
/// per class. The LM head is not used. Sequences are right-padded with <see cref="PadTokenId"/>: under causal
/// attention no real token attends to the padding after it, so padding changes nothing (tested).
/// Parameter names are Hugging Face's: <c>transformer.*</c> and <c>score.weight</c>.
/// </summary>
public sealed class GptSequenceClassifier : Module<Tensor, Tensor>
{
    readonly GptModel transformer;
    readonly Linear score;

    /// <summary>Puts a fresh head (weights ~ N(0, 0.02²), as GPT-2 initialises) on <paramref name="backbone"/>.</summary>
    /// <param name="backbone">The pretrained model (its LM head is ignored).</param>
    /// <param name="numClasses">Number of classes (≥ 2).</param>
    /// <param name="padTokenId">The id used for padding; GPT-2 has no pad token, so its end-of-text id is the usual choice.</param>
    /// <exception cref="ArgumentException">Fewer than two classes, or a pad id outside the vocabulary.</exception>
    public GptSequenceClassifier(GptModel backbone, int numClasses, int? padTokenId = null) : base(nameof(GptSequenceClassifier))
    {
        ArgumentNullException.ThrowIfNull(backbone);
        if (numClasses < 2) throw new ArgumentException($"numClasses must be at least 2, got {numClasses}.", nameof(numClasses));
        int pad = padTokenId ?? backbone.Config.EosTokenId;
        if (pad < 0 || pad >= backbone.Config.VocabSize)
            throw new ArgumentException($"padTokenId must be in [0, {backbone.Config.VocabSize}), got {pad}.", nameof(padTokenId));
        transformer = backbone;
        score = Linear(backbone.Config.DModel, numClasses, hasBias: false, device: backbone.Device);
        using (no_grad()) init.normal_(score.weight!, 0, 0.02);
        NumClasses = numClasses;
        PadTokenId = pad;
        RegisterComponents();
    }

    /// <summary>The GPT-2 under the head.</summary>
    public GptModel Backbone => transformer;

    /// <summary>The head, <c>[classes, n_embd]</c>.</summary>
    public Linear Head => score;

    /// <summary>Number of classes.</summary>
    public int NumClasses { get; }

    /// <summary>The padding id.</summary>
    public int PadTokenId { get; }

    /// <summary>
    /// For each row, the index of its last token that is not <see cref="PadTokenId"/> <c>[B]</c> (int64).
    /// </summary>
    /// <exception cref="ArgumentException">A row is all padding.</exception>
    public Tensor LastTokenIndex(Tensor ids)
    {
        using var scope = NewDisposeScope();
        var real = ids.ne(PadTokenId);
        if (!real.any(1).all().item<bool>())
            throw new ArgumentException($"A sequence consists only of padding (id {PadTokenId}); every row needs at least one real token.", nameof(ids));
        var positions = arange(ids.shape[1], dtype: ScalarType.Int64, device: ids.device).unsqueeze(0);
        return positions.mul(real.to(ScalarType.Int64)).argmax(1).MoveToOuterDisposeScope(); // the rightmost real token
    }

    /// <summary>The hidden state <c>[B, n_embd]</c> the head reads: <c>ln_f(h)</c> at each row's last non-pad token.</summary>
    public Tensor Features(Tensor ids)
    {
        using var scope = NewDisposeScope();
        var hidden = transformer.HiddenStates(ids);                            // [B, T, E]
        var last = LastTokenIndex(ids).view(-1, 1, 1).expand(-1, 1, hidden.shape[2]);
        return hidden.gather(1, last).squeeze(1).MoveToOuterDisposeScope();    // [B, E]
    }

    /// <summary>Class logits <c>[B, classes]</c> for right-padded token ids <c>[B, T]</c>.</summary>
    public override Tensor forward(Tensor ids)
    {
        using var scope = NewDisposeScope();
        return score.forward(Features(ids)).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Right-pads token sequences into one <c>[B, T]</c> int64 batch for this model, cutting each at
    /// <paramref name="maxLength"/> (keeping its first tokens); see <see cref="PadRight"/>.
    /// </summary>
    /// <exception cref="ArgumentException">An empty sequence, or a length outside [1, context].</exception>
    public Tensor Pad(IEnumerable<IReadOnlyList<int>> sequences, int maxLength)
    {
        if (maxLength > transformer.Config.MaxLength)
            throw new ArgumentException($"maxLength must be in [1, {transformer.Config.MaxLength}], got {maxLength}.", nameof(maxLength));
        return PadRight(sequences, maxLength, PadTokenId, transformer.Device);
    }

    /// <summary>
    /// Right-pads token sequences with <paramref name="padTokenId"/> into one <c>[B, T]</c> int64 batch, T the longest
    /// length up to <paramref name="maxLength"/>; longer sequences keep their first tokens.
    /// </summary>
    /// <exception cref="ArgumentException">No sequences, an empty sequence, or a length below 1.</exception>
    public static Tensor PadRight(IEnumerable<IReadOnlyList<int>> sequences, int maxLength, int padTokenId, Device? device = null)
    {
        ArgumentNullException.ThrowIfNull(sequences);
        if (maxLength < 1) throw new ArgumentException($"maxLength must be in [1, context], got {maxLength}.", nameof(maxLength));
        var rows = sequences.ToList();
        if (rows.Count == 0) throw new ArgumentException("No sequences to pad.", nameof(sequences));
        int T = Math.Min(maxLength, rows.Max(r => r.Count));
        var data = new long[rows.Count * T];
        Array.Fill(data, padTokenId);
        for (int b = 0; b < rows.Count; b++)
        {
            if (rows[b].Count == 0) throw new ArgumentException($"Sequence {b} is empty.", nameof(sequences));
            for (int t = 0; t < Math.Min(T, rows[b].Count); t++) data[b * T + t] = rows[b][t];
        }
        return tensor(data, [rows.Count, T], device: device);
    }
}
