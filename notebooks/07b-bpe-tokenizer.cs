// ---
// jupyter:
//   jupytext:
//     text_representation:
//       extension: .cs
//       format_name: percent
//   kernelspec:
//     display_name: .NET (C#)
//     language: C#
//     name: .net-csharp
// ---

// %% [markdown]
// # 07b · A BPE tokenizer from scratch
//
// Chapters 05 and 07 used GPT-2's tokenizer: 50,000 merge rules that OpenAI learnt from 40 GB of web text. This chapter learns a tokenizer of our own from tiny Shakespeare, with the same algorithm (byte-level BPE, as in Karpathy's minbpe), and asks what the vocabulary size buys:
//
// 1. the algorithm, by hand, on a ten-letter example;
// 2. training on Shakespeare to 4,096 tokens, with the merges as they are learnt;
// 3. compression (bytes per token) against vocabulary size, and the exact round trip;
// 4. the result loaded into Microsoft.ML.Tokenizers, giving the same ids;
// 5. our tokenizer against GPT-2's on the same text;
// 6. two small GPTs trained at the same budget, one on our 1,024-token vocabulary and one on GPT-2's, compared fairly by their **loss per character**.

// %%
#r "nuget: Workbook, 0.1.0"
#r "nuget: TorchSharp-cpu, 0.107.0"
using TorchSharp;
using static TorchSharp.torch;
using Workbook;
using Workbook.Plots;
Notebook.Setup(seed: 42)

// %%
using System.Diagnostics;
using System.IO;
using System.Net;
using System.Text;
using Microsoft.Data.Analysis;
using Workbook.Data;
using Workbook.Gpt;
using Workbook.Text;
using Workbook.Training;

// %% [markdown]
// ## 1. The algorithm, by hand
//
// Byte-level BPE (Sennrich et al., 2016, on bytes as in GPT-2) starts with one token per byte value, 256 of them, so any text can be encoded. Then it repeats:
//
// 1. count every pair of adjacent tokens in the training text;
// 2. make the most frequent pair a new token, and replace it everywhere;
//
// until the vocabulary is as large as wanted. The list of merges, in the order learnt, *is* the tokenizer: to encode, apply the same merges to new text, earliest-learnt first.
//
// The classic example, "aaabdaaabac". The pairs: aa 4 times (overlapping: "aaa" holds two), ab 2, bd, da, ba and ac once. So aa becomes token 256: **aa** a b d **aa** a b a c. Now (aa, a) and (a, b) both occur twice; ties go to the smaller pair of ids, (97, 98) = ab, token 257: aa **ab** d aa **ab** a c. Then (aa, ab) occurs twice: token 258 = "aaab", and the text is 258 d 258 a c, five tokens for eleven bytes. `BpeTrainer` does exactly this:

// %%
var toy = BpeTrainer.Train("aaabdaaabac", vocabSize: 260);   // 256 bytes + 3 merges + <|endoftext|>
display(new DataFrame(
    new Int32DataFrameColumn("rank", toy.Merges.Select(m => m.Rank)),
    new StringDataFrameColumn("pair", toy.Merges.Select(m => $"({toy.TokenDisplay(m.Left)}, {toy.TokenDisplay(m.Right)}) = ({m.Left}, {m.Right})")),
    new StringDataFrameColumn("new token", toy.Merges.Select(m => $"{m.Id} = \"{toy.TokenDisplay(m.Id)}\"")),
    new Int64DataFrameColumn("count", toy.Merges.Select(m => m.Count))));
var toyIds = toy.Encode("aaabdaaabac");
display(Claim.That("the hand-worked result: aaabdaaabac → 258 d 258 a c", toyIds.SequenceEqual(new[] { 258, 'd', 258, 'a', 'c' }), $"[{string.Join(", ", toyIds)}]"));
$"\"aaabdaaabac\" → [{string.Join(", ", toyIds)}] → \"{toy.Decode(toyIds)}\""

