using System.Runtime.CompilerServices;
using System.Text;
using TorchSharp;
using Workbook.Kernels;
using Workbook.Text;
using static TorchSharp.torch;

namespace Workbook.Gpt;

/// <summary>Why a sequence stopped.</summary>
public enum StopReason
{
    /// <summary>It produced <see cref="GenerationOptions.MaxNewTokens"/> tokens.</summary>
    MaxNewTokens,
    /// <summary>It produced the end-of-text token.</summary>
    EndOfText,
    /// <summary>Its text reached one of <see cref="GenerationOptions.StopStrings"/>.</summary>
    StopString,
}

/// <summary>One decoding step of a batch: the token each row picked.</summary>
/// <param name="Step">0-based index of the new token.</param>
/// <param name="Tokens">Each row's new token id, or -1 for a row that had already finished.</param>
/// <param name="Probabilities">The probability each token had under the distribution it was drawn from.</param>
public sealed record GenerationStep(int Step, long[] Tokens, float[] Probabilities);

/// <summary>A token produced while streaming.</summary>
/// <param name="Id">The token id.</param>
/// <param name="Text">The text this token completes (may be empty while a multi-byte character or a possible stop string is pending).</param>
/// <param name="Step">0-based index among the new tokens.</param>
/// <param name="Probability">Its probability under the distribution it was drawn from.</param>
/// <param name="StopReason">Set on the last token.</param>
public sealed record GeneratedToken(int Id, string Text, int Step, float Probability, StopReason? StopReason);

/// <summary>The result of generating from one prompt.</summary>
/// <param name="Prompt">The prompt.</param>
/// <param name="Text">The continuation (without the prompt, the end-of-text token or the stop string).</param>
/// <param name="TokenIds">The new token ids (including an end-of-text token that ended it).</param>
/// <param name="StopReason">Why it stopped.</param>
public sealed record GenerationResult(string Prompt, string Text, IReadOnlyList<int> TokenIds, StopReason StopReason);

/// <summary>
/// Text generation with a GPT-2 and its tokenizer: greedy, temperature, top-k, top-p, repetition penalty, stop on
/// end-of-text or stop strings, seeded sampling, batches of prompts, a KV cache, and streaming. The token-level loop is
/// <see cref="GenerateIds"/>; this class adds text, stop strings and streaming on top.
/// </summary>
public sealed class TextGenerator
{
    /// <summary>Pairs a model with a tokenizer.</summary>
    /// <exception cref="ArgumentException">The tokenizer has more tokens than the model's vocabulary (the checkpoint was not trained with it).</exception>
    public TextGenerator(GptModel model, Gpt2Tokenizer tokenizer)
    {
        if (tokenizer.VocabSize > model.Config.VocabSize)
            throw new ArgumentException($"Vocabulary mismatch: the tokenizer has {tokenizer.VocabSize} tokens but the model's vocabulary has {model.Config.VocabSize}; " +
                "this checkpoint was not trained with this tokenizer.", nameof(tokenizer));
        Model = model;
        Tokenizer = tokenizer;
    }

    /// <summary>The model.</summary>
    public GptModel Model { get; }

    /// <summary>The tokenizer.</summary>
    public Gpt2Tokenizer Tokenizer { get; }

    /// <summary>Continues <paramref name="prompt"/>.</summary>
    public GenerationResult Generate(string prompt, GenerationOptions? options = null) => Generate([prompt], options)[0];

