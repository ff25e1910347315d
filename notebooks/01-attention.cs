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
// # 01 · Attention
//
// Attention lets every position of a sequence look at every other position and pull in what it needs. It is the one operation the Transformer is built around, and it is small enough to derive, compute by hand and verify completely in one notebook.
//
// What we do here:
//
// 1. dot products as a similarity score;
// 2. a softmax that does not overflow;
// 3. scaled dot-product attention on an example small enough to check by hand;
// 4. attention-weight heatmaps, causal and padding masks;
// 5. **why** the scores are divided by √d_k, measured;
// 6. multi-head attention from scratch, checked against the library and TorchSharp's `nn.MultiheadAttention`;
// 7. the fused fast path.
//
// Everything built here lives in `Workbook.Attention` (`ScaledDotProductAttention`, `AttentionMask`, `MultiheadAttention`), where it is unit-tested against tensors computed by PyTorch.

// %%
#r "nuget: Workbook, 0.1.0"
#r "nuget: TorchSharp-cpu, 0.107.0"
using TorchSharp;
using static TorchSharp.torch;
using Workbook;
using Workbook.Plots;
Notebook.Setup(seed: 42)

// %%
using Workbook.Attention;
using Microsoft.Data.Analysis;

// The number every check below reports: the largest absolute difference between two tensors.
string Row(Tensor t) => string.Join(", ", t.to_type(ScalarType.Float32).data<float>().ToArray().Select(v => v.ToString("G4")));

// %% [markdown]
// ## 1. Dot products measure similarity
//
// Each position asks a question, its **query** `q`, and carries a label, its **key** `k`. How well key `j` answers query `i` is scored by the dot product
//
// $$q_i \cdot k_j = \sum_c q_{ic} k_{jc} = \lVert q_i \rVert \, \lVert k_j \rVert \cos\theta_{ij},$$
//
// large when the vectors point the same way, zero when they are orthogonal, negative when they are opposed. Five hand-made 3-d "meanings" (animal-ness, vehicle-ness, size) show it:

// %%
var words = new[] { "cat", "kitten", "dog", "car", "truck" };
var emb = tensor(new float[] {
    0.9f, 0.0f, 0.3f,   // cat
    0.8f, 0.0f, 0.1f,   // kitten
    0.8f, 0.1f, 0.5f,   // dog
    0.0f, 0.9f, 0.4f,   // car
    0.1f, 0.8f, 0.9f,   // truck
}).reshape(5, 3);
var sim = matmul(emb, emb.T);
display(Plot.Heatmap(sim, words, words, title: "Dot products e_i · e_j", colorscale: "Blues", showValues: true));
display(Claim.Close("cat · kitten = 0.75", sim[0, 1].item<float>(), 0.75, 1e-6));
Claim.Close("cat · car = 0.12", sim[0, 3].item<float>(), 0.12, 1e-6)

// %% [markdown]
// Animals score high with animals (cat·kitten = 0.75) and low with vehicles (cat·car = 0.12). In a Transformer, queries and keys are not hand-made: they are learned linear projections of the token vectors, so the model learns *what* to compare.
//
// ## 2. A numerically stable softmax
//
// Scores become weights with the softmax, $\mathrm{softmax}(z)_j = e^{z_j} / \sum_k e^{z_k}$: positive, summing to 1. Written naively it overflows: `exp` of anything above about 88.7 is `inf` in float32, and `inf / inf = NaN`. Since $\mathrm{softmax}(z) = \mathrm{softmax}(z - c)$ for any constant $c$ (the factor $e^{-c}$ cancels), subtracting the row maximum makes every exponent ≤ 0 without changing the result.

// %%
Tensor NaiveSoftmax(Tensor z) { var e = z.exp(); return e / e.sum(-1, keepdim: true); }
Tensor StableSoftmax(Tensor z) { var e = (z - z.amax(new long[] { -1 }, keepdim: true)).exp(); return e / e.sum(-1, keepdim: true); }

var inputs = new[] { tensor(new[] { 1f, 2f, 3f }), tensor(new[] { 1000f, 1001f, 1002f }) };
display(new DataFrame(
    new StringDataFrameColumn("input z", inputs.Select(Row)),
    new StringDataFrameColumn("naive", inputs.Select(z => Row(NaiveSoftmax(z)))),
    new StringDataFrameColumn("stable", inputs.Select(z => Row(StableSoftmax(z)))),
    new StringDataFrameColumn("torch softmax", inputs.Select(z => Row(z.softmax(-1))))));
