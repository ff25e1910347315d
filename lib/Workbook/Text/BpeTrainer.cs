using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.ML.Tokenizers;

namespace Workbook.Text;

/// <summary>One merge rule learnt by <see cref="BpeTrainer"/>: the adjacent pair (<paramref name="Left"/>, <paramref name="Right"/>) becomes token <paramref name="Id"/>.</summary>
/// <param name="Rank">The order it was learnt in (0 first); encoding applies lower ranks first.</param>
/// <param name="Left">The left token's id.</param>
/// <param name="Right">The right token's id.</param>
/// <param name="Id">The merged token's id (new, or an existing token with the same bytes).</param>
/// <param name="Count">How often the pair occurred in the training text when it was merged.</param>
public sealed record BpeMerge(int Rank, int Left, int Right, int Id, long Count);

/// <summary>
/// Trains a byte-level BPE tokenizer the minbpe way (Karpathy's minbpe <c>RegexTokenizer</c>, the GPT-2 recipe): split
/// the text into chunks with GPT-2's pre-tokenizer regex (<see cref="Gpt2Tokenizer.SplitPattern"/>), start from the
/// 256 byte values, then repeatedly count every adjacent pair of tokens inside the chunks and merge the most frequent
/// pair into a new token, until the vocabulary has the requested size.
/// <code>
/// var bpe = BpeTrainer.Train(text, vocabSize: 1024);   // 256 bytes + 767 merges + &lt;|endoftext|&gt;
/// int[] ids = bpe.Encode("To be, or not to be");
/// Gpt2Tokenizer same = bpe.ToTokenizer(folder);         // vocab.json + merges.txt, loaded by Microsoft.ML.Tokenizers
/// </code>
/// Ties (pairs with the same count) go to the smallest (left id, right id), so a run is reproducible. Counting is
/// incremental: the text is reduced to its distinct chunks with their frequencies, and a merge only recounts the
/// chunks that contain the merged pair.
/// </summary>
public static class BpeTrainer
{
    /// <summary>Learns merges from <paramref name="text"/> until the vocabulary holds <paramref name="vocabSize"/> tokens.</summary>
    /// <param name="text">The training text. <c>&lt;|endoftext|&gt;</c> in it separates documents (no merge crosses it).</param>
    /// <param name="vocabSize">Tokens in the result, counting the 256 bytes and the end-of-text token (GPT-2: 50,257).
    /// If the text runs out of pairs first, the vocabulary is smaller.</param>
    /// <param name="onMerge">Called after each merge (to show merges as they are learnt).</param>
    /// <exception cref="ArgumentException"><paramref name="vocabSize"/> is below 257.</exception>
    public static BpeModel Train(string text, int vocabSize, Action<BpeMerge>? onMerge = null)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (vocabSize < 257)
            throw new ArgumentException($"vocabSize must be at least 257 (256 bytes + <|endoftext|>), got {vocabSize}.", nameof(vocabSize));