    /// <summary>Continues a batch of prompts in one batched loop (left-padded; each row stops on its own).</summary>
    /// <exception cref="ArgumentException">A prompt is empty or longer than the context.</exception>
    public IReadOnlyList<GenerationResult> Generate(IReadOnlyList<string> prompts, GenerationOptions? options = null)
    {
        options = (options ?? new GenerationOptions()).Validate();
        var encoded = Encode(prompts);
        var rows = prompts.Select(_ => new RowText(Tokenizer, options.StopStrings)).ToArray();
        var ids = prompts.Select(_ => new List<int>()).ToArray();
        var reasons = new StopReason?[prompts.Count];
        foreach (var step in GenerateIds(Model, encoded, options, options.StopAtEndOfText ? Model.Config.EosTokenId : null, Tokenizer.VocabSize))
        {
            for (int b = 0; b < rows.Length; b++)
            {
                if (reasons[b] is not null || step.Tokens[b] < 0) continue;
                int id = (int)step.Tokens[b];
                ids[b].Add(id);
                if (options.StopAtEndOfText && id == Model.Config.EosTokenId) { reasons[b] = StopReason.EndOfText; continue; }
                if (rows[b].Push(id).Stopped) reasons[b] = StopReason.StopString;
            }
            if (reasons.All(r => r is not null)) break;
        }
        foreach (var (row, reason) in rows.Zip(reasons)) row.Finish(reason == StopReason.StopString);
        return prompts.Select((p, b) => new GenerationResult(p, rows[b].Text, ids[b], reasons[b] ?? StopReason.MaxNewTokens)).ToList();
    }

    /// <summary>
    /// Continues <paramref name="prompt"/> one token at a time: each token is yielded as soon as it is sampled, with
    /// the text it completes, so the caller can show the text appearing. The concatenated <see cref="GeneratedToken.Text"/>
    /// equals <see cref="Generate(string, GenerationOptions?)"/>'s text with the same options and seed.
    /// </summary>
    public IEnumerable<GeneratedToken> Stream(string prompt, GenerationOptions? options = null)
    {
        options = (options ?? new GenerationOptions()).Validate();
        var encoded = Encode([prompt]);
        var row = new RowText(Tokenizer, options.StopStrings);
        GeneratedToken? held = null; // each token is yielded one step late, so the last one can carry the stop reason and the flushed text
        foreach (var step in GenerateIds(Model, encoded, options, options.StopAtEndOfText ? Model.Config.EosTokenId : null, Tokenizer.VocabSize))
        {
            if (held is not null) yield return held;
            int id = (int)step.Tokens[0];
            float p = step.Probabilities[0];
            if (options.StopAtEndOfText && id == Model.Config.EosTokenId)
            {
                yield return new GeneratedToken(id, row.Finish(false), step.Step, p, StopReason.EndOfText);
                yield break;
            }
            var (text, stopped) = row.Push(id);
            if (stopped)
            {
                yield return new GeneratedToken(id, text, step.Step, p, StopReason.StopString);
                yield break;
            }
            held = new GeneratedToken(id, text, step.Step, p, null);
        }
        if (held is not null) yield return held with { Text = held.Text + row.Finish(false), StopReason = StopReason.MaxNewTokens };
    }

    /// <summary>
    /// <see cref="Stream"/> as an async stream: each step runs on the thread pool, so a UI or notebook stays responsive.
    /// </summary>
    public async IAsyncEnumerable<GeneratedToken> StreamAsync(string prompt, GenerationOptions? options = null, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        using var e = Stream(prompt, options).GetEnumerator();
        while (await Task.Run(e.MoveNext, cancellationToken).ConfigureAwait(false))
            yield return e.Current;
    }

    int[][] Encode(IReadOnlyList<string> prompts)
    {
        if (prompts.Count == 0) throw new ArgumentException("No prompts given.", nameof(prompts));
        var encoded = new int[prompts.Count][];
        for (int i = 0; i < prompts.Count; i++)
        {
            if (string.IsNullOrEmpty(prompts[i]))
                throw new ArgumentException($"Prompt {i} is empty; GPT-2 needs at least one token to condition on (use \"{Gpt2Tokenizer.EndOfTextToken}\" to start from nothing).", nameof(prompts));
            encoded[i] = Tokenizer.Encode(prompts[i]);
        }
        return encoded;
    }

