using System.Text;
using Workbook.Text;

namespace Workbook.Tests.Text;

public class BpeTrainerTests
{
    static string Shakespeare(int chars) =>
        File.ReadAllText(Path.Combine(TestSetup.RepoRoot, "data", "tinyshakespeare", "input.txt"))[..chars];

    static string Temp() => Path.Combine(Path.GetTempPath(), "wb-bpe-" + Guid.NewGuid().ToString("N"));

    [Fact]
    public void LearnsTheHandWorkedExample()
    {
        // Wikipedia's BPE example, by hand. "aaabdaaabac" is one regex chunk (letters only). Pair counts:
        //   aa 4 (overlapping: "aaa" holds two), ab 2, bd da ba ac 1  → merge aa → 256: aa a b d aa a b a c
        //   (aa,a) 2, (a,b) 2: a tie, broken by the smaller pair (97, 98) → ab → 257: aa ab d aa ab a c
        //   (aa,ab) 2, the rest 1 → 258 = "aaab": 258 d 258 a c.
        var bpe = BpeTrainer.Train("aaabdaaabac", vocabSize: 260);
        Assert.Equal([new BpeMerge(0, 'a', 'a', 256, 4), new BpeMerge(1, 'a', 'b', 257, 2), new BpeMerge(2, 256, 257, 258, 2)], bpe.Merges);
        Assert.Equal(260, bpe.VocabSize);
        Assert.Equal(259, bpe.EndOfTextId);
        Assert.Equal("aaab", Encoding.UTF8.GetString(bpe.TokenBytes(258)));
        Assert.Equal([258, 'd', 258, 'a', 'c'], bpe.Encode("aaabdaaabac"));
        Assert.Equal("aaabdaaabac", bpe.Decode(bpe.Encode("aaabdaaabac")));
        // An unseen text uses the same rules: "aaaa" → aa aa (every occurrence of the best pair, left to right).
        Assert.Equal([256, 256], bpe.Encode("aaaa"));
        Assert.Equal([258, 259, 257], bpe.Encode("aaab<|endoftext|>ab"));
    }

    [Fact]
    public void StopsWhenNothingIsLeftToMerge()
    {
        var bpe = BpeTrainer.Train("aaabdaaabac", vocabSize: 1000);
        // After the three merges above, "258 d 258 a c" has four pairs of count 1: four more merges make it one token.
        Assert.Equal(7, bpe.Merges.Count);
        Assert.Equal(256 + 7 + 1, bpe.VocabSize);
        Assert.Single(bpe.Encode("aaabdaaabac"));
        Assert.All(bpe.Merges.Skip(3), m => Assert.Equal(1, m.Count));
    }

    [Fact]
    public void NeverMergesAcrossRegexChunks()
    {
        var text = Shakespeare(20_000);
        var bpe = BpeTrainer.Train(text, vocabSize: 600);
        Assert.Equal(600, bpe.VocabSize);
        // GPT-2's pre-tokenizer keeps whitespace either as a run of its own or as one leading space of a word, and
        // letters apart from punctuation: no learnt token has whitespace after its first byte (unless it is all
        // whitespace), and none mixes letters and a comma.
        foreach (var m in bpe.Merges)
        {
            var s = Encoding.UTF8.GetString(bpe.TokenBytes(m.Id));
            Assert.True(s.All(char.IsWhiteSpace) || !s[1..].Any(char.IsWhiteSpace), $"'{s}'");
            Assert.False(s.Any(char.IsLetter) && s.Contains(','), s);
        }
        Assert.Equal(text, bpe.Decode(bpe.Encode(text)));
    }

    [Fact]
    public void LoadsIntoMicrosoftMlTokenizersWithTheSameIds()
    {
        var bpe = BpeTrainer.Train(Shakespeare(30_000), vocabSize: 700);
        var dir = Temp();
        var viaFiles = bpe.ToTokenizer(dir);
        var inMemory = bpe.ToBpeTokenizer();
        Assert.Equal(bpe.VocabSize, viaFiles.VocabSize);
        string[] texts =
        [
            Shakespeare(30_000)[^5000..],
            "To be, or not to be: that is the question.\nWhether 'tis nobler in the mind   to suffer\t...",
            "Naïve café 😀 — ünïcödé, 12345 and 3.14<|endoftext|>KING RICHARD III:\n",
        ];
        foreach (var text in texts)
        {
            var ours = bpe.Encode(text);
            Assert.Equal(ours, viaFiles.Encode(text));
            Assert.Equal(ours, inMemory.EncodeToIds(text).ToArray());
            Assert.Equal(text, bpe.Decode(ours));
            Assert.Equal(text, viaFiles.Decode(ours));
        }
        Assert.Equal(bpe.EndOfTextId, viaFiles.Encode("<|endoftext|>").Single());
        // The files are GPT-2's format: a version line, then one "left right" merge per line, byte-mapped (space = 'Ġ').
        var lines = File.ReadAllLines(Path.Combine(dir, "merges.txt"));
        Assert.Equal("#version: 0.2", lines[0]);
        Assert.Equal(bpe.Merges.Count, lines.Length - 1);
        Assert.Contains(lines, l => l.StartsWith("Ġ ", StringComparison.Ordinal));
    }

    [Fact]
    public void TruncatingEqualsTrainingASmallerVocabulary()
    {
        var text = Shakespeare(15_000);
        var large = BpeTrainer.Train(text, vocabSize: 500);
        var small = BpeTrainer.Train(text, vocabSize: 320);
        var truncated = large.Truncate(320);
        Assert.Equal(small.Merges, truncated.Merges);
        Assert.Equal(320, truncated.VocabSize);
        Assert.Equal(small.Encode(text), truncated.Encode(text));
        Assert.True(large.Encode(text).Length < small.Encode(text).Length);
        var seen = new List<BpeMerge>();
        BpeTrainer.Train(text, vocabSize: 300, onMerge: seen.Add);
        Assert.Equal(large.Merges.Take(seen.Count), seen);
        Assert.Equal(43, seen.Count);
    }

    [Fact]
    public void BadArgumentsAreNamed()
    {
        Assert.Contains("vocabSize must be at least 257", Assert.Throws<ArgumentException>(() => BpeTrainer.Train("abc", 256)).Message);
        var bpe = BpeTrainer.Train("aaabdaaabac", 260);
        Assert.Contains("must be in [257, 260], got 300", Assert.Throws<ArgumentException>(() => bpe.Truncate(300)).Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => bpe.TokenBytes(260));
        Assert.Equal("aaab", bpe.TokenDisplay(258));
    }
}
