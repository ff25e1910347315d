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
// # 05 · GPT-2: tokens in, text out
//
// GPT-2 (Radford et al., 2019) is a stack of the pre-LN Transformer blocks from the earlier chapters, trained to predict the next token. This notebook runs the **real GPT-2 pipeline in C#**, the same code that loads OpenAI's published `gpt2` checkpoints:
//
// 1. the byte-level BPE **tokenizer**, token by token;
// 2. the **architecture**, counted parameter by parameter against the published total;
// 3. **loading weights** in Hugging Face's format: our own small GPT-2 trained on Shakespeare (shipped in `data/`, works offline) or the real `gpt2` when you are online;
// 4. the **next-token distribution**, and what greedy, temperature, top-k and top-p decoding do to it;
// 5. the **KV cache**, measured, and **streaming** generation.

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
using System.Net;
using System.Text;
using Microsoft.Data.Analysis;
using Workbook.Data;
using Workbook.Gpt;
using Workbook.Text;

// %% [markdown]
// ## 1. Tokenization: text → bytes → merges → ids
//
// GPT-2 does not see characters or words. Its tokenizer
//
// 1. splits the text into word-like chunks with a regex (a leading space stays attached to the word: `" world"`),
// 2. turns each chunk into its **UTF-8 bytes**, so every possible text is covered by 256 base symbols,
// 3. applies 50,000 learned **merge rules** (most frequent pairs first) to glue bytes into longer pieces,
// 4. looks each piece up in a vocabulary of 50,257 entries (256 bytes + 50,000 merges + `<|endoftext|>`).
//
// `Gpt2Tokenizer` loads the vocabulary files from `data/gpt2/` and does exactly this (Microsoft.ML.Tokenizers with byte-level mapping). Two sanity values everyone checks:

// %%
var tok = Gpt2Tokenizer.Default;
$"\"Hello world\" → [{string.Join(", ", tok.Encode("Hello world"))}]   \" Hello\" → [{string.Join(", ", tok.Encode(" Hello"))}]   vocabulary: {tok.VocabSize:N0} tokens"

// %% [markdown]
// Each token below with its id and the bytes it stands for. Spaces are shown as `·`, newlines as `↵`. Note how a leading space is part of the next word, how rare words break into pieces, and how the emoji, whose 4 UTF-8 bytes are not a vocabulary entry, is split into byte tokens that are not valid text on their own. `<|endoftext|>` is a single special token, id 50256: GPT-2 saw it between documents in training.

// %%
DataFrame TokenTable(string text)
{
    var tokens = tok.Tokenize(text);
    return new DataFrame(
        new Int32DataFrameColumn("id", tokens.Select(t => t.Id)),
        new StringDataFrameColumn("token", tokens.Select(t => t.Display)),
        new StringDataFrameColumn("UTF-8 bytes", tokens.Select(t => string.Join(" ", tok.TokenBytes(t.Id).Select(b => b.ToString("X2"))))));
}
TokenTable("Hello  world!\nNaïve café 😀 unbelievably<|endoftext|>")

// %% [markdown]
// The same on a longer passage, one colour per token (hover for the id). Common words are one token; names and rare words take several.

// %%
using System.IO;
string Colored(string text)
{
    string[] colors = ["#fde68a", "#bfdbfe", "#bbf7d0", "#fbcfe8", "#ddd6fe"];
    var html = new StringBuilder("<div style='font-family:monospace;white-space:pre-wrap;line-height:1.8'>");
    int i = 0;
    foreach (var id in tok.Encode(text))
    {
        var piece = tok.Decode(new[] { id });
        if (piece.Contains('\uFFFD')) piece = tok.TokenDisplay(id); // a byte that is only part of a character
        html.Append($"<span title='{id}' style='background:{colors[i++ % colors.Length]}'>{WebUtility.HtmlEncode(piece)}</span>");
    }
    return html.Append("</div>").ToString();
}
var shakespeare = File.ReadAllText(DataPaths.File("tinyshakespeare", "input.txt"));
var passage = shakespeare[..300];
display(HTML(Colored(passage)));
$"{passage.Length} characters → {tok.Encode(passage).Length} tokens"