// %% [markdown]
// Two details make it GPT-2's algorithm rather than a textbook one:
//
// * **Chunks first.** The text is split by GPT-2's regex into word-like chunks (`" world"`, `"!"`, `"\n\n"`) and pairs are only counted *inside* chunks, so no token glues the end of one word to the start of the next ("d t" in "and the"). BPE then only needs each distinct chunk with its count, which makes training fast.
// * **Encoding is greedy by rank**, not by frequency in the new text: in each chunk, merge the adjacent pair that was learnt *earliest*, every occurrence left to right, and repeat until no learnt pair is left.
//
// ## 2. Training on Shakespeare
//
// We train on the first 90% of the corpus, by characters, and keep the last 10% as unseen text for every measurement below (the split of notebook 07). One run to 4,096 tokens gives every smaller vocabulary too: BPE learns its merges in order, so the first 767 merges are the 1,024-token tokenizer (`Truncate`). The view below shows the latest merges while it trains.

// %%
var corpus = File.ReadAllText(DataPaths.File("tinyshakespeare", "input.txt"));
int cut = (int)(corpus.Length * 0.9);
string trainText = corpus[..cut], heldOutText = corpus[cut..];
int largest = Notebook.Pick(quick: 1024, full: 4096);
var progress = Notebook.Display("training…");
var clock = Stopwatch.StartNew();
var recent = new Queue<BpeMerge>();
BpeModel? partial = null;
var bpe = BpeTrainer.Train(trainText, largest, onMerge: m =>
{
    recent.Enqueue(m);
    if (recent.Count > 8) recent.Dequeue();
    if (m.Rank % 256 == 0) progress.Update($"merge {m.Rank + 1:N0}: latest merges learnt (count) " + string.Join("  ", recent.Select(r => $"[{r.Left}·{r.Right} → {r.Id}, {r.Count:N0}]")));
});
double trainSeconds = clock.Elapsed.TotalSeconds;
progress.Update($"{bpe.Merges.Count:N0} merges learnt from {trainText.Length:N0} characters in {trainSeconds:F1} s; vocabulary {bpe.VocabSize:N0} tokens");
DataFrame MergeTable(IEnumerable<BpeMerge> merges) => new DataFrame(
    new Int32DataFrameColumn("rank", merges.Select(m => m.Rank)),
    new StringDataFrameColumn("left", merges.Select(m => bpe.TokenDisplay(m.Left))),
    new StringDataFrameColumn("right", merges.Select(m => bpe.TokenDisplay(m.Right))),
    new StringDataFrameColumn("new token", merges.Select(m => bpe.TokenDisplay(m.Id))),
    new Int64DataFrameColumn("count", merges.Select(m => m.Count)));
MergeTable(bpe.Merges.Take(20))

// %% [markdown]
// The first merges are the most frequent pairs of English: a space followed by a letter (spaces belong to the next word in GPT-2's chunks, `·` here), then "he", "ou", "in", and soon whole words: " the", " and". Later merges build longer words and Shakespeare's own vocabulary, with counts falling fast:

// %%
display(MergeTable(bpe.Merges.Where(m => m.Rank is 100 or 250 or 500 or 766 or 1000 or 2000 or 3000 || m.Rank == bpe.Merges.Count - 1)));
var longest = Enumerable.Range(256, bpe.VocabSize - 257).OrderByDescending(id => bpe.TokenBytes(id).Length).ThenBy(id => id).Take(12).ToList();
$"longest tokens: {string.Join("  ", longest.Select(id => $"\"{bpe.TokenDisplay(id)}\""))}"

// %% [markdown]
// ## 3. Compression and the round trip
//
// **Bytes per token** measures how much text one token carries (Shakespeare is ASCII, so bytes are characters). More merges, longer tokens, fewer tokens per text; but each doubling of the vocabulary buys less, because the later merges are rarer pairs. On the training text the tokenizer does a little better than on the unseen tenth: part of what it learnt is specific to the plays it saw.

