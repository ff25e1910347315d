using TorchSharp;
using static TorchSharp.torch;

namespace Workbook.Transformers;

/// <summary>What the model must do with a digit sequence.</summary>
public enum DigitTaskKind
{
    /// <summary>Output the digits in reverse order: 3 1 4 → 4 1 3.</summary>
    Reverse,
    /// <summary>Output the digits sorted ascending: 3 1 4 → 1 3 4.</summary>
    Sort,
    /// <summary>Output the digits unchanged.</summary>
    Copy,
}

/// <summary>
/// A teacher-forcing batch for an encoder–decoder model. Source <c>[B, S]</c> and its padding mask (true = PAD);
/// decoder input <c>[B, T]</c> = BOS followed by the answer; target <c>[B, T]</c> = the answer followed by EOS, PAD after.
/// </summary>
/// <param name="Source">Source ids, PAD-padded to the task's maximum length.</param>
/// <param name="SourcePadding">Bool <c>[B, S]</c>, true at PAD.</param>
/// <param name="DecoderInput">BOS, answer, PAD… (the target shifted right by one).</param>
/// <param name="Target">Answer, EOS, PAD… (ignore PAD in the loss).</param>
public sealed record Seq2SeqBatch(Tensor Source, Tensor SourcePadding, Tensor DecoderInput, Tensor Target) : IDisposable
{
    /// <summary>Disposes the four tensors.</summary>
    public void Dispose()
    {
        Source.Dispose(); SourcePadding.Dispose(); DecoderInput.Dispose(); Target.Dispose();
    }
}

/// <summary>
/// A toy sequence-to-sequence task for training a small Transformer in seconds: random digit sequences of length
/// <c>minLength..maxLength</c> and their reversal (or sorted order, or copy). Token ids: digits 0–9, then
/// <see cref="Pad"/> = 10, <see cref="Bos"/> = 11, <see cref="Eos"/> = 12. The source vocabulary is digits + PAD (11),
/// the target vocabulary all 13. A held-out test set is drawn first and every training sample is guaranteed not to be
/// in it, so test accuracy measures generalisation to unseen sequences.
/// </summary>
public sealed class DigitSequenceTask
{
    /// <summary>Padding id (source and target).</summary>
    public const long Pad = 10;
    /// <summary>Start-of-sequence id (decoder input only).</summary>
    public const long Bos = 11;
    /// <summary>End-of-sequence id (targets only).</summary>
    public const long Eos = 12;
    /// <summary>Source vocabulary size: digits and PAD.</summary>
    public const long SourceVocabSize = 11;
    /// <summary>Target vocabulary size: digits, PAD, BOS, EOS.</summary>
    public const long TargetVocabSize = 13;

    readonly Random _random;
    readonly HashSet<string> _heldOut = new();

    /// <summary>The transformation.</summary>
    public DigitTaskKind Kind { get; }
    /// <summary>Shortest sequence.</summary>
    public int MinLength { get; }
    /// <summary>Longest sequence; sources are padded to it and targets to it + 1 (room for EOS).</summary>
    public int MaxLength { get; }

    /// <summary>Creates the task.</summary>
    /// <param name="kind">Reverse, sort or copy.</param>
    /// <param name="minLength">Shortest sequence (≥ 1).</param>
    /// <param name="maxLength">Longest sequence.</param>
    /// <param name="seed">Seed of the task's own random generator (sequences are reproducible).</param>
    public DigitSequenceTask(DigitTaskKind kind = DigitTaskKind.Reverse, int minLength = 3, int maxLength = 10, int seed = 0)
    {
        if (minLength < 1 || maxLength < minLength)
            throw new ArgumentOutOfRangeException(nameof(maxLength), $"Need 1 <= minLength <= maxLength, got {minLength}..{maxLength}.");
        Kind = kind;
        MinLength = minLength;
        MaxLength = maxLength;
        _random = new Random(seed);
    }

    /// <summary>The answer for a sequence.</summary>
    /// <param name="digits">Digits 0–9.</param>
    public long[] Solve(IReadOnlyList<long> digits) => Kind switch
    {
        DigitTaskKind.Reverse => digits.Reverse().ToArray(),
        DigitTaskKind.Sort => digits.OrderBy(d => d).ToArray(),
        _ => digits.ToArray(),
    };

    /// <summary>
    /// Draws <paramref name="count"/> distinct sequences and reserves them: <see cref="Sample"/> never returns them.
    /// Call it once, before training.
    /// </summary>
    /// <param name="count">Number of test sequences (must be far below the number of possible sequences).</param>
    public IReadOnlyList<long[]> HeldOut(int count)
    {
        var result = new List<long[]>();
        while (result.Count < count)
        {
            var s = RandomSequence();
            if (_heldOut.Add(Key(s))) result.Add(s);
        }
        return result;
    }