        // The distinct chunks and how often each occurs: BPE never merges across chunks, so a chunk's count is all it needs.
        var chunkCounts = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var chunk in BpeModel.Chunks(text))
            chunkCounts[chunk] = chunkCounts.GetValueOrDefault(chunk) + 1;
        var words = chunkCounts.Keys.Select(c => Encoding.UTF8.GetBytes(c).Select(b => (int)b).ToList()).ToList();
        var counts = chunkCounts.Values.ToArray();

        var pairCounts = new Dictionary<long, long>();
        var pairWords = new Dictionary<long, HashSet<int>>();
        for (int w = 0; w < words.Count; w++) AddPairs(words[w], w, counts[w], pairCounts, pairWords);

        var tokenBytes = Enumerable.Range(0, 256).Select(b => new[] { (byte)b }).ToList();
        var byBytes = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int b = 0; b < 256; b++) byBytes[Convert.ToHexString(tokenBytes[b])] = b;
        var merges = new List<BpeMerge>();
        while (tokenBytes.Count + 1 < vocabSize)
        {
            long best = -1, bestCount = 0;
            foreach (var (pair, count) in pairCounts)
                if (count > bestCount || (count == bestCount && count > 0 && pair < best)) (best, bestCount) = (pair, count);
            if (bestCount <= 0) break; // every chunk is a single token

            int left = (int)(best >> 32), right = (int)(best & 0xFFFFFFFF);
            var merged = tokenBytes[left].Concat(tokenBytes[right]).ToArray();
            var key = Convert.ToHexString(merged);
            if (!byBytes.TryGetValue(key, out int id))
            {
                id = tokenBytes.Count;
                tokenBytes.Add(merged);
                byBytes[key] = id;
            }
            var merge = new BpeMerge(merges.Count, left, right, id, bestCount);
            merges.Add(merge);

            foreach (int w in pairWords[best].ToList())
            {
                var before = words[w];
                var after = MergePair(before, left, right, id);
                if (after.Count == before.Count) continue; // a stale index entry: the word no longer has the pair
                RemovePairs(before, counts[w], pairCounts);
                words[w] = after;
                AddPairs(after, w, counts[w], pairCounts, pairWords);
            }
            pairCounts.Remove(best);
            pairWords.Remove(best);
            onMerge?.Invoke(merge);
        }
        return new BpeModel(merges);
    }

    internal static long Key(int left, int right) => ((long)left << 32) | (uint)right;

    /// <summary>Replaces every (left, right) in <paramref name="symbols"/>, scanning left to right, by <paramref name="id"/>.</summary>
    internal static List<int> MergePair(List<int> symbols, int left, int right, int id)
    {
        var result = new List<int>(symbols.Count);
        for (int i = 0; i < symbols.Count; i++)
        {
            if (i + 1 < symbols.Count && symbols[i] == left && symbols[i + 1] == right) { result.Add(id); i++; }
            else result.Add(symbols[i]);
        }
        return result;
    }

    static void AddPairs(List<int> symbols, int word, long count, Dictionary<long, long> pairCounts, Dictionary<long, HashSet<int>> pairWords)
    {
        for (int i = 0; i + 1 < symbols.Count; i++)
        {
            long k = Key(symbols[i], symbols[i + 1]);
            pairCounts[k] = pairCounts.GetValueOrDefault(k) + count;
            if (!pairWords.TryGetValue(k, out var set)) pairWords[k] = set = new HashSet<int>();
            set.Add(word);
        }
    }

    static void RemovePairs(List<int> symbols, long count, Dictionary<long, long> pairCounts)
    {
        for (int i = 0; i + 1 < symbols.Count; i++)
        {
            long k = Key(symbols[i], symbols[i + 1]);
            long left = pairCounts[k] - count;
            if (left == 0) pairCounts.Remove(k); else pairCounts[k] = left;
        }
    }
}

/// <summary>
/// A byte-level BPE vocabulary learnt by <see cref="BpeTrainer"/>: ids 0–255 are the bytes, then one id per new merged
/// token in the order learnt, then <c>&lt;|endoftext|&gt;</c>. It encodes and decodes by itself (minbpe's algorithm) and
/// saves as GPT-2's <c>vocab.json</c> + <c>merges.txt</c>, which <see cref="Gpt2Tokenizer.Load"/> and
/// Microsoft.ML.Tokenizers' <see cref="BpeTokenizer"/> read and encode to the same ids.
/// </summary>
public sealed class BpeModel
{
    static readonly Regex Split = new(Gpt2Tokenizer.SplitPattern, RegexOptions.Compiled);
    readonly List<byte[]> _tokenBytes;
    readonly Dictionary<long, (int Rank, int Id)> _ranks = new();
    readonly Dictionary<string, int[]> _cache = new(StringComparer.Ordinal);

