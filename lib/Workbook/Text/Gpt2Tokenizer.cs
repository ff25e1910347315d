using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.ML.Tokenizers;
using Workbook.Data;

namespace Workbook.Text;

/// <summary>
/// GPT-2's byte-level BPE tokenizer (Radford et al. 2019), loaded from the Hugging Face files <c>vocab.json</c> and
/// <c>merges.txt</c> (the same bytes as OpenAI's <c>encoder.json</c>/<c>vocab.bpe</c>).
/// <para>
/// How GPT-2 tokenizes: the text is split into "words" by a regex (contractions, letters with an optional leading
/// space, digits, punctuation runs, whitespace); each word's UTF-8 bytes are mapped one-to-one onto printable
/// characters (space becomes 'Ġ', newline 'Ċ'); then the 50,000 merge rules are applied in rank order, and each
/// resulting piece is looked up in the 50,257-entry vocabulary. Because every byte has a token, any Unicode text
/// encodes, and decoding (concatenate the tokens' bytes, read UTF-8) gives the text back exactly.
/// </para>
/// <para>
/// Encoding is done by Microsoft.ML.Tokenizers' <see cref="BpeTokenizer"/> with <c>ByteLevel = true</c> and the GPT-2
/// pre-tokenizer regex: its default options would skip the byte mapping and give wrong ids. Decoding uses the byte
/// table directly, which also lets <see cref="StreamDecoder"/> emit text while a multi-byte character is still
/// arriving token by token.
/// </para>
/// <para>
/// <b>The special token in the text.</b> <see cref="Encode(string)"/> recognises <c>&lt;|endoftext|&gt;</c> written in
/// the input and gives its id 50256, as Hugging Face's <c>GPT2Tokenizer</c> does. <c>Encode(text, specialTokens: false)</c>
/// treats it as plain text, 7 ordinary tokens (<c>&lt;</c> <c>|</c> <c>end</c> <c>of</c> <c>text</c> <c>|</c> <c>&gt;</c>),
/// as OpenAI's original <c>encoder.py</c> and tiktoken's <c>encode_ordinary</c> do: use it for text from users or
/// from the web, where the string may occur and must not end a document.
/// </para>
/// </summary>
public sealed class Gpt2Tokenizer
{
    /// <summary>The end-of-text token string.</summary>
    public const string EndOfTextToken = "<|endoftext|>";

    /// <summary>The id of <c>&lt;|endoftext|&gt;</c> in GPT-2's vocabulary.</summary>
    public const int EndOfTextId = 50256;

    /// <summary>
    /// GPT-2's pre-tokenizer pattern (from OpenAI's encoder.py): contractions, an optional space followed by letters,
    /// digits or other symbols, and whitespace (a run of spaces keeps its last space for the next word).
    /// </summary>
    public const string SplitPattern = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

    static Gpt2Tokenizer? _default;

    readonly BpeTokenizer _bpe;
    readonly Lazy<BpeTokenizer> _ordinary; // the same BPE without special tokens (built on first use)
    readonly string[] _tokens;     // id -> vocabulary string (byte-mapped characters)
    readonly byte[][] _tokenBytes; // id -> the UTF-8 bytes it stands for
    readonly Dictionary<string, int> _vocab;

    Gpt2Tokenizer(BpeTokenizer bpe, Func<BpeTokenizer> ordinary, Dictionary<string, int> vocab, string vocabPath, string mergesPath)
    {
        _bpe = bpe;
        _ordinary = new Lazy<BpeTokenizer>(ordinary);
        _vocab = vocab;
        VocabPath = vocabPath;
        MergesPath = mergesPath;
        int n = vocab.Values.Max() + 1;
        _tokens = new string[n];
        foreach (var (s, id) in vocab) _tokens[id] = s;
        var missing = Enumerable.Range(0, n).Where(i => _tokens[i] is null).Take(5).ToList();
        if (missing.Count > 0)
            throw new InvalidDataException($"'{vocabPath}': token ids are not contiguous, e.g. no token has id {string.Join(", ", missing)}.");
        var unicodeToByte = UnicodeToByte();
        _tokenBytes = new byte[n][];
        for (int id = 0; id < n; id++)
        {
            var s = _tokens[id];
            if (s == EndOfTextToken) { _tokenBytes[id] = Encoding.UTF8.GetBytes(s); continue; }
            var bytes = new byte[s.Length];
            for (int i = 0; i < s.Length; i++)
                bytes[i] = unicodeToByte.TryGetValue(s[i], out var b) ? b
                    : throw new InvalidDataException($"'{vocabPath}': token {id} '{s}' has character U+{(int)s[i]:X4}, which is not in GPT-2's byte-to-unicode table; this is not a byte-level BPE vocabulary.");
            _tokenBytes[id] = bytes;
        }
    }