// %%
var sizes = new[] { 257, 512, 1024, 2048, 4096 }.Where(v => v <= bpe.VocabSize).ToArray();
var gpt2 = Gpt2Tokenizer.Default;
var compression = sizes.Select(v =>
{
    var model = bpe.Truncate(v);
    var heldIds = model.Encode(heldOutText);
    return (Vocab: v, Train: (double)Encoding.UTF8.GetByteCount(trainText) / model.Encode(trainText).Length,
        HeldOut: (double)Encoding.UTF8.GetByteCount(heldOutText) / heldIds.Length, RoundTrip: model.Decode(heldIds) == heldOutText);
}).ToList();
double gpt2HeldOut = (double)Encoding.UTF8.GetByteCount(heldOutText) / gpt2.Encode(heldOutText).Length;
display(new DataFrame(
    new StringDataFrameColumn("tokenizer", compression.Select(c => c.Vocab == 257 ? "bytes only (257)" : $"ours, {c.Vocab:N0}").Append("GPT-2, 50,257")),
    new DoubleDataFrameColumn("bytes/token, training text", compression.Select(c => Math.Round(c.Train, 3)).Append(Math.Round((double)Encoding.UTF8.GetByteCount(trainText) / gpt2.Encode(trainText).Length, 3))),
    new DoubleDataFrameColumn("bytes/token, held-out text", compression.Select(c => Math.Round(c.HeldOut, 3)).Append(Math.Round(gpt2HeldOut, 3))),
    new StringDataFrameColumn("held-out round trip exact", compression.Select(c => c.RoundTrip.ToString()).Append((gpt2.Decode(gpt2.Encode(heldOutText)) == heldOutText).ToString()))));
Plot.WithLayout(Plot.Lines(compression.Select(c => (double)c.Vocab).ToList(), new[]
{
    ("ours, training text", (IReadOnlyList<double>)compression.Select(c => c.Train).ToList()),
    ("ours, held-out text", compression.Select(c => c.HeldOut).ToList()),
    ("GPT-2 (50,257), held-out", compression.Select(_ => gpt2HeldOut).ToList()),
}, title: "Compression against vocabulary size", yTitle: "bytes per token"), ("xaxis", new { type = "log", title = new { text = "vocabulary size (log)" } }))

// %%
display(Claim.That("every vocabulary decodes the held-out text back exactly", compression.All(c => c.RoundTrip), string.Join(", ", compression.Select(c => c.RoundTrip))));
display(Claim.That("compression grows with every doubling of the vocabulary", compression.Zip(compression.Skip(1)).All(p => p.Second.HeldOut > p.First.HeldOut), string.Join(" < ", compression.Select(c => c.HeldOut.ToString("F2")))));
display(Claim.Between("the 1,024-token vocabulary carries 2–2.6 bytes per token on held-out text", compression.Single(c => c.Vocab == 1024).HeldOut, 2.0, 2.6, quick: (2.0, 2.6)));
Claim.AtLeast("GPT-2's 50,257 tokens compress the held-out text better than our largest vocabulary", gpt2HeldOut - compression[^1].HeldOut, full: 0.0, quick: 0.0)

// %% [markdown]
// Byte-level BPE never fails on new text: anything it has not learnt falls back to shorter pieces, down to single bytes. Text unlike anything in Shakespeare still comes back byte for byte:

// %%
var strange = "Naïve café 😀 — ∑ x² <|endoftext|>KING RICHARD III:\n\tNow is the winter";
var strangeIds = bpe.Encode(strange);
display(new DataFrame(new StringDataFrameColumn("token", strangeIds.Select(bpe.TokenDisplay)), new Int32DataFrameColumn("id", strangeIds)));
Claim.That("an emoji, accents and <|endoftext|> survive the round trip", bpe.Decode(strangeIds) == strange, $"{strange.Length} characters → {strangeIds.Length} tokens")

