using TorchSharp;
using TorchSharp.Modules;
using Workbook.Attention;
using static TorchSharp.torch;

namespace Workbook.Transformers;

/// <summary>Hyper-parameters of an <see cref="EncoderDecoderTransformer"/> (defaults: the paper's base model).</summary>
/// <param name="SourceVocabSize">Source token ids are 0..SourceVocabSize-1.</param>
/// <param name="TargetVocabSize">Target token ids are 0..TargetVocabSize-1.</param>
/// <param name="DModel">Model width.</param>
/// <param name="NumHeads">Attention heads per layer.</param>
/// <param name="NumEncoderLayers">Encoder depth.</param>
/// <param name="NumDecoderLayers">Decoder depth.</param>
/// <param name="DimFeedforward">FFN hidden width.</param>
/// <param name="Dropout">Dropout everywhere (embeddings, attention, FFN, residual branches).</param>
/// <param name="NormFirst">Pre-LN layers (with a final LayerNorm on each stack) instead of the paper's post-LN.</param>
/// <param name="TieOutputWeights">Use the target embedding matrix as the output projection (paper section 3.4).</param>
/// <param name="MaxLength">Longest source or target sequence.</param>
/// <param name="LearnedPositions">Learned position embeddings instead of the sinusoidal table.</param>
/// <param name="Activation">FFN activation.</param>
public sealed record TransformerConfig(long SourceVocabSize, long TargetVocabSize, long DModel = 512, long NumHeads = 8,
    int NumEncoderLayers = 6, int NumDecoderLayers = 6, long DimFeedforward = 2048, double Dropout = 0.1, bool NormFirst = false,
    bool TieOutputWeights = false, long MaxLength = 512, bool LearnedPositions = false,
    FeedForwardActivation Activation = FeedForwardActivation.ReLU);

/// <summary>
/// The encoder–decoder Transformer of "Attention Is All You Need": token embeddings scaled by √d_model plus positional
/// encodings, an encoder stack over the source, a decoder stack over the (shifted) target that cross-attends to the
/// encoder's output, and a linear output projection to target-vocabulary logits, optionally tied to the target
/// embedding. Batch-first: source ids <c>[B, S]</c>, target ids <c>[B, T]</c>, logits <c>[B, T, V]</c>.
/// <para>
/// Training (teacher forcing): feed <c>tgt = [BOS, y_1, ..., y_{n-1}]</c> and predict <c>[y_1, ..., y_n]</c>; the decoder's
/// self-attention is causal so position t only sees targets before it. Inference: <see cref="GreedyDecode"/>.
/// </para>
/// <para>
/// Unlike PyTorch's <c>nn.Transformer</c>, which always adds a final LayerNorm to both stacks, the post-LN model here
/// has none (as in the paper: every post-LN layer already ends in a LayerNorm); the pre-LN model has one per stack.
/// </para>
/// </summary>
public sealed class EncoderDecoderTransformer : nn.Module<Tensor, Tensor, Tensor>
{
    /// <summary>The configuration.</summary>
    public TransformerConfig Config { get; }
    /// <summary>Source token embeddings <c>[V_src, d]</c>.</summary>
    public readonly Embedding src_embed;
    /// <summary>Target token embeddings <c>[V_tgt, d]</c> (also the output projection when tied).</summary>
    public readonly Embedding tgt_embed;
    /// <summary>Positional encoding of the source (adds, then dropout).</summary>
    public nn.Module<Tensor, Tensor> src_pos;
    /// <summary>Positional encoding of the target.</summary>
    public nn.Module<Tensor, Tensor> tgt_pos;
    /// <summary>The encoder stack.</summary>
    public readonly TransformerEncoder encoder;
    /// <summary>The decoder stack.</summary>
    public readonly TransformerDecoder decoder;
    /// <summary>Output projection d → V_tgt; null when tied to <see cref="tgt_embed"/>.</summary>
    public readonly Linear? generator;