display(Claim.That("exp overflows to inf above about 88.7 in float32", float.IsInfinity(tensor(88.8f).exp().item<float>()) && !float.IsInfinity(tensor(88.7f).exp().item<float>()),
    $"exp(88.7) = {tensor(88.7f).exp().item<float>():G3}, exp(88.8) = {tensor(88.8f).exp().item<float>()}"));
display(Claim.That("the naive softmax returns NaN for [1000, 1001, 1002]", NaiveSoftmax(inputs[1]).isnan().all().item<bool>(), Row(NaiveSoftmax(inputs[1]))));
display(Claim.AtMost("the stable one gives the weights of [1, 2, 3]", Claim.MaxDiff(StableSoftmax(inputs[1]), StableSoftmax(inputs[0])), full: 1e-6, quick: 1e-6));
Claim.AtMost("… and agrees with TorchSharp's softmax", inputs.Max(z => Claim.MaxDiff(StableSoftmax(z), z.softmax(-1))), full: 1e-6, quick: 1e-6)

// %% [markdown]
// The naive version returns NaN for `[1000, 1001, 1002]`; the stable one returns the same weights as for `[1, 2, 3]` (only differences matter) and agrees with TorchSharp's built-in softmax, which is what the library uses.
//
// ## 3. Scaled dot-product attention, by hand
//
// With queries $Q \in \mathbb{R}^{T_q \times d_k}$, keys $K \in \mathbb{R}^{T_k \times d_k}$ and values $V \in \mathbb{R}^{T_k \times d_v}$:
//
// $$\mathrm{Attention}(Q, K, V) = \mathrm{softmax}\!\left(\frac{Q K^\top}{\sqrt{d_k}}\right) V$$
//
// Row $i$ of the output is a weighted average of the value vectors, weighted by how well each key matches query $i$. A tiny case: two queries, three keys, $d_k = d_v = 2$.
//
// For query 1, $q = (1, 0)$: the scores are $(1, 0, 1)/\sqrt 2 = (0.7071, 0, 0.7071)$; the softmax gives $(0.4011, 0.1978, 0.4011)$; the output is $0.4011\,(1,0) + 0.1978\,(0,1) + 0.4011\,(5,5) = (2.4067, 2.2033)$. The cell computes both rows with plain loops in double precision, then with the library.

// %%
double[,] q = { { 1, 0 }, { 0, 2 } }, k = { { 1, 0 }, { 0, 1 }, { 1, 1 } }, v = { { 1, 0 }, { 0, 1 }, { 5, 5 } };
var outHand = new double[2, 2];
var wHand = new double[2, 3];
for (int i = 0; i < 2; i++)
{
    var s = new double[3];
    for (int j = 0; j < 3; j++) s[j] = (q[i, 0] * k[j, 0] + q[i, 1] * k[j, 1]) / Math.Sqrt(2);
    var e = s.Select(x => Math.Exp(x - s.Max())).ToArray();
    for (int j = 0; j < 3; j++)
    {
        wHand[i, j] = e[j] / e.Sum();
        for (int c = 0; c < 2; c++) outHand[i, c] += wHand[i, j] * v[j, c];
    }
}
var (out1, w1) = ScaledDotProductAttention.Compute(tensor(q).to(float32), tensor(k).to(float32), tensor(v).to(float32));
new DataFrame(
    new StringDataFrameColumn("", new[] { "weights row 1", "weights row 2", "output row 1", "output row 2" }),
    new StringDataFrameColumn("by hand", new[] { Row(tensor(wHand)[0]), Row(tensor(wHand)[1]), Row(tensor(outHand)[0]), Row(tensor(outHand)[1]) }),
    new StringDataFrameColumn("library", new[] { Row(w1[0]), Row(w1[1]), Row(out1[0]), Row(out1[1]) }))