    /// <summary>Random training sequences, none of them in the held-out set.</summary>
    /// <param name="count">How many.</param>
    public IReadOnlyList<long[]> Sample(int count)
    {
        var result = new List<long[]>(count);
        while (result.Count < count)
        {
            var s = RandomSequence();
            if (!_heldOut.Contains(Key(s))) result.Add(s);
        }
        return result;
    }

    /// <summary>Whether a sequence belongs to the held-out set.</summary>
    /// <param name="digits">The sequence.</param>
    public bool IsHeldOut(IReadOnlyList<long> digits) => _heldOut.Contains(Key(digits));

    /// <summary>Builds the padded tensors for teacher forcing (see <see cref="Seq2SeqBatch"/>).</summary>
    /// <param name="sequences">Source digit sequences, each of length ≤ <see cref="MaxLength"/>.</param>
    /// <param name="device">Where to put the tensors.</param>
    public Seq2SeqBatch Batch(IReadOnlyList<long[]> sequences, Device? device = null)
    {
        int B = sequences.Count, S = MaxLength, T = MaxLength + 1;
        var src = new long[B * S];
        var input = new long[B * T];
        var target = new long[B * T];
        for (int b = 0; b < B; b++)
        {
            var s = sequences[b];
            if (s.Length > MaxLength)
                throw new ArgumentException($"Sequence {b} has length {s.Length}, more than MaxLength={MaxLength}.", nameof(sequences));
            var answer = Solve(s);
            for (int t = 0; t < S; t++) src[b * S + t] = t < s.Length ? s[t] : Pad;
            for (int t = 0; t < T; t++)
            {
                input[b * T + t] = t == 0 ? Bos : t - 1 < answer.Length ? answer[t - 1] : Pad;
                target[b * T + t] = t < answer.Length ? answer[t] : t == answer.Length ? Eos : Pad;
            }
        }
        var source = tensor(src, new long[] { B, S }, device: device);
        return new Seq2SeqBatch(source, source.eq(Pad), tensor(input, new long[] { B, T }, device: device),
            tensor(target, new long[] { B, T }, device: device));
    }

    /// <summary>
    /// Fraction of rows generated exactly right: the generated tokens after BOS must equal the target up to and
    /// including its EOS (anything after EOS is ignored).
    /// </summary>
    /// <param name="generated">Greedy output <c>[B, 1 + n]</c>, starting with BOS.</param>
    /// <param name="target">Targets <c>[B, T]</c> as in <see cref="Seq2SeqBatch.Target"/>.</param>
    public static double ExactMatch(Tensor generated, Tensor target) => Correct(generated, target).Count(c => c) / (double)target.shape[0];

    /// <summary>Per row, whether the generated answer is exactly right (see <see cref="ExactMatch"/>).</summary>
    /// <param name="generated">Greedy output <c>[B, 1 + n]</c>, starting with BOS.</param>
    /// <param name="target">Targets <c>[B, T]</c>.</param>
    public static bool[] Correct(Tensor generated, Tensor target)
    {
        if (generated.shape[0] != target.shape[0])
            throw new ArgumentException($"generated has {generated.shape[0]} rows but target has {target.shape[0]}.", nameof(generated));
        using var g = generated.cpu().to_type(ScalarType.Int64);
        using var t = target.cpu().to_type(ScalarType.Int64);
        var gen = g.data<long>().ToArray();
        var tgt = t.data<long>().ToArray();
        int B = (int)target.shape[0], G = (int)generated.shape[1], T = (int)target.shape[1];
        var result = new bool[B];
        for (int b = 0; b < B; b++)
        {
            bool ok = true;
            for (int i = 0; i < T; i++)
            {
                long want = tgt[b * T + i];
                if (want == Pad) break;
                if (i + 1 >= G || gen[b * G + i + 1] != want) { ok = false; break; }
                if (want == Eos) break;
            }
            result[b] = ok;
        }
        return result;
    }

    /// <summary>Readable form of token ids: digits as is, BOS/EOS/PAD by name, stopping after EOS.</summary>
    /// <param name="ids">Token ids.</param>
    public static string Format(IEnumerable<long> ids)
    {
        var parts = new List<string>();
        foreach (var id in ids)
        {
            parts.Add(id switch { Pad => "·", Bos => "<s>", Eos => "</s>", _ => id.ToString() });
            if (id == Eos) break;
        }
        return string.Join(" ", parts);
    }

    long[] RandomSequence() =>
        Enumerable.Range(0, _random.Next(MinLength, MaxLength + 1)).Select(_ => (long)_random.Next(10)).ToArray();

    static string Key(IReadOnlyList<long> s) => string.Concat(s);
}
