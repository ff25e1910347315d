using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Workbook.Data;
using Workbook.Text;

namespace Workbook.Tests.Text;

public class Gpt2TokenizerTests
{
    static Gpt2Tokenizer Tok => Gpt2Tokenizer.Default;

    [Theory]
    [InlineData("Hello world", new[] { 15496, 995 })]
    [InlineData(" Hello", new[] { 18435 })]
    [InlineData("<|endoftext|>", new[] { 50256 })]
    [InlineData(" the", new[] { 262 })]
    [InlineData("\n", new[] { 198 })]
    [InlineData("The", new[] { 464 })]
    public void KnownIds(string text, int[] expected) => Assert.Equal(expected, Tok.Encode(text));

    [Fact]
    public void VocabularyIsGpt2s()
    {
        Assert.Equal(50257, Tok.VocabSize);
        Assert.Equal(Gpt2Tokenizer.EndOfTextId, Tok.TokenToId(Gpt2Tokenizer.EndOfTextToken));
        Assert.Equal("Ġthe", Tok.TokenString(262)); // the byte-level form: a leading space is stored as 'Ġ'
        Assert.Equal(256, Gpt2Tokenizer.ByteToUnicode().Values.Distinct().Count());
    }

    /// <summary>Strings where byte-level BPE differs from naive tokenizers: spaces, Unicode, contractions, digits, code.</summary>
    public static readonly string[] Hard =
    [
        "", " ", "  ", "\n\n", "\t\tindented", "a  b   c    d", "trailing space ", "I'm, you're, they'll, we've, she'd, it's",
        "DON'T SHOUT'S", "3.14159 and 1,000,000 and 2024-06-08", "naïve café résumé", "Straße", "Ελληνικά", "Русский текст",
        "日本語のテキスト", "中文字符", "한국어", "مرحبا بالعالم", "हिन्दी", "emoji 😀👍🏽🇫🇷 and 👨‍👩‍👧", "e\u0301 combining", "zero\u200Bwidth",
        "non\u00A0breaking", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 math", "x = f(y) { return y**2; } // code", "https://example.com/a?b=c&d=e", "<|endoftext|>After<|endoftext|>",
        "line1\r\nline2\rline3", "\u0000\u0001\u001f control", "ÿþ Latin-1 ¡¿", "ＦＵＬＬＷＩＤＴＨ",
    ];

    [Fact]
    public void RoundTripsHardStrings()
    {
        foreach (var s in Hard) Assert.Equal(s, Tok.Decode(Tok.Encode(s)));
    }

    [Fact]
    public void RoundTripsRandomUnicode()
    {
        var random = new Random(7);
        for (int n = 0; n < 300; n++)
        {
            var sb = new StringBuilder();
            int len = random.Next(1, 40);
            for (int i = 0; i < len; i++)
            {
                // Any Unicode scalar value: mostly ASCII and spaces, sometimes from the whole range (surrogates excluded).
                int cp = random.Next(4) switch
                {
                    0 => random.Next(0x20, 0x7F),
                    1 => " \n\t"[random.Next(3)],
                    2 => random.Next(0x80, 0x3000),
                    _ => random.Next(0x3000, 0x110000),
                };
                if (cp is >= 0xD800 and <= 0xDFFF) cp = 'x';
                sb.Append(char.ConvertFromUtf32(cp));
            }
            var s = sb.ToString();
            Assert.Equal(s, Tok.Decode(Tok.Encode(s)));
        }
    }

    [Fact]
    public void RoundTripsTinyShakespeare()
    {
        var text = File.ReadAllText(DataPaths.File("tinyshakespeare", "input.txt"));
        var ids = Tok.Encode(text);
        Assert.Equal(338025, ids.Length); // nanoGPT's prepare.py: 301,966 train + 36,059 val tokens
        Assert.Equal(text, Tok.Decode(ids));
    }

    [Fact]
    public void MatchesReferenceBpeOnManyStrings()
    {
        var reference = new ReferenceBpe(DataPaths.File("gpt2", "vocab.json"), DataPaths.File("gpt2", "merges.txt"));
        var lines = File.ReadAllLines(DataPaths.File("tinyshakespeare", "input.txt"));
        var random = new Random(3);
        var samples = Hard.Concat(Enumerable.Range(0, 400).Select(_ => string.Join("\n", lines.Skip(random.Next(lines.Length - 3)).Take(3)))).ToList();
        int tokens = 0;
        foreach (var s in samples)
        {
            var expected = reference.Encode(s);
            Assert.Equal(expected, Tok.Encode(s));
            tokens += expected.Length;
        }
        Assert.True(tokens > 5000, $"only {tokens} tokens compared");
    }

    [Fact]
    public void EndOfTextInTheTextIsPlainTextWhenSpecialTokensAreOff()
    {
        // OpenAI's encoder.py (and tiktoken's encode_ordinary) splits the string like any other text:
        // '<' '|' 'end' 'of' 'text' '|' '>' (tiktoken gives [27, 91, 437, 1659, 5239, 91, 29] for GPT-2).
        var ids = Tok.Encode("<|endoftext|>", specialTokens: false);
        Assert.Equal([27, 91, 437, 1659, 5239, 91, 29], ids);
        Assert.Equal(new[] { "<", "|", "end", "of", "text", "|", ">" }, ids.Select(Tok.TokenString));
        Assert.Equal("<|endoftext|>", Tok.Decode(ids));
        Assert.Equal([50256], Tok.Encode("<|endoftext|>", specialTokens: true));
        Assert.Equal(Tok.Encode("a<|endoftext|>b"), Tok.Encode("a<|endoftext|>b", specialTokens: true));
        // Text without the special token encodes the same either way, and the reference (encoder.py without the
        // special-token split) agrees on every hard string.
        var reference = new ReferenceBpe(DataPaths.File("gpt2", "vocab.json"), DataPaths.File("gpt2", "merges.txt"));
        foreach (var s in Hard)
        {
            Assert.Equal(reference.EncodeOrdinary(s), Tok.Encode(s, specialTokens: false));
            Assert.DoesNotContain(Gpt2Tokenizer.EndOfTextId, Tok.Encode(s, specialTokens: false));
            if (!s.Contains(Gpt2Tokenizer.EndOfTextToken)) Assert.Equal(Tok.Encode(s), Tok.Encode(s, specialTokens: false));
        }
    }