// %%
display($"max |library − by hand|: weights {Claim.MaxDiff(w1, tensor(wHand)):E1}, output {Claim.MaxDiff(out1, tensor(outHand)):E1}");
display(Claim.AtMost("the library equals the loops (float32 rounding)", Math.Max(Claim.MaxDiff(w1, tensor(wHand)), Claim.MaxDiff(out1, tensor(outHand))), full: 1e-6, quick: 1e-6));
display(Claim.AtMost("query 1's weights are (0.4011, 0.1978, 0.4011)", Claim.MaxDiff(tensor(wHand)[0], tensor(new[] { 0.4011, 0.1978, 0.4011 })), full: 5e-5, quick: 5e-5));
Claim.AtMost("… and its output is (2.4067, 2.2033)", Claim.MaxDiff(tensor(outHand)[0], tensor(new[] { 2.4067, 2.2033 })), full: 5e-5, quick: 5e-5)

// %% [markdown]
// ## 4. Attention weights as a picture
//
// `ScaledDotProductAttention.Compute` accepts any layout `[..., seq, d]` (here `[B, T, d]`) and returns the output and the weights `[..., T_q, T_k]`. Row *i* of the heatmap is the distribution query *i* puts over the keys. With random (untrained) vectors there is no pattern yet; notebook 03 shows the weights of a trained model.

// %%
var T = 8;
var tokens = Enumerable.Range(0, T).Select(i => $"t{i}").ToArray();
var xq = randn(2, T, 16); var xk = randn(2, T, 16); var xv = randn(2, T, 16);
var (o, w) = ScaledDotProductAttention.Compute(xq, xk, xv);
Plot.Heatmap(w[0], tokens, tokens, title: "Attention weights (batch 0): row = query, column = key", xTitle: "key", yTitle: "query")

// %%
display($"output {string.Join("×", o.shape)}, weights {string.Join("×", w.shape)}; every row sums to 1: max |Σ_j w_ij − 1| = {Claim.MaxDiff(w.sum(-1), ones(2, T)):E1}");
Claim.AtMost("every row of weights sums to 1", Claim.MaxDiff(w.sum(-1), ones(2, T)), full: 1e-6, quick: 1e-6)

// %% [markdown]
// ## 5. Masks: causal and padding
//
// Two kinds of keys must sometimes be invisible:
//
// * **the future** — a language model predicting token *i+1* must not peek at tokens after *i*: the **causal** mask hides key *j > i*;
// * **padding** — sequences of different lengths are padded to one length for batching; the **key-padding** mask hides the padded keys.
//
// A masked score is set to −∞ before the softmax, so its weight is exactly 0 and the remaining weights still sum to 1. Workbook's convention (PyTorch `nn.MultiheadAttention`'s): a **bool mask is `true` where attention is not allowed**; a float mask is *added* to the scores (0 keep, −∞ masked). `AttentionMask` builds both kinds.

// %%
var causal = AttentionMask.Causal(T);
var padding = AttentionMask.KeyPaddingFromLengths(new long[] { 8, 5 }, T);  // sequence 1 has 5 real tokens
var (_, wCausal) = ScaledDotProductAttention.Compute(xq, xk, xv, isCausal: true);
var (_, wPad) = ScaledDotProductAttention.Compute(xq, xk, xv, keyPaddingMask: padding);
var (_, wBoth) = ScaledDotProductAttention.Compute(xq, xk, xv, causal, padding);
Plot.Grid(new[]
{
    Plot.Heatmap(wCausal[0], tokens, tokens),
    Plot.Heatmap(wPad[1], tokens, tokens),
    Plot.Heatmap(wBoth[1], tokens, tokens),
}, 1, 3, title: "Causal (batch 0) · key padding, length 5 (batch 1) · both (batch 1)")

// %%
var maskedEverywhere = causal.logical_or(padding.view(2, 1, T));   // [2, T, T]: true = must be 0
display(new DataFrame(
    new StringDataFrameColumn("check", new[] { "max weight on masked keys", "max |row sum − 1|", "min weight on allowed keys" }),
    new DoubleDataFrameColumn("value", new[] {
        wBoth.masked_select(maskedEverywhere).max().item<float>(),
        Claim.MaxDiff(wBoth.sum(-1), ones(2, T)),
        wBoth.masked_select(maskedEverywhere.logical_not()).min().item<float>() })));