// %% [markdown]
// Because every byte has a token, encoding then decoding gives back **exactly** the original text, for any Unicode. The proof on the whole corpus (1.1 MB):

// %%
var allIds = tok.Encode(shakespeare);
$"{shakespeare.Length:N0} characters → {allIds.Length:N0} tokens ({(double)shakespeare.Length / allIds.Length:F2} characters per token); round trip exact: {tok.Decode(allIds) == shakespeare}"

// %% [markdown]
// ## 2. The architecture, parameter by parameter
//
// GPT-2 small: token embedding `wte` (50,257 × 768) plus learned position embedding `wpe` (1,024 × 768), then 12 identical **pre-LN blocks**
//
// $$x \leftarrow x + \mathrm{Attn}(\mathrm{LN}_1(x)), \qquad x \leftarrow x + \mathrm{MLP}(\mathrm{LN}_2(x)),$$
//
// with causal multi-head self-attention (12 heads of 64) and an MLP $768 \to 3072 \to 768$ with the tanh-approximated GELU, then a final LayerNorm `ln_f`. The output layer reuses `wte` (**weight tying**): the logit of token $v$ is the dot product of the final hidden state with $v$'s own embedding, so it adds no parameters.
//
// Build it (random weights) and count per part:

// %%
var gpt2Config = GptConfig.Gpt2;
var gpt2Random = new GptModel(gpt2Config);
var parts = gpt2Random.ParameterBreakdown();
new DataFrame(
    new StringDataFrameColumn("part", parts.Select(p => p.Part)),
    new Int64DataFrameColumn("parameters", parts.Select(p => p.Parameters)),
    new DoubleDataFrameColumn("share %", parts.Select(p => Math.Round(100.0 * p.Parameters / gpt2Random.ParameterCount, 2))))

// %% [markdown]
// One block, tensor by tensor, against the formula (E = 768): LayerNorms 2E each, attention $E \cdot 3E + 3E$ (q, k, v together) and $E^2 + E$ (output projection), MLP $E \cdot 4E + 4E$ and $4E \cdot E + E$; in total $12E^2 + 13E$ per block.

// %%
var block0 = gpt2Random.named_parameters().Where(p => p.name.StartsWith("h.0.")).ToList();
display(new DataFrame(
    new StringDataFrameColumn("tensor", block0.Select(p => p.name)),
    new StringDataFrameColumn("shape", block0.Select(p => string.Join(" × ", p.parameter.shape))),
    new Int64DataFrameColumn("parameters", block0.Select(p => p.parameter.numel()))));
long E = gpt2Config.DModel;
$"block: {block0.Sum(p => p.parameter.numel()):N0} counted, 12E²+13E = {12 * E * E + 13 * E:N0}"

// %%
long published = 124_439_808;
$"total counted {gpt2Random.ParameterCount:N0} | from the config's formula {gpt2Config.ParameterCount:N0} | published for gpt2 {published:N0} | equal: {gpt2Random.ParameterCount == published && gpt2Config.ParameterCount == published}"

// %% [markdown]
// The larger published sizes differ only in depth, width and heads:

// %%
var presets = GptConfig.PresetNames.Select(n => (Name: n, Config: GptConfig.FromPreset(n))).ToList();
gpt2Random.Dispose();
new DataFrame(
    new StringDataFrameColumn("model", presets.Select(p => p.Name)),
    new Int32DataFrameColumn("layers", presets.Select(p => p.Config.NumLayers)),
    new Int32DataFrameColumn("heads", presets.Select(p => p.Config.NumHeads)),
    new Int32DataFrameColumn("n_embd", presets.Select(p => p.Config.DModel)),
    new Int64DataFrameColumn("parameters", presets.Select(p => p.Config.ParameterCount)))

