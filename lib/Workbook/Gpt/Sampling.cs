using TorchSharp;
using static TorchSharp.torch;

namespace Workbook.Gpt;

/// <summary>How a <see cref="TextGenerator"/> picks tokens and when it stops.</summary>
public sealed record GenerationOptions
{
    /// <summary>At most this many new tokens.</summary>
    public int MaxNewTokens { get; init; } = 50;

    /// <summary>Divides the logits before the softmax: &lt; 1 sharpens, &gt; 1 flattens. 0 means greedy (always the argmax). Must be finite.</summary>
    public double Temperature { get; init; } = 1.0;

    /// <summary>Keep only the k most likely tokens (0 = off).</summary>
    public int TopK { get; init; }

    /// <summary>Nucleus sampling: keep the smallest set of most likely tokens whose probability mass is ≥ p (1 = off).</summary>
    public double TopP { get; init; } = 1.0;

    /// <summary>CTRL's repetition penalty: logits of tokens already in the text are divided by it if positive, multiplied if negative (1 = off).</summary>
    public double RepetitionPenalty { get; init; } = 1.0;

    /// <summary>Seed of the sampler's own random generator, for reproducible samples; null uses torch's global generator.</summary>
    public long? Seed { get; init; }

    /// <summary>Stop a sequence when it produces the end-of-text token (which is not part of the returned text).</summary>
    public bool StopAtEndOfText { get; init; } = true;

    /// <summary>Stop a sequence when its text contains one of these; the text is cut before it.</summary>
    public IReadOnlyList<string> StopStrings { get; init; } = [];

    /// <summary>Use the key/value cache (incremental decoding). Off recomputes the whole sequence at every step.</summary>
    public bool UseKvCache { get; init; } = true;

    /// <summary>Greedy decoding: temperature 0.</summary>
    public static GenerationOptions Greedy => new() { Temperature = 0 };

    /// <summary>True when no randomness is involved.</summary>
    public bool IsGreedy => Temperature == 0;

    /// <summary>Checks the values.</summary>
    /// <exception cref="ArgumentException">A value is out of range; the message names it.</exception>
    public GenerationOptions Validate()
    {
        if (MaxNewTokens < 0) throw new ArgumentException($"MaxNewTokens must be ≥ 0, got {MaxNewTokens}.");
        if (!(Temperature >= 0) || double.IsInfinity(Temperature))
            throw new ArgumentException($"Temperature must be finite and ≥ 0 (0 = greedy), got {Temperature}." +
                (double.IsPositiveInfinity(Temperature) ? " (+∞ would sample uniformly from the whole vocabulary.)" : ""));
        if (TopK < 0) throw new ArgumentException($"TopK must be ≥ 0 (0 = off), got {TopK}.");
        if (TopP is <= 0 or > 1 || double.IsNaN(TopP)) throw new ArgumentException($"TopP must be in (0, 1], got {TopP}.");
        if (RepetitionPenalty <= 0 || double.IsNaN(RepetitionPenalty)) throw new ArgumentException($"RepetitionPenalty must be > 0 (1 = off), got {RepetitionPenalty}.");
        if (StopStrings is null) throw new ArgumentException("StopStrings must not be null; use [] for no stop strings.");
        if (StopStrings.Any(string.IsNullOrEmpty)) throw new ArgumentException("StopStrings must not contain null or empty strings.");
        return this;
    }
}

/// <summary>
/// The decoding strategies as functions on a batch of next-token logits <c>[B, V]</c>, so each step can be shown on
/// its own: every filter returns new logits with the removed tokens set to -inf (probability 0 after the softmax).
/// </summary>
public static class Sampling
{
    /// <summary>
    /// Divides by the temperature (finite T &gt; 0). Below 1 each row's maximum is subtracted first: the softmax is the
    /// same, but a tiny T (say 1e-300, which is 0 in float32) then drives the other logits to -∞ and keeps the maximum
    /// at 0 (the argmax, the T → 0 limit) instead of overflowing them to ±∞ or NaN, which would make the softmax NaN.
    /// </summary>
    public static Tensor ApplyTemperature(Tensor logits, double temperature)
    {
        if (!(temperature > 0) || double.IsInfinity(temperature))
            throw new ArgumentOutOfRangeException(nameof(temperature), temperature, "Temperature must be finite and > 0 here; 0 means greedy (argmax).");
        if (temperature >= 1) return logits / temperature;
        using var scope = NewDisposeScope();
        var shifted = logits - logits.amax([-1], keepdim: true); // ≤ 0, and 0 at each row's maximum
        // 0 / T stays 0 even where T rounds to 0 in the logits' dtype (0 / 0 would be NaN).
        return where(shifted.eq(0), zeros_like(shifted), shifted / temperature).MoveToOuterDisposeScope();
    }