    /// <summary>The vocabulary file this tokenizer was loaded from.</summary>
    public string VocabPath { get; }

    /// <summary>The merges file this tokenizer was loaded from.</summary>
    public string MergesPath { get; }

    /// <summary>Number of tokens (50,257 for GPT-2: 256 bytes + 50,000 merges + end-of-text).</summary>
    public int VocabSize => _tokens.Length;

    /// <summary>The underlying Microsoft.ML.Tokenizers tokenizer (for its offsets and counting APIs).</summary>
    public Tokenizer Inner => _bpe;

    /// <summary>GPT-2's tokenizer from the repository's <c>data/gpt2/</c> folder (loaded once, then shared).</summary>
    public static Gpt2Tokenizer Default => _default ??= Load(DataPaths.File("gpt2", "vocab.json"), DataPaths.File("gpt2", "merges.txt"));

    /// <summary>Loads a GPT-2 byte-level BPE tokenizer from Hugging Face's <c>vocab.json</c> and <c>merges.txt</c>.</summary>
    /// <exception cref="FileNotFoundException">A file is missing.</exception>
    /// <exception cref="InvalidDataException">The vocabulary is not a byte-level BPE vocabulary.</exception>
    public static Gpt2Tokenizer Load(string vocabPath, string mergesPath)
    {
        foreach (var (p, what) in new[] { (vocabPath, "vocabulary (vocab.json)"), (mergesPath, "merges (merges.txt)") })
            if (!File.Exists(p)) throw new FileNotFoundException($"GPT-2 tokenizer {what} not found: '{p}'.", p);
        Dictionary<string, int> vocab;
        try { vocab = JsonSerializer.Deserialize<Dictionary<string, int>>(File.ReadAllText(vocabPath)) ?? throw new InvalidDataException("empty"); }
        catch (JsonException e) { throw new InvalidDataException($"'{vocabPath}' is not a JSON object of token -> id: {e.Message}", e); }
        if (!vocab.TryGetValue(EndOfTextToken, out int eot))
            throw new InvalidDataException($"'{vocabPath}' has no '{EndOfTextToken}' token; it is not a GPT-2 vocabulary.");

        var special = new Dictionary<string, int> { [EndOfTextToken] = eot };
        BpeTokenizer Create(Dictionary<string, int>? specialTokens) => BpeTokenizer.Create(new BpeOptions(vocabPath, mergesPath)
        {
            ByteLevel = true, // map UTF-8 bytes to GPT-2's printable characters before merging
            PreTokenizer = new RegexPreTokenizer(new Regex(SplitPattern, RegexOptions.Compiled), specialTokens),
            SpecialTokens = specialTokens,
        });
        return new Gpt2Tokenizer(Create(special), () => Create(null), vocab, vocabPath, mergesPath);
    }

    /// <summary>
    /// Encodes text to token ids. <c>"Hello world"</c> gives [15496, 995]. <c>&lt;|endoftext|&gt;</c> in the text
    /// becomes the special token 50256 (Hugging Face's behaviour); see <see cref="Encode(string, bool)"/> for plain text.
    /// </summary>
    public int[] Encode(string text) => Encode(text, specialTokens: true);

    /// <summary>
    /// Encodes text to token ids, with or without recognising the special token written in the text.
    /// </summary>
    /// <param name="text">The text.</param>
    /// <param name="specialTokens">true: <c>&lt;|endoftext|&gt;</c> in the text becomes id 50256 (Hugging Face);
    /// false: it is encoded as the plain characters it is made of (OpenAI's <c>encoder.py</c>, tiktoken's
    /// <c>encode_ordinary</c>), so no input can produce the end-of-text token.</param>
    public int[] Encode(string text, bool specialTokens)
    {
        ArgumentNullException.ThrowIfNull(text);
        return text.Length == 0 ? [] : (specialTokens ? _bpe : _ordinary.Value).EncodeToIds(text).ToArray();
    }

    /// <summary>Decodes token ids to text: the tokens' bytes concatenated and read as UTF-8.</summary>
    /// <exception cref="ArgumentOutOfRangeException">An id is outside the vocabulary.</exception>
    public string Decode(IEnumerable<int> ids) => Encoding.UTF8.GetString(DecodeBytes(ids));

    /// <summary>Decodes token ids (as produced by a model, <c>long</c>) to text.</summary>
    public string Decode(IEnumerable<long> ids) => Decode(ids.Select(i => checked((int)i)));

    /// <summary>The raw bytes that the ids stand for (may end in the middle of a UTF-8 character).</summary>
    public byte[] DecodeBytes(IEnumerable<int> ids)
    {
        var buffer = new List<byte>();
        foreach (var id in ids) buffer.AddRange(TokenBytes(id));
        return buffer.ToArray();
    }