// %% [markdown]
// (The emoji's four bytes never occurred in the training text, so they stay four byte tokens that are not valid UTF-8 on their own, shown as `<0xF0>` …; `<|endoftext|>` is the special token at the last id.)
//
// ## 4. The same ids from Microsoft.ML.Tokenizers
//
// A tokenizer is only useful if the rest of the world can load it. `Save` writes the two files GPT-2's tokenizer is made of, `vocab.json` (token → id, each byte written as GPT-2's printable stand-in character, so a leading space is `Ġ`) and `merges.txt` (one learnt pair per line, in rank order). `ToTokenizer` loads them back through the library's `Gpt2Tokenizer`, which is Microsoft.ML.Tokenizers' `BpeTokenizer` with GPT-2's settings; `ToBpeTokenizer` builds a `BpeTokenizer` in memory. Both must give the ids of our own `Encode`, on all of the held-out text:

// %%
var v1024 = bpe.Truncate(1024);
var folder = Path.Combine(Path.GetTempPath(), "workbook-07b-bpe-1024");
var loaded = v1024.ToTokenizer(folder);
var oursIds = v1024.Encode(heldOutText);
var viaFiles = loaded.Encode(heldOutText);
var inMemory = v1024.ToBpeTokenizer().EncodeToIds(heldOutText).ToArray();
display($"{string.Join("  |  ", File.ReadLines(Path.Combine(folder, "merges.txt")).Take(6))}  …  ({new FileInfo(Path.Combine(folder, "vocab.json")).Length:N0} bytes of vocab.json)");
display(Claim.That("Gpt2Tokenizer on the saved files gives our ids on the whole held-out text", viaFiles.SequenceEqual(oursIds), $"{oursIds.Length:N0} tokens"));
Claim.That("a BpeTokenizer built in memory gives them too", inMemory.SequenceEqual(oursIds), $"{inMemory.Length:N0} tokens")

// %% [markdown]
// ## 5. Ours against GPT-2's
//
// The same line under our 1,024 and 4,096 tokens and under GPT-2's 50,257 (one colour per token). GPT-2's vocabulary was learnt on web text, so it has modern English words as single tokens but splits Shakespeare's names and archaisms; ours has "thou" and the speaker names, but needs more pieces for anything else.

// %%
string Colored(IEnumerable<string> pieces)
{
    string[] colors = ["#fde68a", "#bfdbfe", "#bbf7d0", "#fbcfe8", "#ddd6fe"];
    var html = new StringBuilder("<div style='font-family:monospace;white-space:pre-wrap;line-height:1.8;margin-bottom:8px'>");
    int i = 0;
    foreach (var piece in pieces) html.Append($"<span style='background:{colors[i++ % colors.Length]}'>{WebUtility.HtmlEncode(piece)}</span>");
    return html.Append("</div>").ToString();
}
var line = heldOutText[..Math.Min(heldOutText.Length, heldOutText.IndexOf("\n\n", 200) + 1)];
var rows = new List<(string Name, int[] Ids, Func<int, string> Piece)>
{
    ("ours, 1,024", v1024.Encode(line), id => v1024.TokenDisplay(id)),
    ($"ours, {bpe.VocabSize:N0}", bpe.Encode(line), id => bpe.TokenDisplay(id)),
    ("GPT-2, 50,257", gpt2.Encode(line), id => gpt2.TokenDisplay(id)),
};
HTML(string.Concat(rows.Select(r => $"<b>{r.Name}: {r.Ids.Length} tokens for {line.Length} characters</b>" + Colored(r.Ids.Select(r.Piece)))))

// %% [markdown]
// How much of each vocabulary the held-out text actually uses, and how the two tokenizers' tokens relate: a token of ours that is also a whole token of GPT-2 (same bytes) shows where both learnt the same piece.