display(Claim.Close("masked weights are exactly 0", wBoth.masked_select(maskedEverywhere).max().item<float>(), 0, 0));
display(Claim.AtMost("every row is still a distribution", Claim.MaxDiff(wBoth.sum(-1), ones(2, T)), full: 1e-6, quick: 1e-6));
Claim.AtLeast("every allowed key keeps a positive weight", wBoth.masked_select(maskedEverywhere.logical_not()).min().item<float>(), full: 1e-30, quick: 1e-30)

// %% [markdown]
// Masked weights are exactly 0, every row is still a distribution, and every allowed key keeps a positive weight. A mask of the wrong shape or dtype is refused with the form it should have had:

// %%
string Error(Action a) { try { a(); return "no error"; } catch (Exception e) { return e.Message; } }
new DataFrame(
    new StringDataFrameColumn("mistake", new[] { "5×5 mask for 8 tokens", "0/1 integer mask", "keys of width 12, queries of width 16" }),
    new StringDataFrameColumn("error message", new[] {
        Error(() => ScaledDotProductAttention.Compute(xq, xk, xv, AttentionMask.Causal(5))),
        Error(() => ScaledDotProductAttention.Compute(xq, xk, xv, causal.to_type(ScalarType.Int64))),
        Error(() => ScaledDotProductAttention.Compute(xq, randn(2, T, 12), xv)) }))

// %% [markdown]
// ## 6. Why divide by √d_k?
//
// Take query and key components independent with mean 0 and variance 1. Then $q \cdot k = \sum_{c=1}^{d_k} q_c k_c$ is a sum of $d_k$ independent terms of variance 1: its variance is $d_k$ and its standard deviation $\sqrt{d_k}$. With $d_k = 512$ typical scores are ±23, the softmax puts nearly all weight on the largest score, and its Jacobian $\partial p / \partial z = \mathrm{diag}(p) - p p^\top$ goes to zero with a one-hot $p$: gradients vanish and the layer stops learning. Dividing by $\sqrt{d_k}$ brings the scores back to variance 1 for every $d_k$.
//
// The experiment: for each $d_k$, random queries against 32 random keys; we measure the spread of the scores, the largest weight of each row, the entropy of each row (uniform over 32 keys = ln 32 = 3.47 nats) and the Frobenius norm of the softmax Jacobian ($\lVert J \rVert_F^2 = \sum p_i^2 - 2\sum p_i^3 + (\sum p_i^2)^2$).

// %%
var dks = new[] { 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024 };
int nQueries = Notebook.Pick(quick: 200, full: 2000), nKeys = 32;
var stats = new Dictionary<string, List<double>>();
void Add(string name, double value) { if (!stats.ContainsKey(name)) stats[name] = new(); stats[name].Add(value); }
foreach (var dk in dks)
{
    using var scope = torch.NewDisposeScope();
    var qs = randn(nQueries, dk); var ks = randn(nKeys, dk);
    foreach (var (label, scale) in new[] { ("unscaled", 1.0), ("scaled 1/√d_k", 1 / Math.Sqrt(dk)) })
    {
        var z = matmul(qs, ks.T) * scale;
        var p = z.to_type(ScalarType.Float64).softmax(-1);   // float64: the unscaled rows are nearly one-hot
        var entropy = -(p * p.clamp_min(1e-30).log()).sum(-1);
        var s2 = p.pow(2).sum(-1);
        var jac = (s2 - 2 * p.pow(3).sum(-1) + s2.pow(2)).clamp_min(0).sqrt();
        Add($"std, {label}", z.std().item<float>());
        Add($"max weight, {label}", p.amax(new long[] { -1 }).mean().item<double>());
        Add($"entropy, {label}", entropy.mean().item<double>());
        Add($"‖J‖, {label}", jac.mean().item<double>());
    }
}
var log2dk = dks.Select(d => Math.Log2(d)).ToList();
IEnumerable<(string, IReadOnlyList<double>)> Series(string metric) =>
    stats.Where(kv => kv.Key.StartsWith(metric)).Select(kv => (kv.Key, (IReadOnlyList<double>)kv.Value));
Plot.Grid(new[]
{
    Plot.Lines(log2dk, Series("std"), logY: true),
    Plot.Lines(log2dk, Series("max weight")),
    Plot.Lines(log2dk, Series("entropy")),
    Plot.Lines(log2dk, Series("‖J‖")),
}, 2, 2, title: "Against log2 d_k: score std (log) · mean max weight · mean entropy (nats) · softmax Jacobian norm")