    internal BpeModel(IReadOnlyList<BpeMerge> merges)
    {
        Merges = merges;
        _tokenBytes = Enumerable.Range(0, 256).Select(b => new[] { (byte)b }).ToList();
        foreach (var m in merges)
        {
            if (m.Left >= _tokenBytes.Count || m.Right >= _tokenBytes.Count || m.Id > _tokenBytes.Count)
                throw new ArgumentException($"Merge {m.Rank} ({m.Left}, {m.Right}) → {m.Id} refers to a token that does not exist yet ({_tokenBytes.Count} so far).", nameof(merges));
            if (m.Id == _tokenBytes.Count) _tokenBytes.Add(_tokenBytes[m.Left].Concat(_tokenBytes[m.Right]).ToArray());
            _ranks.TryAdd(BpeTrainer.Key(m.Left, m.Right), (m.Rank, m.Id));
        }
        EndOfTextId = _tokenBytes.Count;
    }

    /// <summary>The merges in the order learnt.</summary>
    public IReadOnlyList<BpeMerge> Merges { get; }

    /// <summary>The id of <c>&lt;|endoftext|&gt;</c>, the last one.</summary>
    public int EndOfTextId { get; }

    /// <summary>Tokens: 256 bytes, the merged tokens, and <c>&lt;|endoftext|&gt;</c>.</summary>
    public int VocabSize => EndOfTextId + 1;

    /// <summary>The bytes a token stands for.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The id is outside the vocabulary.</exception>
    public byte[] TokenBytes(int id) => id == EndOfTextId ? Encoding.UTF8.GetBytes(Gpt2Tokenizer.EndOfTextToken)
        : id >= 0 && id < _tokenBytes.Count ? _tokenBytes[id]
        : throw new ArgumentOutOfRangeException(nameof(id), id, $"Token id must be in [0, {VocabSize}).");

    /// <summary>A token for humans: its text with spaces as '·' and newlines as '↵'; bytes that are not valid UTF-8 on their own as <c>&lt;0xE2&gt;</c>.</summary>
    public string TokenDisplay(int id)
    {
        var bytes = TokenBytes(id);
        try { return new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(bytes).Replace(" ", "·").Replace("\n", "↵").Replace("\t", "→").Replace("\r", "␍"); }
        catch (DecoderFallbackException) { return string.Concat(bytes.Select(b => $"<0x{b:X2}>")); }
    }

    /// <summary>The model with only the merges that fit a vocabulary of <paramref name="vocabSize"/> tokens: the same
    /// as training with that size, since BPE learns its merges in order.</summary>
    /// <exception cref="ArgumentException"><paramref name="vocabSize"/> is below 257 or above <see cref="VocabSize"/>.</exception>
    public BpeModel Truncate(int vocabSize)
    {
        if (vocabSize < 257 || vocabSize > VocabSize)
            throw new ArgumentException($"vocabSize must be in [257, {VocabSize}], got {vocabSize}.", nameof(vocabSize));
        // Training stops right after the merge that creates the last new token, so the result is that prefix.
        int lastId = vocabSize - 2; // ids 0 .. vocabSize − 2 are tokens, vocabSize − 1 is <|endoftext|>
        var kept = new List<BpeMerge>();
        if (lastId >= 256)
            foreach (var m in Merges)
            {
                kept.Add(m);
                if (m.Id == lastId) break;
            }
        return new BpeModel(kept);
    }

    /// <summary>Encodes text: GPT-2's regex chunks, each chunk's bytes merged lowest rank first (every occurrence of
    /// that pair, left to right) until no learnt pair is left. <c>&lt;|endoftext|&gt;</c> becomes <see cref="EndOfTextId"/>.</summary>
    public int[] Encode(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var ids = new List<int>();
        var parts = text.Split(Gpt2Tokenizer.EndOfTextToken);
        for (int p = 0; p < parts.Length; p++)
        {
            if (p > 0) ids.Add(EndOfTextId);
            foreach (Match m in Split.Matches(parts[p])) ids.AddRange(EncodeChunk(m.Value));
        }
        return ids.ToArray();
    }

