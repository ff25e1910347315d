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
// # 07b · A BPE tokenizer from scratch — solutions
//
// Worked solutions to the exercises of [07b · A BPE tokenizer from scratch](../07b-bpe-tokenizer.ipynb). Each solution checks its own claim.

// %%
#r "nuget: Workbook, 0.1.0"
#r "nuget: TorchSharp-cpu, 0.107.0"
using TorchSharp;
using static TorchSharp.torch;
using Workbook;
using Workbook.Plots;
Notebook.Setup(seed: 42)

// %%
using System.IO;
using System.Text;
using Microsoft.Data.Analysis;
using Workbook.Data;
using Workbook.Gpt;
using Workbook.Text;

var corpus = File.ReadAllText(DataPaths.File("tinyshakespeare", "input.txt"));

// %% [markdown]
// ## Exercise 1 · Without the regex
//
// The whole text as one byte sequence, pairs counted across everything (ties to the smaller pair, as `BpeTrainer` does):

// %%
var sample = corpus[..100_000];
var symbols = Encoding.UTF8.GetBytes(sample).Select(b => (int)b).ToList();
var pieces = Enumerable.Range(0, 256).Select(b => new[] { (byte)b }).ToList();
for (int merge = 0; merge < 200; merge++)
{
    var counts = new Dictionary<(int, int), int>();
    for (int i = 0; i + 1 < symbols.Count; i++) counts[(symbols[i], symbols[i + 1])] = counts.GetValueOrDefault((symbols[i], symbols[i + 1])) + 1;
    var best = counts.OrderByDescending(kv => kv.Value).ThenBy(kv => kv.Key.Item1).ThenBy(kv => kv.Key.Item2).First().Key;
    int id = pieces.Count;
    pieces.Add(pieces[best.Item1].Concat(pieces[best.Item2]).ToArray());
    var next = new List<int>(symbols.Count);
    for (int i = 0; i < symbols.Count; i++)
        if (i + 1 < symbols.Count && symbols[i] == best.Item1 && symbols[i + 1] == best.Item2) { next.Add(id); i++; }
        else next.Add(symbols[i]);
    symbols = next;
}
string Show(byte[] b) => Encoding.UTF8.GetString(b).Replace(" ", "·").Replace("\n", "↵");
var crossing = pieces.Skip(256).Where(p => { var s = Encoding.UTF8.GetString(p); return Enumerable.Range(1, s.Length - 1).Any(i => s[i] == ' ' && char.IsLetter(s[i - 1])); }).ToList();
var regexBpe = BpeTrainer.Train(sample, vocabSize: 256 + 200 + 1);
double basic = (double)Encoding.UTF8.GetByteCount(sample) / symbols.Count, withRegex = (double)Encoding.UTF8.GetByteCount(sample) / regexBpe.Encode(sample).Length;
display($"{crossing.Count} of 200 learnt tokens span a word boundary, e.g. {string.Join("  ", crossing.Take(10).Select(p => $"\"{Show(p)}\""))}");
display($"bytes/token on the same 100,000 characters: without the regex {basic:F3}, with GPT-2's chunks {withRegex:F3}");
Claim.AtLeast("without the regex, some tokens glue a word's end to a space", crossing.Count, full: 5, quick: 5)

// %% [markdown]
// Without chunks, frequent cross-word pairs like "e·" (a word ending in e, then a space) or "d·" become tokens, and later merges build on them ("e·the"-like pieces). That compresses *this* text a little better or about the same, but the tokens mix parts of two words: the same word then gets different tokens depending on what follows, which wastes vocabulary and makes the model's job harder. GPT-2's regex keeps the space at the start of the next word, so " the" is one token wherever it occurs.
//
// ## Exercise 2 · Out of domain

// %%
var ours = BpeTrainer.Train(corpus[..(int)(corpus.Length * 0.9)], Notebook.Pick(quick: 1024, full: 4096));
var readme = File.ReadAllText(Path.Combine(DataPaths.DataDirectory, "..", "README.md"));
double Bpt(int tokens, string text) => (double)Encoding.UTF8.GetByteCount(text) / tokens;
var gpt2 = Gpt2Tokenizer.Default;
double oursReadme = Bpt(ours.Encode(readme).Length, readme), gpt2Readme = Bpt(gpt2.Encode(readme).Length, readme);
display($"README.md ({readme.Length:N0} characters): ours ({ours.VocabSize:N0}) {oursReadme:F2} bytes/token, GPT-2 {gpt2Readme:F2}");
Claim.AtLeast("on the README, GPT-2 compresses at least 30% better than our Shakespeare vocabulary", gpt2Readme / oursReadme - 1, full: 0.3, quick: 0.3)

// %% [markdown]
// Our vocabulary spent its merges on Early Modern English and speaker names; a README about .NET, notebooks and TorchSharp is full of words, code and punctuation it never saw, which fall apart into short pieces. GPT-2's vocabulary, learnt on web text, has most of them as whole tokens. On Shakespeare itself ours came close to GPT-2 with a twelfth of the vocabulary; out of its domain it is far behind. A tokenizer is part of the model's training data.
//
// ## Exercise 3 · Where the parameters go

// %%
var architecture = new GptConfig { NumLayers = 4, NumHeads = 4, DModel = 128, MaxLength = 128 };
int[] vocabs = { 512, 1024, 4096, 11_706, 50_257 };
var shares = vocabs.Select(v =>
{
    var config = architecture with { VocabSize = v };
    long embedding = (long)v * config.DModel;
    long blocks = config.NumLayers * (12L * config.DModel * config.DModel + 13L * config.DModel);
    return (Vocab: v, Total: config.ParameterCount, Embedding: embedding, Blocks: blocks);
}).ToList();
display(new DataFrame(
    new Int32DataFrameColumn("vocabulary", shares.Select(s => s.Vocab)),
    new Int64DataFrameColumn("parameters", shares.Select(s => s.Total)),
    new Int64DataFrameColumn("token embedding (= LM head, tied)", shares.Select(s => s.Embedding)),
    new Int64DataFrameColumn("4 blocks", shares.Select(s => s.Blocks)),
    new DoubleDataFrameColumn("embedding share", shares.Select(s => Math.Round((double)s.Embedding / s.Total, 3)))));
int crossover = (int)Math.Ceiling((double)shares[0].Blocks / architecture.DModel);
display(Claim.Close("the config's parameter count is embedding + positions + blocks + final LayerNorm", shares[2].Total, shares[2].Embedding + 128L * 128 + shares[2].Blocks + 2 * 128, 0));
Claim.Between($"the embedding outgrows the blocks above {crossover:N0} tokens, between 4,096 and 11,706", crossover, 4096, 11_706, quick: (4096, 11_706))

// %% [markdown]
// Each block has 12E² + 13E parameters, 198,272 at E = 128, so four blocks hold 793,088; the embedding has V·E, which passes that at V ≈ 6,200. With GPT-2's full vocabulary, 8 of every 10 parameters of this small model would be its embedding, most of them for tokens Shakespeare never uses (chapter 07's compact vocabulary removes those). Small models want small vocabularies; the choice of 50,257 was made for a 124M-parameter model, where the embedding is a third.