    /// <summary>Builds the model; weights initialised as described in the remarks of each part.</summary>
    /// <param name="config">The hyper-parameters.</param>
    public EncoderDecoderTransformer(TransformerConfig config) : base(nameof(EncoderDecoderTransformer))
    {
        Config = config;
        long d = config.DModel;
        if (config.SourceVocabSize < 1 || config.TargetVocabSize < 1)
            throw new ArgumentException($"Vocabulary sizes must be >= 1, got source {config.SourceVocabSize}, target {config.TargetVocabSize}.", nameof(config));
        src_embed = nn.Embedding(config.SourceVocabSize, d);
        tgt_embed = nn.Embedding(config.TargetVocabSize, d);
        src_pos = config.LearnedPositions ? new LearnedPositionalEmbedding(config.MaxLength, d, config.Dropout)
            : new SinusoidalPositionalEncoding(d, config.MaxLength, config.Dropout);
        tgt_pos = config.LearnedPositions ? new LearnedPositionalEmbedding(config.MaxLength, d, config.Dropout)
            : new SinusoidalPositionalEncoding(d, config.MaxLength, config.Dropout);
        encoder = new TransformerEncoder(
            Enumerable.Range(0, config.NumEncoderLayers).Select(_ => new TransformerEncoderLayer(d, config.NumHeads, config.DimFeedforward,
                config.Dropout, config.Activation, normFirst: config.NormFirst)),
            config.NormFirst ? nn.LayerNorm(d) : null);
        decoder = new TransformerDecoder(
            Enumerable.Range(0, config.NumDecoderLayers).Select(_ => new TransformerDecoderLayer(d, config.NumHeads, config.DimFeedforward,
                config.Dropout, config.Activation, normFirst: config.NormFirst)),
            config.NormFirst ? nn.LayerNorm(d) : null);
        generator = config.TieOutputWeights ? null : nn.Linear(d, config.TargetVocabSize);

        using (no_grad())
        {
            // As nn.Transformer: Xavier-uniform for every matrix in the stacks.
            foreach (var p in encoder.parameters().Concat(decoder.parameters()))
                if (p.dim() > 1) nn.init.xavier_uniform_(p);
            // Embeddings ~ N(0, 1/d): after the √d scale a token vector has unit-variance entries, comparable to the
            // positional encoding, and as a tied output matrix it gives logits of order 1.
            nn.init.normal_(src_embed.weight!, 0, 1 / Math.Sqrt(d));
            nn.init.normal_(tgt_embed.weight!, 0, 1 / Math.Sqrt(d));
        }
        RegisterComponents();
    }

    /// <summary>Teacher-forced logits: <c>Decode(tgt, Encode(src))</c>.</summary>
    /// <param name="src">Source ids <c>[B, S]</c> (int64).</param>
    /// <param name="tgt">Decoder input ids <c>[B, T]</c> (starting with BOS).</param>
    /// <returns>Logits <c>[B, T, V_tgt]</c>; position t predicts target token t+1 of the input.</returns>
    public override Tensor forward(Tensor src, Tensor tgt) => forward(src, tgt, null, null);

    /// <summary>Teacher-forced logits with padding masks.</summary>
    /// <param name="src">Source ids <c>[B, S]</c>.</param>
    /// <param name="tgt">Decoder input ids <c>[B, T]</c>.</param>
    /// <param name="srcKeyPaddingMask"><c>[B, S]</c> bool, true = padding.</param>
    /// <param name="tgtKeyPaddingMask"><c>[B, T]</c> bool, true = padding.</param>
    public Tensor forward(Tensor src, Tensor tgt, Tensor? srcKeyPaddingMask, Tensor? tgtKeyPaddingMask)
    {
        using var scope = NewDisposeScope();
        var memory = Encode(src, srcKeyPaddingMask);
        return Decode(tgt, memory, srcKeyPaddingMask, tgtKeyPaddingMask).MoveToOuterDisposeScope();
    }

    /// <summary>The encoder: <c>encoder(pos(src_embed(src)·√d))</c>, the "memory" <c>[B, S, d]</c>.</summary>
    /// <param name="src">Source ids <c>[B, S]</c>.</param>
    /// <param name="srcKeyPaddingMask"><c>[B, S]</c> bool, true = padding.</param>
    public Tensor Encode(Tensor src, Tensor? srcKeyPaddingMask = null)
    {
        CheckIds(src, Config.SourceVocabSize, nameof(src));
        using var scope = NewDisposeScope();
        var x = src_pos.forward(src_embed.forward(src).mul(Math.Sqrt(Config.DModel)));
        return encoder.forward(x, null, srcKeyPaddingMask).MoveToOuterDisposeScope();
    }