// %%
var gpt2Strings = new HashSet<string>(Enumerable.Range(0, gpt2.VocabSize).Select(id => Convert.ToHexString(gpt2.TokenBytes(id))));
var sharedShare = Enumerable.Range(0, bpe.VocabSize - 1).Count(id => gpt2Strings.Contains(Convert.ToHexString(bpe.TokenBytes(id)))) / (double)(bpe.VocabSize - 1);
var gpt2HeldIds = gpt2.Encode(heldOutText);
new DataFrame(
    new StringDataFrameColumn("tokenizer", new[] { "ours, 1,024", $"ours, {bpe.VocabSize:N0}", "GPT-2, 50,257" }),
    new Int32DataFrameColumn("distinct tokens in the held-out text", new[] { oursIds.Distinct().Count(), bpe.Encode(heldOutText).Distinct().Count(), gpt2HeldIds.Distinct().Count() }),
    new DoubleDataFrameColumn("share of our tokens that are GPT-2 tokens", new[] { double.NaN, Math.Round(sharedShare, 3), double.NaN }))

// %% [markdown]
// ## 6. Two GPTs, one budget, compared per character
//
// Does a larger vocabulary make a better language model? Comparing **loss per token** would be unfair: a model whose tokens carry 3 characters has a harder job per token than one whose tokens carry 2. The fair unit is the text itself: sum the model's loss over all tokens of the held-out text and divide by its number of characters, **nats per character** (divided by ln 2: bits per character, the usual unit of character-level language modelling).
//
// The two models are the same GPT-2 architecture (4 layers, 4 heads, width 128, context 128, dropout 0.1), trained with the same `Trainer` recipe (AdamW, warm-up + cosine, clipping at 1) for the same number of steps of the same batch shape, so they see the same number of *tokens* and do nearly the same compute per step. They differ only in the vocabulary: our 1,024 tokens, or GPT-2's 50,257 (trained with chapter 07's exact compact-vocabulary loss over the tokens that occur in the corpus). GPT-2's tokens carry more text each, so its model sees more characters per step, and has a longer context in characters; ours has a 1,024-row embedding instead of one with thousands of rows, most of them rare.

// %%
int gptSteps = Notebook.Pick(quick: 30, full: 300), gptBatch = 8, gptBlock = 128;
var architecture = new GptConfig { NumLayers = 4, NumHeads = 4, DModel = 128, MaxLength = 128, Dropout = 0.1 };
var gpt2Train = gpt2.Encode(trainText); var gpt2Held = gpt2.Encode(heldOutText);
var compact = CompactVocabulary.FromTokens(gpt2Train.Concat(gpt2Held), gpt2.VocabSize);
var oursTrain = v1024.Encode(trainText);
var evalTokens = Notebook.Pick(quick: 4097, full: int.MaxValue);   // Quick: the first 4,096 predictions of the held-out text

(string Name, long Parameters, double TokensPerSecond, double LossPerToken, double Tokens, double Characters) TrainAndEvaluate(
    string name, int[] train, int[] heldOut, int vocab, Func<Tensor, Tensor, Tensor> loss, Func<int[], string> decode)
{
    Notebook.Reseed(42);
    var gpt = new GptModel(architecture with { VocabSize = vocab });
    var trainer = new Trainer(gpt, Optimizers.AdamWMatrixDecay(gpt, lr: 1e-3, weightDecay: 0.1, beta2: 0.99), loss)
    {
        Epochs = 1, ClipGradNorm = 1.0,
        Schedule = LRSchedule.WarmupCosine(1e-3, warmupSteps: Math.Max(1, gptSteps / 10), totalSteps: gptSteps, minLr: 1e-4),
    };
    var history = trainer.Fit(TokenWindows.Random(train, gptBatch, gptBlock, batchesPerEpoch: gptSteps, seed: 1));
    var evaluated = heldOut.Take(Math.Min(evalTokens, heldOut.Length)).ToArray();
    double perToken = GptEvaluation.SplitLoss(gpt, evaluated, gptBlock, loss: loss);
    // Every token but the first is predicted once: the characters those predictions cover.
    double characters = decode(evaluated[1..]).Length;
    return (name, gpt.ParameterCount, history.Epochs[0].SamplesPerSecond * gptBlock, perToken, evaluated.Length - 1, characters);
}
var results = new[]
{
    TrainAndEvaluate("ours, 1,024 tokens", oursTrain, oursIds, v1024.VocabSize, GptModel.Loss, ids => v1024.Decode(ids)),
    TrainAndEvaluate($"GPT-2, 50,257 tokens ({compact.Size:N0} used)", compact.ToCompact(gpt2Train), compact.ToCompact(gpt2Held), compact.Size, compact.CrossEntropy,
        ids => gpt2.Decode(ids.Select(compact.ToFull))),
};
new DataFrame(
    new StringDataFrameColumn("vocabulary", results.Select(r => r.Name)),
    new Int64DataFrameColumn("parameters trained", results.Select(r => r.Parameters)),
    new DoubleDataFrameColumn("tokens/s (training)", results.Select(r => Math.Round(r.TokensPerSecond))),
    new DoubleDataFrameColumn("characters per token", results.Select(r => Math.Round(r.Characters / r.Tokens, 3))),
    new DoubleDataFrameColumn("loss per token (nats)", results.Select(r => Math.Round(r.LossPerToken, 3))),
    new DoubleDataFrameColumn("loss per character (nats)", results.Select(r => Math.Round(r.LossPerToken * r.Tokens / r.Characters, 4))),
    new DoubleDataFrameColumn("bits per character", results.Select(r => Math.Round(r.LossPerToken * r.Tokens / r.Characters / Math.Log(2), 3))))