    int[] EncodeChunk(string chunk)
    {
        if (_cache.TryGetValue(chunk, out var cached)) return cached;
        var symbols = Encoding.UTF8.GetBytes(chunk).Select(b => (int)b).ToList();
        while (symbols.Count > 1)
        {
            int bestRank = int.MaxValue, left = 0, right = 0, id = 0;
            for (int i = 0; i + 1 < symbols.Count; i++)
                if (_ranks.TryGetValue(BpeTrainer.Key(symbols[i], symbols[i + 1]), out var r) && r.Rank < bestRank)
                    (bestRank, left, right, id) = (r.Rank, symbols[i], symbols[i + 1], r.Id);
            if (bestRank == int.MaxValue) break;
            symbols = BpeTrainer.MergePair(symbols, left, right, id);
        }
        var result = symbols.ToArray();
        if (_cache.Count < 1_000_000) _cache[chunk] = result;
        return result;
    }

    /// <summary>Decodes ids: the tokens' bytes concatenated, read as UTF-8.</summary>
    public string Decode(IEnumerable<int> ids) => Encoding.UTF8.GetString(ids.SelectMany(TokenBytes).ToArray());

    /// <summary>The vocabulary in GPT-2's <c>vocab.json</c> form: each token's bytes through GPT-2's byte-to-character table.</summary>
    public IReadOnlyDictionary<string, int> Vocabulary()
    {
        var map = Gpt2Tokenizer.ByteToUnicode();
        var vocab = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int id = 0; id < _tokenBytes.Count; id++) vocab[new string(_tokenBytes[id].Select(b => map[b]).ToArray())] = id;
        vocab[Gpt2Tokenizer.EndOfTextToken] = EndOfTextId;
        return vocab;
    }

    /// <summary>The merges in GPT-2's <c>merges.txt</c> form ("left right", byte-mapped), in rank order.</summary>
    public IEnumerable<string> MergeLines()
    {
        var map = Gpt2Tokenizer.ByteToUnicode();
        string S(int id) => new(_tokenBytes[id].Select(b => map[b]).ToArray());
        return Merges.Select(m => $"{S(m.Left)} {S(m.Right)}");
    }

    /// <summary>Writes <c>vocab.json</c> and <c>merges.txt</c> (Hugging Face's GPT-2 files) into <paramref name="directory"/>.</summary>
    public (string VocabPath, string MergesPath) Save(string directory)
    {
        Directory.CreateDirectory(directory);
        var vocabPath = Path.Combine(directory, "vocab.json");
        var mergesPath = Path.Combine(directory, "merges.txt");
        File.WriteAllText(vocabPath, JsonSerializer.Serialize(Vocabulary().OrderBy(kv => kv.Value).ToDictionary(kv => kv.Key, kv => kv.Value)));
        File.WriteAllLines(mergesPath, MergeLines().Prepend("#version: 0.2"));
        return (vocabPath, mergesPath);
    }

    /// <summary>Saves the files into <paramref name="directory"/> and loads them with <see cref="Gpt2Tokenizer.Load"/>.</summary>
    public Gpt2Tokenizer ToTokenizer(string directory)
    {
        var (vocab, merges) = Save(directory);
        return Gpt2Tokenizer.Load(vocab, merges);
    }

    /// <summary>A Microsoft.ML.Tokenizers <see cref="BpeTokenizer"/> built in memory from this vocabulary and its merges,
    /// with GPT-2's byte-level mapping and pre-tokenizer.</summary>
    public BpeTokenizer ToBpeTokenizer()
    {
        var special = new Dictionary<string, int> { [Gpt2Tokenizer.EndOfTextToken] = EndOfTextId };
        return BpeTokenizer.Create(new BpeOptions(Vocabulary())
        {
            Merges = MergeLines().ToList(),
            ByteLevel = true,
            PreTokenizer = new RegexPreTokenizer(new Regex(Gpt2Tokenizer.SplitPattern, RegexOptions.Compiled), special),
            SpecialTokens = special,
        });
    }

    internal static IEnumerable<string> Chunks(string text)
    {
        foreach (var part in text.Split(Gpt2Tokenizer.EndOfTextToken))
            foreach (Match m in Split.Matches(part)) yield return m.Value;
    }
}