    /// <summary>Keeps exactly the <paramref name="k"/> largest logits per row (ties broken by index), the rest -inf.</summary>
    public static Tensor TopK(Tensor logits, int k)
    {
        if (k <= 0) throw new ArgumentOutOfRangeException(nameof(k), k, "k must be positive.");
        if (k >= logits.shape[^1]) return logits.clone();
        using var scope = NewDisposeScope();
        var (values, indices) = logits.topk(k, dim: -1);
        return full_like(logits, double.NegativeInfinity).scatter(-1, indices, values).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Nucleus (top-p) filtering (Holtzman et al. 2019): sort the probabilities in decreasing order and keep the
    /// smallest prefix whose mass is ≥ <paramref name="p"/>. A token is dropped when the mass of the tokens before it
    /// already reaches p; the most likely token is always kept.
    /// </summary>
    public static Tensor TopP(Tensor logits, double p)
    {
        if (p is <= 0 or > 1) throw new ArgumentOutOfRangeException(nameof(p), p, "p must be in (0, 1].");
        if (p >= 1) return logits.clone();
        using var scope = NewDisposeScope();
        var (sorted, order) = logits.sort(dim: -1, descending: true);
        var probs = sorted.softmax(-1);
        var massBefore = probs.cumsum(-1) - probs;
        var drop = massBefore.ge(p);
        var filteredSorted = sorted.masked_fill(drop, double.NegativeInfinity);
        return full_like(logits, double.NegativeInfinity).scatter(-1, order, filteredSorted).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// CTRL's repetition penalty (Keskar et al. 2019): for every token marked in <paramref name="seen"/> (bool <c>[B, V]</c>),
    /// a positive logit is divided by <paramref name="penalty"/> and a negative one multiplied, so it always becomes less likely.
    /// </summary>
    public static Tensor ApplyRepetitionPenalty(Tensor logits, Tensor seen, double penalty)
    {
        using var scope = NewDisposeScope();
        var penalised = where(logits.gt(0), logits / penalty, logits * penalty);
        return where(seen, penalised, logits).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The logits after all of <paramref name="options"/>' filters, in Hugging Face's order: repetition penalty,
    /// temperature, top-k, top-p. Greedy options only apply the repetition penalty.
    /// </summary>
    public static Tensor Process(Tensor logits, GenerationOptions options, Tensor? seen = null)
    {
        using var scope = NewDisposeScope();
        var x = logits;
        if (options.RepetitionPenalty != 1 && seen is not null) x = ApplyRepetitionPenalty(x, seen, options.RepetitionPenalty);
        if (!options.IsGreedy)
        {
            if (options.Temperature != 1) x = ApplyTemperature(x, options.Temperature);
            if (options.TopK > 0) x = TopK(x, options.TopK);
            if (options.TopP < 1) x = TopP(x, options.TopP);
        }
        return (ReferenceEquals(x, logits) ? logits.clone() : x).MoveToOuterDisposeScope();
    }

    /// <summary>The probability distribution that <see cref="Next"/> samples from (one-hot on the argmax when greedy).</summary>
    public static Tensor Distribution(Tensor logits, GenerationOptions options, Tensor? seen = null)
    {
        using var scope = NewDisposeScope();
        var processed = Process(logits, options, seen);
        Tensor probs;
        if (options.IsGreedy)
        {
            var best = processed.argmax(-1, keepdim: true);
            probs = zeros_like(processed).scatter_(-1, best, ones(best.shape, dtype: processed.dtype, device: processed.device));
        }
        else probs = processed.softmax(-1);
        return probs.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Picks the next token of each row: the argmax when greedy, otherwise a draw from <see cref="Distribution"/>
    /// using <paramref name="generator"/> (or torch's global generator). Returns the ids <c>[B]</c> and their probabilities.
    /// </summary>
    public static (Tensor Ids, Tensor Probabilities) Next(Tensor logits, GenerationOptions options, Tensor? seen = null, Generator? generator = null)
    {
        using var scope = NewDisposeScope();
        var probs = Distribution(logits, options, seen);
        var ids = options.IsGreedy ? probs.argmax(-1) : probs.multinomial(1, generator: generator).squeeze(-1);
        var chosen = probs.gather(-1, ids.unsqueeze(-1)).squeeze(-1);
        return (ids.MoveToOuterDisposeScope(), chosen.MoveToOuterDisposeScope());
    }
}