// %%
int i512 = Array.IndexOf(dks, 512);
display(new DataFrame(
    new StringDataFrameColumn("d_k = 512", new[] { "std of scores", "mean max weight", "mean entropy (nats)", "mean ‖J‖" }),
    new DoubleDataFrameColumn("unscaled", new[] { "std", "max weight", "entropy", "‖J‖" }.Select(m => stats[$"{m}, unscaled"][i512])),
    new DoubleDataFrameColumn("scaled", new[] { "std", "max weight", "entropy", "‖J‖" }.Select(m => stats[$"{m}, scaled 1/√d_k"][i512]))));
double SlopeOfStd(string label) => (Math.Log(stats[$"std, {label}"][^1]) - Math.Log(stats[$"std, {label}"][0])) / (Math.Log(dks[^1]) - Math.Log(dks[0]));
display(Claim.Between("with d_k = 512 typical scores are ±23 (std)", stats["std, unscaled"][i512], 21, 25, quick: (20, 26)));
display(Claim.Close("uniform over 32 keys is ln 32 = 3.47 nats", Math.Log(32), 3.47, 5e-3));
display(Claim.Between("unscaled, the spread grows like √d_k (slope on log–log)", SlopeOfStd("unscaled"), 0.45, 0.55, quick: (0.4, 0.6)));
display(Claim.Between("scaled, it stays flat (slope)", SlopeOfStd("scaled 1/√d_k"), -0.05, 0.05, quick: (-0.1, 0.1)));
display(Claim.Between("the Jacobian norm at d_k = 512: 0.09 unscaled", stats["‖J‖, unscaled"][i512], 0.07, 0.11, quick: (0.05, 0.13)));
Claim.Between("… against 0.24 scaled", stats["‖J‖, scaled 1/√d_k"][i512], 0.22, 0.26, quick: (0.2, 0.28))

// %% [markdown]
// Unscaled, the score spread grows like $\sqrt{d_k}$ (a straight line of slope ½ on the log plot), the rows become nearly one-hot (max weight → 1, entropy → 0) and the Jacobian norm shrinks (0.09 against 0.24 at d_k = 512), so less gradient flows back through the softmax. Scaled, all four curves are flat: the softmax behaves the same at every width.
//
// ## 7. Multi-head attention, from scratch
//
// One attention computes one weighted average per position. **Multi-head** attention runs $h$ of them in parallel on different learned projections and mixes the results:
//
// $$\mathrm{MultiHead}(Q,K,V) = \mathrm{Concat}(\mathrm{head}_1, \dots, \mathrm{head}_h)\, W^O, \qquad \mathrm{head}_i = \mathrm{Attention}(Q W_i^Q, K W_i^K, V W_i^V)$$
//
// with $W_i^Q, W_i^K, W_i^V \in \mathbb{R}^{E \times E/h}$. In practice the $h$ query projections are stacked into one $E \times E$ matrix, and "splitting into heads" is a reshape: head $i$ owns features $[i \cdot E/h, (i+1) \cdot E/h)$. PyTorch's `nn.MultiheadAttention` stacks the query, key and value matrices further into `in_proj_weight` of shape $[3E, E]$. Our `MultiheadAttention` uses exactly that layout, so PyTorch weights load into it. We take its (random) weights and redo the computation by hand.

// %%
long E = 16, h = 4, hd = E / h, B = 2, L = 6;
var mha = new MultiheadAttention(E, h);
using (no_grad()) { mha.in_proj_bias!.normal_(0, 0.1); mha.out_proj.bias!.normal_(0, 0.1); }  // non-zero biases: a stricter check
mha.eval();
var x = randn(B, L, E);

var W = mha.in_proj_weight.detach().chunk(3, 0);         // W_Q, W_K, W_V: [E, E] each
var b = mha.in_proj_bias!.detach().chunk(3, 0);
Tensor SplitHeads(Tensor t) => t.view(B, L, h, hd).transpose(1, 2);   // [B, L, E] -> [B, h, L, E/h]
var qh = SplitHeads(matmul(x, W[0].T) + b[0]);
var kh = SplitHeads(matmul(x, W[1].T) + b[1]);
var vh = SplitHeads(matmul(x, W[2].T) + b[2]);
var headWeights = (matmul(qh, kh.transpose(-2, -1)) / Math.Sqrt(hd)).softmax(-1);   // [B, h, L, L]
var concat = matmul(headWeights, vh).transpose(1, 2).reshape(B, L, E);              // heads side by side
var fromScratch = matmul(concat, mha.out_proj.weight!.detach().T) + mha.out_proj.bias!.detach();
fromScratch.shape