    /// <summary>The UTF-8 bytes of one token.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The id is outside the vocabulary.</exception>
    public byte[] TokenBytes(int id) => id >= 0 && id < _tokenBytes.Length ? _tokenBytes[id]
        : throw new ArgumentOutOfRangeException(nameof(id), id, $"Token id must be in [0, {_tokenBytes.Length}).");

    /// <summary>A token's vocabulary entry as stored (byte-mapped: a leading space shows as 'Ġ', newline as 'Ċ').</summary>
    public string TokenString(int id) => id >= 0 && id < _tokens.Length ? _tokens[id]
        : throw new ArgumentOutOfRangeException(nameof(id), id, $"Token id must be in [0, {_tokens.Length}).");

    /// <summary>
    /// A token shown for humans: its decoded text with spaces as '·', newlines as '↵', tabs as '→', and bytes that
    /// are only part of a UTF-8 character as <c>&lt;0xE2&gt;</c>.
    /// </summary>
    public string TokenDisplay(int id)
    {
        var bytes = TokenBytes(id);
        string text;
        try { text = new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(bytes); }
        catch (DecoderFallbackException) { return string.Concat(bytes.Select(b => $"<0x{b:X2}>")); }
        return text.Replace(" ", "·").Replace("\n", "↵").Replace("\t", "→").Replace("\r", "␍");
    }

    /// <summary>The id of a vocabulary entry (byte-mapped form, e.g. "Ġthe"), or null.</summary>
    public int? TokenToId(string token) => _vocab.TryGetValue(token, out var id) ? id : null;

    /// <summary>Each token of <paramref name="text"/> with its id, display form and the character span it covers.</summary>
    public IReadOnlyList<(int Id, string Display, int Start, int Length)> Tokenize(string text)
    {
        var result = new List<(int, string, int, int)>();
        if (string.IsNullOrEmpty(text)) return result;
        foreach (var t in _bpe.EncodeToTokens(text, out _))
            result.Add((t.Id, TokenDisplay(t.Id), t.Offset.Start.Value, t.Offset.End.Value - t.Offset.Start.Value));
        return result;
    }

    /// <summary>A decoder that turns ids arriving one at a time into text, holding back incomplete UTF-8 characters.</summary>
    public StreamDecoder CreateStreamDecoder() => new(this);

    /// <summary>
    /// Incremental decoding for streaming generation: <see cref="Push"/> one token id and get the text it completes.
    /// A character whose UTF-8 bytes are split over two tokens (common for emoji and CJK) appears when its last byte
    /// arrives, so the concatenated pieces equal <see cref="Decode(IEnumerable{int})"/> of all ids.
    /// </summary>
    public sealed class StreamDecoder
    {
        readonly Gpt2Tokenizer _tokenizer;
        readonly Decoder _utf8 = new UTF8Encoding(false).GetDecoder();

        internal StreamDecoder(Gpt2Tokenizer tokenizer) => _tokenizer = tokenizer;

        /// <summary>Adds a token and returns the text that is now complete (possibly empty).</summary>
        public string Push(int id)
        {
            var bytes = _tokenizer.TokenBytes(id);
            var chars = new char[_utf8.GetCharCount(bytes, 0, bytes.Length, flush: false)];
            _utf8.GetChars(bytes, 0, bytes.Length, chars, 0, flush: false);
            return new string(chars);
        }

        /// <summary>Ends the stream: any bytes still waiting for the rest of their character come out as U+FFFD.</summary>
        public string Flush()
        {
            var chars = new char[_utf8.GetCharCount([], 0, 0, flush: true)];
            _utf8.GetChars([], 0, 0, chars, 0, flush: true);
            return new string(chars);
        }
    }

    /// <summary>
    /// GPT-2's reversible byte-to-character table (OpenAI's <c>bytes_to_unicode</c>): printable Latin-1 bytes map to
    /// themselves, the other 68 bytes (control characters, space, ...) to U+0100 onwards, so that space is 'Ġ' (U+0120).
    /// </summary>
    public static IReadOnlyDictionary<byte, char> ByteToUnicode()
    {
        var printable = Enumerable.Range('!', '~' - '!' + 1).Concat(Enumerable.Range('¡', '¬' - '¡' + 1)).Concat(Enumerable.Range('®', 'ÿ' - '®' + 1)).ToHashSet();
        var map = new Dictionary<byte, char>();
        int next = 0;
        for (int b = 0; b < 256; b++)
            map[(byte)b] = printable.Contains(b) ? (char)b : (char)(256 + next++);
        return map;
    }

    static Dictionary<char, byte> UnicodeToByte() => ByteToUnicode().ToDictionary(kv => kv.Value, kv => kv.Key);
}