    /// <summary>
    /// The token-level decoding loop. Prompts of different lengths are left-padded; padding is masked out of attention
    /// and each row's positions start at 0 at its first real token, so a row's tokens do not depend on the others'.
    /// With the KV cache the prompt is processed once and each step feeds only the new token; without it the whole
    /// sequence is recomputed every step (same results, O(T²) instead of O(T) work per token). When a sequence fills
    /// the context, both paths continue from its last half (the window slides, the cache is rebuilt).
    /// </summary>
    /// <param name="model">The model (switched to eval mode while generating, restored afterwards).</param>
    /// <param name="prompts">Token ids of each prompt.</param>
    /// <param name="options">Decoding options.</param>
    /// <param name="eosId">A row finishes after producing this token (null: never).</param>
    /// <param name="vocabLimit">Tokens at or above this id are never produced (a model whose embedding is padded beyond the tokenizer).</param>
    /// <exception cref="ArgumentException">A prompt is empty or longer than the context, or an id is outside the vocabulary.</exception>
    public static IEnumerable<GenerationStep> GenerateIds(GptModel model, IReadOnlyList<IReadOnlyList<int>> prompts, GenerationOptions options, int? eosId = null, int? vocabLimit = null)
    {
        options.Validate();
        var cfg = model.Config;
        if (prompts.Count == 0) throw new ArgumentException("No prompts given.", nameof(prompts));
        for (int i = 0; i < prompts.Count; i++)
        {
            if (prompts[i].Count == 0) throw new ArgumentException($"Prompt {i} has no tokens; generation needs at least one.", nameof(prompts));
            if (prompts[i].Count > cfg.MaxLength)
                throw new ArgumentException($"Prompt {i} has {prompts[i].Count} tokens, more than the model's context of {cfg.MaxLength}.", nameof(prompts));
            var bad = prompts[i].FirstOrDefault(id => id < 0 || id >= cfg.VocabSize, -1);
            if (bad != -1 || prompts[i].Contains(-1)) throw new ArgumentException($"Prompt {i} has token id {bad}, outside the model's vocabulary [0, {cfg.VocabSize}).", nameof(prompts));
        }
        return Run(model, prompts, options, eosId, vocabLimit);
    }