// %% [markdown]
// Now the same input through the library module, through the per-head teaching variant `SeparateHeadsAttention` (h separate small projections, the formula above taken literally), and through TorchSharp's own `nn.MultiheadAttention` with the same weights. TorchSharp's module is sequence-first (`[L, B, E]`), so we transpose in and out.

// %%
var (libOut, libW) = mha.forward(x, x, x, averageWeights: false);
var perHead = new SeparateHeadsAttention(E, h);
perHead.CopyFrom(mha);
var (sepOut, _) = perHead.forward(x, x, x);
var torchSharp = nn.MultiheadAttention(E, h);
torchSharp.load_state_dict(mha.state_dict());
torchSharp.eval();
var xt = x.transpose(0, 1);
var (tsOut, tsW) = torchSharp.call(xt, xt, xt);
var mhaDiffs = new[] { Claim.MaxDiff(libOut, fromScratch), Claim.MaxDiff(libW!, headWeights), Claim.MaxDiff(sepOut, fromScratch),
    Claim.MaxDiff(tsOut.transpose(0, 1), fromScratch), Claim.MaxDiff(tsW, headWeights.mean(new long[] { 1 })) };
display(new DataFrame(
    new StringDataFrameColumn("compared with the from-scratch computation", new[] {
        "library MultiheadAttention: output", "library: per-head weights", "SeparateHeadsAttention: output",
        "TorchSharp nn.MultiheadAttention: output", "TorchSharp: head-averaged weights" }),
    new DoubleDataFrameColumn("max |diff|", mhaDiffs)));
Claim.AtMost("all agree to float32 rounding", mhaDiffs.Max(), full: 1e-5, quick: 1e-5)

// %% [markdown]
// All agree to float32 rounding. Each head has its own attention pattern:

// %%
var labels = Enumerable.Range(0, (int)L).Select(i => $"{i}").ToArray();
Plot.Grid(Enumerable.Range(0, (int)h).Select(i => Plot.Heatmap(libW![0, i], labels, labels)).ToList(), 1, (int)h,
    title: "The four heads' weights (batch 0), random weights")

// %% [markdown]
// **A pitfall found while checking.** TorchSharp 0.107's `nn.MultiheadAttention` wraps libtorch's C++ module, which *adds* a bool `attn_mask` to the scores as 0/1 instead of masking — silently. Give it the additive float form (0/−∞). Our module accepts both forms and treats `true` as masked:

// %%
var (oursCausal, _) = mha.forward(x, x, x, isCausal: true);
var (tsBool, _) = torchSharp.call(xt, xt, xt, null, false, AttentionMask.Causal(L));
var (tsZeroOne, _) = torchSharp.call(xt, xt, xt, null, false, AttentionMask.Causal(L).to_type(ScalarType.Float32));
var (tsAdditive, _) = torchSharp.call(xt, xt, xt, null, false, AttentionMask.CausalAdditive(L));
display(new DataFrame(
    new StringDataFrameColumn("comparison", new[] { "ours (causal) vs TorchSharp, bool mask", "ours vs TorchSharp, additive 0/−∞ mask",
        "TorchSharp bool mask vs TorchSharp float 0/1 mask" }),
    new DoubleDataFrameColumn("max |diff|", new[] { Claim.MaxDiff(oursCausal, tsBool.transpose(0, 1)),
        Claim.MaxDiff(oursCausal, tsAdditive.transpose(0, 1)), Claim.MaxDiff(tsBool, tsZeroOne) })));
display(Claim.AtLeast("TorchSharp's module with a bool mask is not causal attention", Claim.MaxDiff(oursCausal, tsBool.transpose(0, 1)), full: 1e-3, quick: 1e-3));
display(Claim.Close("… it adds the mask as 0/1: the same as the float 0/1 mask", Claim.MaxDiff(tsBool, tsZeroOne), 0, 1e-6));
Claim.AtMost("with the additive 0/−∞ form it agrees with ours", Claim.MaxDiff(oursCausal, tsAdditive.transpose(0, 1)), full: 1e-5, quick: 1e-5)