// %% [markdown]
// ## 3. Loading weights
//
// A Hugging Face GPT-2 checkpoint is a folder with `config.json` (the sizes) and `model.safetensors` (a JSON header, then the raw tensors). `GptCheckpoint` checks every tensor's name and shape, reports all mismatches at once, ignores the stored causal-mask buffers `h.i.attn.bias`, and transposes the attention and MLP weights, which Hugging Face stores as `[in, out]` ("Conv1D") while `nn.Linear` keeps `[out, in]`.
//
// Real GPT-2 weights cannot be downloaded on every machine, so the repository ships **a GPT-2 we trained ourselves**: the same architecture and tokenizer, 6 layers of width 128, trained on tiny Shakespeare (notebook 07 shows how). Set `WORKBOOK_GPT2=1` when you are online to load OpenAI's `gpt2` instead: `GptHub.FromPretrained("gpt2")` downloads it once (500 MB, resumable, checksummed) into `~/.cache/workbook/hub`. Everything below works with either.

// %%
var shippedFolder = Path.GetDirectoryName(DataPaths.File("gpt2-shakespeare", "model.safetensors"))!;
bool useRealGpt2 = Environment.GetEnvironmentVariable("WORKBOOK_GPT2") is "1" or "true";
var status = Notebook.Display("loading…");
var model = useRealGpt2
    ? GptHub.FromPretrained("gpt2", progress: p => status.Update(p.ToString()))
    : GptHub.FromPretrained(shippedFolder);
var generator = new TextGenerator(model, tok);
status.Update(useRealGpt2 ? "OpenAI gpt2" : $"shipped model from {shippedFolder}");
model.Config

// %%
var headerInfo = Workbook.IO.SafeTensors.ReadHeader(DataPaths.File("gpt2-shakespeare", "model.safetensors"));
var metricsJson = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(shippedFolder, "metrics.json"))).RootElement;
$"shipped checkpoint: {headerInfo.Tensors.Count} tensors ({headerInfo.Tensors[0].DType}), {new FileInfo(headerInfo.Path).Length / 1e6:F1} MB, {model.ParameterCount:N0} parameters; validation loss {metricsJson.GetProperty("final_val_loss_full_split").GetDouble():F3} nats/token (perplexity {Math.Exp(metricsJson.GetProperty("final_val_loss_full_split").GetDouble()):F0})"

// %% [markdown]
// What happens inside, for one prompt: the shape at each stage of the forward pass. The embeddings are `[batch, tokens, n_embd]`, every block keeps that shape, and the LM head turns each position into 50,257 logits.

// %%
long[] Ids(string text) => tok.Encode(text).Select(i => (long)i).ToArray();
var promptText = "ROMEO:\nO, she doth teach the torches to burn";
var hiddenStates = new List<Tensor>();
Tensor promptLogits;
using (no_grad())
    promptLogits = model.Forward(tensor(Ids(promptText)).unsqueeze(0), hiddenStates: hiddenStates);
var stages = new[] { "embeddings (wte + wpe)" }.Concat(Enumerable.Range(0, model.Config.NumLayers - 1).Select(i => $"after block {i}")).Append("after last block + ln_f").Append("logits").ToList();
var tensors = hiddenStates.Append(promptLogits).ToList();
new DataFrame(
    new StringDataFrameColumn("stage", stages),
    new StringDataFrameColumn("shape", tensors.Select(t => "[" + string.Join(", ", t.shape) + "]")),
    new DoubleDataFrameColumn("mean vector norm", tensors.Select(t => Math.Round(t.pow(2).sum(-1).sqrt().mean().item<float>(), 2))))

// %% [markdown]
// ## 4. The next-token distribution
//
// The last position's logits, through a softmax, are the model's probabilities for the next token. The 15 most likely continuations of the prompt:

// %%
var lastLogits = promptLogits[0, -1].unsqueeze(0);
var nextProbs = lastLogits.softmax(-1)[0];
var top = nextProbs.topk(15);
var topIds = top.indexes.data<long>().Select(i => (int)i).ToArray();
Plot.Bar(topIds.Select(tok.TokenDisplay).ToList(), top.values.data<float>().Select(v => (double)v).ToList(),
    title: $"P(next token | \"{promptText.Replace("\n", "↵")}\")", yTitle: "probability")

// %% [markdown]
// ## 5. Decoding: greedy, temperature, top-k, top-p
//
// Generation repeats: compute the distribution, **pick** a token, append it, go again. The picking rule matters:
//
// * **greedy** takes the argmax: deterministic, but tends to loop;
// * **temperature** $T$ samples from $\mathrm{softmax}(z/T)$: $T<1$ sharpens, $T>1$ flattens, $T\to 0$ becomes greedy;
// * **top-k** keeps only the $k$ most likely tokens;
// * **top-p** (nucleus) keeps the smallest set of most likely tokens whose mass reaches $p$: few tokens when the model is sure, many when it is not.
//
// What each does to this distribution (`Sampling.Distribution`), over the 25 most likely tokens:

// %%
var strategies = new (string Name, GenerationOptions Options)[]
{
    ("greedy", GenerationOptions.Greedy),
    ("T = 0.7", new() { Temperature = 0.7 }),
    ("T = 1.5", new() { Temperature = 1.5 }),
    ("top-k 5", new() { TopK = 5 }),
    ("top-p 0.9", new() { TopP = 0.9 }),
};
var order = nextProbs.topk(25).indexes;
var labels = order.data<long>().Select(i => tok.TokenDisplay((int)i)).ToList();
var distributions = strategies.Select(s => (s.Name, Probs: Sampling.Distribution(lastLogits, s.Options)[0])).ToList();
Plot.GroupedBars(labels, distributions.Select(d => (d.Name, (IReadOnlyList<double>)d.Probs.index_select(0, order).data<float>().Select(v => (double)v).ToList())),
    title: "Sampling distribution of each strategy", yTitle: "probability")

// %%
double Entropy(Tensor p) => Math.Max(0, -(p * p.clamp_min(1e-30).log()).sum().item<float>());
new DataFrame(
    new StringDataFrameColumn("strategy", distributions.Select(d => d.Name).Prepend("model (T = 1)")),
    new Int64DataFrameColumn("tokens that can be drawn", distributions.Select(d => d.Probs.gt(0).sum().item<long>()).Prepend(nextProbs.gt(0).sum().item<long>())),
    new DoubleDataFrameColumn("top probability", distributions.Select(d => Math.Round(d.Probs.max().item<float>(), 3)).Prepend(Math.Round(nextProbs.max().item<float>(), 3))),
    new DoubleDataFrameColumn("entropy (nats)", distributions.Select(d => Math.Round(Entropy(d.Probs), 2)).Prepend(Math.Round(Entropy(nextProbs), 2))))

// %% [markdown]
// Check of top-p's rule on this distribution: the kept tokens are the most likely ones, their mass reaches 0.9, and without the least likely of them it would not.

// %%
var kept = (int)distributions[4].Probs.gt(0).sum().item<long>();
var cumulative = nextProbs.sort(descending: true).Values.cumsum(0);
$"kept {kept} tokens: mass of the top {kept} = {cumulative[kept - 1].item<float>():F6} ≥ 0.9; mass of the top {kept - 1} = {(kept > 1 ? cumulative[kept - 2].item<float>() : 0):F6} < 0.9"

// %% [markdown]
// The texts each strategy writes from the same prompt (seeded, so re-running gives the same samples):

// %%
var newTokens = Notebook.Pick(quick: 30, full: 60);
var samples = strategies.Append((Name: "greedy + repetition penalty 1.3", Options: GenerationOptions.Greedy with { RepetitionPenalty = 1.3 }))
    .Select(s => (s.Name, Result: generator.Generate("ROMEO:\n", s.Options with { MaxNewTokens = newTokens, Seed = 42 }))).ToList();