    static IEnumerable<GenerationStep> Run(GptModel model, IReadOnlyList<IReadOnlyList<int>> prompts, GenerationOptions options, int? eosId, int? vocabLimit)
    {
        var cfg = model.Config;
        int B = prompts.Count, L = prompts.Max(p => p.Count);
        var device = model.Device;
        var pad = prompts.Select(p => L - p.Count).ToArray();        // left padding of each row
        var seq = new List<long[]>();                                 // the padded sequence, one column per position
        for (int j = 0; j < L; j++) seq.Add(Enumerable.Range(0, B).Select(b => j < pad[b] ? 0L : prompts[b][j - pad[b]]).ToArray());
        var done = new bool[B];
        int windowStart = 0, fed = 0;
        bool wasTraining = model.training;
        model.eval();
        using var cache = options.UseKvCache ? new KvCache(cfg, B, cfg.MaxLength, device) : null;
        using var generator = options.Seed is long seed && !options.IsGreedy ? new Generator((ulong)seed, device) : null;
        using var seen = options.RepetitionPenalty != 1 ? zeros(B, cfg.VocabSize, dtype: ScalarType.Bool, device: device).DetachFromDisposeScope() : null;
        if (seen is not null)
            for (int b = 0; b < B; b++)
                foreach (var id in prompts[b]) seen[b, id] = tensor(true);
        try
        {
            for (int step = 0; step < options.MaxNewTokens; step++)
            {
                if (seq.Count - windowStart > cfg.MaxLength) // context full: continue from the last half
                {
                    windowStart = seq.Count - Math.Max(1, cfg.MaxLength / 2);
                    cache?.Reset();
                    fed = 0;
                }
                long[] next;
                float[] probs;
                using (var scope = NewDisposeScope())
                using (no_grad())
                {
                    int total = seq.Count - windowStart, from = cache is null ? 0 : fed, T = total - from;
                    // One new token: the whole step (forward and sampling) runs libtorch on one thread, so that no
                    // OpenMP worker left spinning by the sampling ops competes with the MatVec kernel's threads.
                    using var decode = B * T == 1 && device.type == DeviceType.CPU ? InferenceLinear.DecodeScope() : null;
                    var ids = new long[B * T];
                    var positions = new long[B * T];
                    for (int t = 0; t < T; t++)
                    {
                        int j = windowStart + from + t;
                        for (int b = 0; b < B; b++)
                        {
                            ids[b * T + t] = seq[j][b];
                            positions[b * T + t] = Math.Max(0, j - Math.Max(windowStart, pad[b]));
                        }
                    }
                    Tensor? padding = null;
                    if (pad.Any(p => p > windowStart))
                    {
                        var mask = new bool[B * total];
                        for (int b = 0; b < B; b++)
                            for (int s = 0; s < total; s++) mask[b * total + s] = windowStart + s < pad[b];
                        padding = tensor(mask, [B, total], device: device);
                    }
                    var logits = model.Forward(tensor(ids, [B, T], device: device), cache, tensor(positions, [B, T], device: device), padding, lastPositionOnly: true);
                    fed = total;
                    var last = logits.select(1, 0);
                    if (vocabLimit is int limit && limit < cfg.VocabSize)
                        last = last.index_fill(-1, arange(limit, cfg.VocabSize, device: device), double.NegativeInfinity);
                    var (nextIds, nextProbs) = Sampling.Next(last, options, seen, generator);
                    next = nextIds.cpu().data<long>().ToArray();
                    probs = nextProbs.cpu().to(ScalarType.Float32).data<float>().ToArray();
                }
                var tokens = new long[B];
                for (int b = 0; b < B; b++)
                {
                    tokens[b] = done[b] ? -1 : next[b];
                    if (done[b]) next[b] = eosId ?? 0; // finished rows keep being fed a placeholder; their output is ignored
                    else if (next[b] == eosId) done[b] = true;
                    if (seen is not null && tokens[b] >= 0) seen[b, next[b]] = tensor(true);
                }
                seq.Add(next);
                yield return new GenerationStep(step, tokens, probs);
                if (done.All(d => d)) yield break;
            }
        }
        finally
        {
            if (wasTraining) model.train();
        }
    }

    /// <summary>One row's text: incremental UTF-8 decoding plus holding back text that may be the start of a stop string.</summary>
    sealed class RowText(Gpt2Tokenizer tokenizer, IReadOnlyList<string> stopStrings)
    {
        readonly Gpt2Tokenizer.StreamDecoder _decoder = tokenizer.CreateStreamDecoder();
        readonly StringBuilder _emitted = new();
        string _pending = "";

        /// <summary>Adds a token; returns the text that can be released now and whether a stop string was reached.</summary>
        public (string Text, bool Stopped) Push(int id)
        {
            _pending += _decoder.Push(id);
            int cut = -1;
            foreach (var s in stopStrings)
            {
                int at = _pending.IndexOf(s, StringComparison.Ordinal);
                if (at >= 0 && (cut < 0 || at < cut)) cut = at;
            }
            if (cut >= 0) return (Release(cut), true);
            int hold = 0; // the longest tail of the pending text that could still grow into a stop string
            foreach (var s in stopStrings)
                for (int n = Math.Min(s.Length - 1, _pending.Length); n > hold; n--)
                    if (string.CompareOrdinal(_pending, _pending.Length - n, s, 0, n) == 0) { hold = n; break; }
            return (Release(_pending.Length - hold), false);
        }

        string Release(int count)
        {
            var text = _pending[..count];
            _pending = _pending[count..];
            _emitted.Append(text);
            return text;
        }

        /// <summary>All text released so far.</summary>
        public string Text => _emitted.ToString();

        /// <summary>Releases what is still held back (nothing after a stop string) and returns it.</summary>
        public string Finish(bool stopped)
        {
            if (stopped) return "";
            var rest = _pending + _decoder.Flush();
            _pending = "";
            _emitted.Append(rest);
            return rest;
        }
    }
}