    [Fact]
    public void StreamDecoderHoldsBackPartialCharacters()
    {
        const string text = "ok 😀日本 done";
        var ids = Tok.Encode(text);
        var decoder = Tok.CreateStreamDecoder();
        var pieces = ids.Select(decoder.Push).ToList();
        Assert.Equal(text, string.Concat(pieces) + decoder.Flush());
        Assert.Contains("", pieces); // the emoji's 4 bytes span tokens: the first of them completes no character
        Assert.DoesNotContain(pieces, p => p.Contains('\uFFFD'));
    }

    [Fact]
    public void DisplayShowsSpacesNewlinesAndPartialBytes()
    {
        Assert.Equal("·Hello", Tok.TokenDisplay(18435));
        Assert.Equal("↵", Tok.TokenDisplay(198));
        var partial = Tok.Encode("😀").Select(Tok.TokenDisplay).ToList();
        Assert.Contains(partial, d => d.StartsWith("<0x", StringComparison.Ordinal));
        var spans = Tok.Tokenize("Hello world");
        Assert.Equal([(15496, "Hello", 0, 5), (995, "·world", 5, 6)], spans);
    }

    [Fact]
    public void ErrorsNameTheFile()
    {
        var e = Assert.Throws<FileNotFoundException>(() => Gpt2Tokenizer.Load("/nonexistent/vocab.json", DataPaths.File("gpt2", "merges.txt")));
        Assert.Contains("/nonexistent/vocab.json", e.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => Tok.Decode(new[] { 50257 }));
    }

    /// <summary>An independent transcription of OpenAI's encoder.py (gpt-2/src/encoder.py), used as the reference.</summary>
    sealed class ReferenceBpe
    {
        readonly Dictionary<string, int> _encoder;
        readonly Dictionary<(string, string), int> _ranks = new();
        readonly Dictionary<byte, char> _byteEncoder = new();
        readonly Regex _pattern = new(@"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+");

        public ReferenceBpe(string vocabPath, string mergesPath)
        {
            _encoder = JsonSerializer.Deserialize<Dictionary<string, int>>(File.ReadAllText(vocabPath))!;
            var merges = File.ReadAllLines(mergesPath).Skip(1).Where(l => l.Length > 0).ToList();
            for (int i = 0; i < merges.Count; i++)
            {
                var parts = merges[i].Split(' ');
                _ranks[(parts[0], parts[1])] = i;
            }
            // bytes_to_unicode(): printable bytes map to themselves, the rest to 256, 257, ...
            var bs = Enumerable.Range('!', '~' - '!' + 1).Concat(Enumerable.Range('¡', '¬' - '¡' + 1)).Concat(Enumerable.Range('®', 'ÿ' - '®' + 1)).ToList();
            var cs = new List<int>(bs);
            int n = 0;
            for (int b = 0; b < 256; b++)
                if (!bs.Contains(b)) { bs.Add(b); cs.Add(256 + n++); }
            for (int i = 0; i < 256; i++) _byteEncoder[(byte)bs[i]] = (char)cs[i];
        }

        /// <summary>encoder.py as OpenAI wrote it: no special tokens, the text is only regex-split and merged.</summary>
        public int[] EncodeOrdinary(string text) =>
            _pattern.Matches(text).SelectMany(m => Bpe(new string(Encoding.UTF8.GetBytes(m.Value).Select(b => _byteEncoder[b]).ToArray()))
                .Select(t => _encoder[t])).ToArray();

        public int[] Encode(string text)
        {
            var ids = new List<int>();
            var parts = text.Split("<|endoftext|>");
            for (int p = 0; p < parts.Length; p++)
            {
                if (p > 0) ids.Add(50256);
                foreach (Match m in _pattern.Matches(parts[p]))
                {
                    var token = new string(Encoding.UTF8.GetBytes(m.Value).Select(b => _byteEncoder[b]).ToArray());
                    ids.AddRange(Bpe(token).Select(t => _encoder[t]));
                }
            }
            return ids.ToArray();
        }

        List<string> Bpe(string token)
        {
            var word = token.Select(c => c.ToString()).ToList();
            while (word.Count > 1)
            {
                (string, string)? best = null;
                int bestRank = int.MaxValue;
                for (int i = 0; i < word.Count - 1; i++)
                    if (_ranks.TryGetValue((word[i], word[i + 1]), out var r) && r < bestRank) { bestRank = r; best = (word[i], word[i + 1]); }
                if (best is null) break;
                var (first, second) = best.Value;
                var merged = new List<string>();
                for (int i = 0; i < word.Count;)
                {
                    if (i < word.Count - 1 && word[i] == first && word[i + 1] == second) { merged.Add(first + second); i += 2; }
                    else merged.Add(word[i++]);
                }
                word = merged;
            }
            return word;
        }
    }
}