// %% [markdown]
// ## 8. The fast path
//
// `ScaledDotProductAttention.Fused` calls libtorch's fused `scaled_dot_product_attention` kernel, which never materialises the $T \times T$ weight matrix in full. It takes the same arguments and masks (converting Workbook's "true = masked" to the kernel's "true = allowed") and gives the same output; `MultiheadAttention` uses it whenever the weights are not requested. At a realistic size, `[B, h, T, d] = [8, 8, 256, 64]`, with a causal mask:

// %%
using System.Diagnostics;
var (bq, bk, bv) = (randn(8, 8, 256, 64), randn(8, 8, 256, 64), randn(8, 8, 256, 64));
double Time(Func<Tensor> f, int reps)
{
    using var noGrad = no_grad();
    for (int r = 0; r < 2; r++) using (var scope = torch.NewDisposeScope()) f();   // warm-up
    var sw = Stopwatch.StartNew();
    for (int r = 0; r < reps; r++) using (var scope = torch.NewDisposeScope()) f();
    return sw.Elapsed.TotalMilliseconds / reps;
}
int reps = Notebook.Pick(quick: 3, full: 20);
double tExplicit = Time(() => ScaledDotProductAttention.Compute(bq, bk, bv, isCausal: true).Output, reps);
double tFused = Time(() => ScaledDotProductAttention.Fused(bq, bk, bv, isCausal: true), reps);
var fusedDiff = Claim.MaxDiff(ScaledDotProductAttention.Fused(bq, bk, bv, isCausal: true), ScaledDotProductAttention.Compute(bq, bk, bv, isCausal: true).Output);
display($"explicit {tExplicit:F1} ms, fused {tFused:F1} ms per call (explicit / fused = {tExplicit / tFused:F2}, {torch.get_num_threads()} threads); max |fused − explicit| = {fusedDiff:E1}");
Claim.AtMost("the fused kernel gives the same output", fusedDiff, full: 1e-4, quick: 1e-4)

// %% [markdown]
// ## What went into the library
//
// | Type | What it does |
// |---|---|
// | `ScaledDotProductAttention.Compute(q, k, v, attnMask, keyPaddingMask, isCausal, dropout, scale)` | the explicit computation; returns output and weights, any `[..., seq, d]` layout |
// | `ScaledDotProductAttention.Fused(...)` | the fused kernel, same arguments, output only |
// | `AttentionMask.Causal / CausalAdditive / KeyPaddingFromLengths / ToAdditive` | masks in Workbook's convention (bool `true` = masked) |
// | `MultiheadAttention(E, h, dropout)` | PyTorch `nn.MultiheadAttention` layout (`in_proj_weight`, `in_proj_bias`, `out_proj`), batch-first, self and cross attention, `RecordWeights` for plotting |
// | `SeparateHeadsAttention` | the per-head formulation, for teaching; `CopyFrom` maps packed weights onto it |
//
// The unit tests compare all of these with PyTorch-computed values (`tests/Workbook.Tests/Attention`), within 1e-5.
//
// ## Exercises
//
// 1. **Permutations.** Permute the keys and the values with the *same* random permutation and show that the output of attention does not change (max |diff|). Then permute the queries and show the output rows are permuted the same way. What does this tell you about word order? (Notebook 02 starts from here.)
// 2. **Padding done right.** For a batch with lengths `[6, 3]` padded to 6, show that (a) changing the embeddings of the padded tokens does not change the outputs of the real tokens of sequence 2, and (b) the padded *queries* still produce outputs. What must a loss function do with those positions?
// 3. **Additive attention.** Bahdanau et al. (2015) scored keys with a small network, $\mathrm{score}(q, k) = v^\top \tanh(W_q q + W_k k)$. Implement it for `[B, T, d]` inputs (use broadcasting to form all query–key pairs), use it in place of the scaled dot product, and check that the weights are distributions. Time it against dot-product attention for `T = 256` and explain the difference.
// 4. **Heads are free.** Show that the number of parameters of `MultiheadAttention(E, h)` does not depend on `h` (try E = 64, h ∈ {1, 2, 4, 8, 16}) and give the formula. Then show that with `h = 1` the module computes plain single-head attention on the projected inputs.