string Distinct(IReadOnlyList<int> ids) => $"{ids.Distinct().Count()}/{ids.Count}";
new DataFrame(
    new StringDataFrameColumn("strategy", samples.Select(s => s.Name)),
    new StringDataFrameColumn("distinct tokens", samples.Select(s => Distinct(s.Result.TokenIds))),
    new StringDataFrameColumn("text", samples.Select(s => s.Result.Text.Replace("\n", " ↵ "))))

// %% [markdown]
// Greedy decoding typically falls into a loop (few distinct tokens); the repetition penalty (CTRL, Keskar et al. 2019) divides the logits of tokens already used and breaks it. Sampling with $T \approx 0.7$–$1$ plus top-k or top-p is the usual compromise between variety and staying on the likely path.
//
// ## 6. The KV cache, measured
//
// Without a cache, each new token recomputes the whole sequence: step $t$ costs $O(t)$ token passes, $O(T^2)$ in total. But the keys and values of earlier positions never change (causal attention: a position never looks forward), so the **KV cache** stores them and each step runs only the new token through the model. Same tokens, much less work:

// %%
var kvTokens = Notebook.Pick(quick: 60, full: 110); // stays within the 128-token context
var kvPrompt = new[] { tok.Encode("KING RICHARD III:\nNow is the winter of our discontent") };
(List<long> Tokens, List<double> Ms) Timed(bool useCache)
{
    var options = GenerationOptions.Greedy with { MaxNewTokens = kvTokens, UseKvCache = useCache };
    var tokens = new List<long>(); var ms = new List<double>();
    var clock = Stopwatch.StartNew();
    foreach (var step in TextGenerator.GenerateIds(model, kvPrompt, options))
    {
        tokens.Add(step.Tokens[0]);
        ms.Add(clock.Elapsed.TotalMilliseconds);
        clock.Restart();
    }
    return (tokens, ms);
}
Timed(true); // warm-up
var withCache = Timed(true);
var withoutCache = Timed(false);
double Rate(List<double> ms) => ms.Count / (ms.Sum() / 1000);
$"{kvTokens} tokens: with cache {Rate(withCache.Ms):F0} tokens/s, without {Rate(withoutCache.Ms):F0} tokens/s → {Rate(withCache.Ms) / Rate(withoutCache.Ms):F1}× faster; identical tokens: {withCache.Tokens.SequenceEqual(withoutCache.Tokens)}"

// %%
var positions = Enumerable.Range(kvPrompt[0].Length, kvTokens).Select(i => (double)i).ToList();
Plot.Lines(positions, new (string, IReadOnlyList<double>)[] { ("without cache", withoutCache.Ms), ("with KV cache", withCache.Ms) },
    title: "Time per generated token", xTitle: "sequence length", yTitle: "ms")

// %% [markdown]
// Without the cache the time per token grows with the length; with it, it stays almost flat. For this small model the fixed cost of each step (launching ~100 small operations, the 50,257-wide output layer) hides much of the gain; it grows with model size and length: for the 124M-parameter GPT-2 at 256–288 tokens of context we measured 47 tokens/s with the cache against 6.9 without (2 cores, prompt pass included). The first step of both is the **prompt pass**, which processes all prompt tokens in parallel, much faster per token than generating:

// %%
var longPrompt = tensor(allIds.Take(model.Config.MaxLength).Select(i => (long)i).ToArray()).unsqueeze(0);
double PromptTokensPerSecond()
{
    using var _ = no_grad();
    model.forward(longPrompt); // warm-up
    var clock = Stopwatch.StartNew();
    int repeats = 3;
    for (int i = 0; i < repeats; i++) model.forward(longPrompt).Dispose();
    return repeats * longPrompt.shape[1] / clock.Elapsed.TotalSeconds;
}
$"prompt processing: {PromptTokensPerSecond():F0} tokens/s ({longPrompt.shape[1]} tokens at once) vs generation {Rate(withCache.Ms):F0} tokens/s"