    /// <summary>The decoder and output projection: logits <c>[B, T, V_tgt]</c> for decoder inputs <c>tgt</c>.</summary>
    /// <param name="tgt">Decoder input ids <c>[B, T]</c>.</param>
    /// <param name="memory">Encoder output <c>[B, S, d]</c>.</param>
    /// <param name="memoryKeyPaddingMask"><c>[B, S]</c>, the source padding.</param>
    /// <param name="tgtKeyPaddingMask"><c>[B, T]</c>, the target padding.</param>
    public Tensor Decode(Tensor tgt, Tensor memory, Tensor? memoryKeyPaddingMask = null, Tensor? tgtKeyPaddingMask = null)
    {
        CheckIds(tgt, Config.TargetVocabSize, nameof(tgt));
        using var scope = NewDisposeScope();
        var y = tgt_pos.forward(tgt_embed.forward(tgt).mul(Math.Sqrt(Config.DModel)));
        var h = decoder.forward(y, memory, null, tgtKeyPaddingMask, memoryKeyPaddingMask, tgtIsCausal: true);
        var logits = generator is null ? nn.functional.linear(h, tgt_embed.weight!) : generator.forward(h);
        return logits.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Greedy decoding: encode once, then repeatedly run the decoder on the tokens so far and append the most probable
    /// next token. Runs in evaluation mode without gradients (the module's training mode is restored afterwards).
    /// The decoder is re-run on the whole prefix at every step (no key/value cache: simple, and cheap at toy sizes).
    /// </summary>
    /// <param name="src">Source ids <c>[B, S]</c>.</param>
    /// <param name="bosId">The start token every output begins with.</param>
    /// <param name="maxNewTokens">Tokens to generate at most.</param>
    /// <param name="eosId">Optional end token: a sequence that produced it is finished and padded with
    /// <paramref name="eosId"/>; decoding stops early when all are finished.</param>
    /// <param name="srcKeyPaddingMask"><c>[B, S]</c>, true = padding.</param>
    /// <returns>Ids <c>[B, 1 + n]</c>: BOS followed by the n ≤ maxNewTokens generated tokens.</returns>
    public Tensor GreedyDecode(Tensor src, long bosId, long maxNewTokens, long? eosId = null, Tensor? srcKeyPaddingMask = null)
    {
        if (maxNewTokens < 0 || maxNewTokens + 1 > Config.MaxLength)
            throw new ArgumentOutOfRangeException(nameof(maxNewTokens), $"maxNewTokens={maxNewTokens} must be in 0..MaxLength-1={Config.MaxLength - 1}.");
        bool wasTraining = training;
        eval();
        try
        {
            using var noGrad = no_grad();
            using var outer = NewDisposeScope();
            var memory = Encode(src, srcKeyPaddingMask);
            var ys = full(src.shape[0], 1, bosId, dtype: ScalarType.Int64, device: src.device);
            var finished = zeros(src.shape[0], dtype: ScalarType.Bool, device: src.device);
            for (long step = 0; step < maxNewTokens; step++)
            {
                using var scope = NewDisposeScope();
                var logits = Decode(ys, memory, srcKeyPaddingMask);
                var next = logits.select(1, -1).argmax(-1);                       // [B]
                if (eosId is long eos)
                {
                    next = where(finished, full_like(next, eos), next);
                    finished = finished.logical_or(next.eq(eos)).MoveToOuterDisposeScope();
                }
                ys = cat(new[] { ys, next.unsqueeze(1) }, 1).MoveToOuterDisposeScope();
                if (eosId is not null && finished.all().item<bool>()) break;
            }
            return ys.MoveToOuterDisposeScope();
        }
        finally
        {
            train(wasTraining);
        }
    }

    static void CheckIds(Tensor ids, long vocab, string name)
    {
        if (ids.dtype != ScalarType.Int64 || ids.dim() != 2)
            throw new ArgumentException($"{name} must be int64 token ids [B, T]; got {ids.dtype} {Shapes.Of(ids)}.", name);
        if (ids.numel() == 0) return;
        long lo = ids.min().item<long>(), hi = ids.max().item<long>();
        if (lo < 0 || hi >= vocab)
            throw new ArgumentOutOfRangeException(name, $"{name} contains ids in {lo}..{hi}, outside the vocabulary 0..{vocab - 1}.");
    }
}