// %%
double PerChar(int i) => results[i].LossPerToken * results[i].Tokens / results[i].Characters;
int better = PerChar(0) <= PerChar(1) ? 0 : 1;
display($"per token the 1,024-token model looks {results[1].LossPerToken - results[0].LossPerToken:F2} nats better; per character, the fair measure, the {(better == 0 ? "1,024-token" : "GPT-2-vocabulary")} model is better by {Math.Abs(PerChar(0) - PerChar(1)):F3} nats ({Math.Abs(PerChar(0) - PerChar(1)) / Math.Log(2):F3} bits) per character, after {gptSteps} steps of {gptBatch}×{gptBlock} tokens");
display(Claim.AtLeast("per token, the GPT-2-vocabulary model's loss looks worse (higher) than ours", results[1].LossPerToken - results[0].LossPerToken, full: 0.0, quick: 0.0));
Claim.Between("per character, the two models land within 0.3 nats of each other", PerChar(1) - PerChar(0), -0.3, 0.3, quick: (-1.0, 1.0))

// %% [markdown]
// ## What to take away
//
// * Byte-level BPE is a short algorithm: chunks by regex, 256 byte tokens, then "merge the most frequent adjacent pair" until the vocabulary is full. The merge list, in order, is the tokenizer; encoding replays it, earliest merge first.
// * Because every byte is a token, encoding never fails and decoding is exact, for any text.
// * Compression grows with the vocabulary, with diminishing returns; a vocabulary learnt on one kind of text compresses that kind best.
// * Compare language models with different tokenizers per character (or per byte), never per token.
//
// ## Exercises
//
// 1. **Without the regex.** minbpe's `BasicTokenizer` counts pairs over the whole text, across word boundaries. Write that loop yourself (a few lines over a `List<int>` of bytes) for the first 100,000 characters and 200 merges. Which learnt tokens span a word boundary (a letter, then a space)? Compare its compression with `BpeTrainer`'s at the same vocabulary size on the same text.
// 2. **Out of domain.** Encode this repository's `README.md` with our 4,096-token tokenizer and with GPT-2's. Which compresses it better, and why the reversal from section 3?
// 3. **Where the parameters go.** For the GPT architecture of section 6, compute the share of the parameters in the token embedding for vocabularies of 512, 1,024, 4,096, 11,706 (GPT-2's tokens used in Shakespeare) and 50,257. From which size on does the embedding hold more parameters than the four transformer blocks?
//
// Solutions: [`solutions/07b-bpe-tokenizer-solutions.ipynb`](solutions/07b-bpe-tokenizer-solutions.ipynb).