// %% [markdown]
// A cached step multiplies every weight matrix by **one vector**: it reads each weight once and does 2 FLOPs with it, so its speed is set by memory bandwidth, not arithmetic. Under `no_grad` the library sends these products to `Workbook.Kernels.InferenceLinear`, whose C# SIMD kernel `MatVec` streams the weights over all cores (libtorch's oneMKL runs a matrix-vector product on one thread on the AMD CPUs we measured). Same greedy tokens with the kernels off and on:

// %%
using Workbook.Kernels;
InferenceLinear.Enabled = false;
Timed(true); // warm-up
var plainBlas = Timed(true);
InferenceLinear.Enabled = true;
$"cached decoding: F.linear {Rate(plainBlas.Ms):F0} tokens/s, InferenceLinear {Rate(withCache.Ms):F0} tokens/s; identical tokens: {plainBlas.Tokens.SequenceEqual(withCache.Tokens)}; weights read per token: {model.ParameterCount * 4 / 1e6:F0} MB"

// %% [markdown]
// ## 7. Streaming
//
// `Stream` yields each token as soon as it is sampled, with the text it completes (a character split over two tokens appears when its last byte arrives; text that might be the start of a stop string is held back). The cell below shows the text growing:

// %%
var streamView = Notebook.Display(HTML("<pre></pre>"));
var streamed = new StringBuilder();
foreach (var t in generator.Stream("JULIET:\n", new GenerationOptions { MaxNewTokens = Notebook.Pick(quick: 40, full: 150), TopK = 40, Temperature = 0.8, Seed = 7, StopStrings = ["\n\n"] }))
{
    streamed.Append(t.Text);
    streamView.Update(HTML($"<pre>{WebUtility.HtmlEncode(streamed.ToString())}</pre>"));
    if (t.StopReason is not null) Console.WriteLine($"stopped: {t.StopReason} after {t.Step + 1} tokens");
}

// %% [markdown]
// `StreamAsync` is the same as an `IAsyncEnumerable`, for UIs that must not block; and `Generate` takes a **batch** of prompts, left-padded and masked so each row is exactly what it would be alone:

// %%
var firstTokens = new List<string>();
await foreach (var t in generator.StreamAsync("HAMLET:\n", new GenerationOptions { MaxNewTokens = 5, Seed = 1 })) firstTokens.Add(t.Text);
display($"async stream: [{string.Join("|", firstTokens.Select(s => s.Replace("\n", "↵")))}]");
var batch = generator.Generate(["ROMEO:\n", "JULIET:\n", "KING HENRY VI:\n"], new GenerationOptions { MaxNewTokens = Notebook.Pick(quick: 20, full: 40), TopP = 0.9, Seed = 3 });
new DataFrame(
    new StringDataFrameColumn("prompt", batch.Select(r => r.Prompt.Trim())),
    new StringDataFrameColumn("continuation", batch.Select(r => r.Text.Replace("\n", " ↵ "))),
    new StringDataFrameColumn("stopped by", batch.Select(r => r.StopReason.ToString())))

// %% [markdown]
// ## Exercises
//
// 1. **Beam search.** Implement beam search with width 4: keep the 4 partial sequences with the highest total log-probability, extend each by its best tokens, keep the best 4 again. Compare the total log-probability and the text of beam search with greedy decoding for 20 tokens. Does the higher-likelihood text read better?
// 2. **Min-p sampling.** Write a filter that keeps the tokens whose probability is at least `minP` × the top probability. For `minP = 0.1` and several prompts, compare how many tokens it keeps with top-p 0.9. When does it keep fewer?
// 3. **Context matters.** Measure the shipped model's loss on the validation text with windows of 8, 16, 32, 64 and 128 tokens (`GptEvaluation.SplitLoss`) and plot it. Why does the loss fall with longer windows, and why does the fall slow down?
//
// Solutions: `solutions/05-gpt2-generation-solutions.ipynb`.
