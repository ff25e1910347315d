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
// # 01 · Attention — solutions
//
// Solutions to the exercises of [01 · Attention](../01-attention.ipynb). Each answer ends with the number that proves it.

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

// %% [markdown]
// ## 1. Permutations
//
// Permuting keys and values together only reorders the terms of each weighted sum $\sum_j w_{ij} v_j$ (the weight of a key travels with its value), so the output cannot change. Permuting the queries permutes the output rows: attention is **permutation-equivariant** in the queries and **invariant** in the key–value pairs.

// %%
var q = randn(1, 8, 16); var k = randn(1, 8, 16); var v = randn(1, 8, 16);
var perm = randperm(8);
var (o, _) = ScaledDotProductAttention.Compute(q, k, v);
var (oKV, _) = ScaledDotProductAttention.Compute(q, k.index_select(1, perm), v.index_select(1, perm));
var (oQ, _) = ScaledDotProductAttention.Compute(q.index_select(1, perm), k, v);
display(new DataFrame(
    new StringDataFrameColumn("check", new[] { "keys+values permuted: output unchanged", "queries permuted: rows permuted alike" }),
    new DoubleDataFrameColumn("max |diff|", new[] { Claim.MaxDiff(o, oKV), Claim.MaxDiff(o.index_select(1, perm), oQ) })));
display(Claim.AtMost("permuting keys and values together leaves the output unchanged", Claim.MaxDiff(o, oKV), full: 1e-5, quick: 1e-5));
Claim.AtMost("permuting the queries permutes the output rows", Claim.MaxDiff(o.index_select(1, perm), oQ), full: 1e-5, quick: 1e-5)

// %% [markdown]
// Word order is therefore invisible to attention alone: "dog bites man" and "man bites dog" give every token the same output. The model needs position information added to the tokens — the subject of notebook 02.
//
// ## 2. Padding done right

// %%
var mha = new MultiheadAttention(16, 4);
mha.eval();
var x = randn(2, 6, 16);
var pad = AttentionMask.KeyPaddingFromLengths(new long[] { 6, 3 }, 6);
var (out1, _) = mha.forward(x, x, x, keyPaddingMask: pad);
var x2 = x.clone();
x2[1, 3..] = randn(3, 16) * 10;                       // garbage in the padded slots of sequence 2
var (out2, _) = mha.forward(x2, x2, x2, keyPaddingMask: pad);
display(new DataFrame(
    new StringDataFrameColumn("check", new[] { "(a) real tokens of sequence 2, before vs after", "(b) mean |output| at the padded queries" }),
    new DoubleDataFrameColumn("value", new[] { Claim.MaxDiff(out1[1, ..3], out2[1, ..3]), out1[1, 3..].abs().mean().item<float>() })));
display(Claim.AtMost("(a) the real tokens' outputs are unchanged (to rounding)", Claim.MaxDiff(out1[1, ..3], out2[1, ..3]), full: 1e-5, quick: 1e-5));
Claim.AtLeast("(b) the padded queries still get ordinary outputs (mean |output|)", out1[1, 3..].abs().mean().item<float>(), full: 1e-2, quick: 1e-2)

// %% [markdown]
// (a) The real tokens never look at the padded keys, so their outputs are unchanged (to rounding). (b) The padded positions still *ask* queries and get ordinary-looking outputs: nothing in attention zeroes them. A loss must therefore ignore those positions — e.g. `cross_entropy(..., ignore_index: PAD)` for token targets, or multiply the per-position loss by the inverse padding mask and divide by the number of real tokens.
//
// ## 3. Additive attention

// %%
long d = 64, dAtt = 64;
var Wq = nn.Linear(d, dAtt, hasBias: false);
var Wk = nn.Linear(d, dAtt);
var vAtt = nn.Linear(dAtt, 1, hasBias: false);
(Tensor Output, Tensor Weights) Additive(Tensor query, Tensor key, Tensor value, Tensor? keyPadding = null)
{
    // [B, Tq, 1, dAtt] + [B, 1, Tk, dAtt] -> [B, Tq, Tk, dAtt]: every query-key pair, then v^T tanh(.)
    var s = vAtt.forward(tanh(Wq.forward(query).unsqueeze(2) + Wk.forward(key).unsqueeze(1))).squeeze(-1);
    if (keyPadding is not null) s = s.masked_fill(keyPadding.unsqueeze(1), double.NegativeInfinity);
    var w = s.softmax(-1);
    return (matmul(w, value), w);
}
var xa = randn(2, 10, d);
var padA = AttentionMask.KeyPaddingFromLengths(new long[] { 10, 7 }, 10);
var (_, wa) = Additive(xa, xa, xa, padA);
display($"rows sum to 1: max |Σw − 1| = {Claim.MaxDiff(wa.sum(-1), ones(2, 10)):E1}; weight on padded keys: {wa[1, .., 7..].abs().max().item<float>()}");
display(Claim.AtMost("the additive weights are distributions", Claim.MaxDiff(wa.sum(-1), ones(2, 10)), full: 1e-5, quick: 1e-5));
Claim.Close("padded keys get weight 0", wa[1, .., 7..].abs().max().item<float>(), 0, 0)

// %%
using System.Diagnostics;
double Time(Action f, int reps)
{
    using var noGrad = no_grad();
    using (var s0 = torch.NewDisposeScope()) f();
    var sw = Stopwatch.StartNew();
    for (int r = 0; r < reps; r++) using (var s = torch.NewDisposeScope()) f();
    return sw.Elapsed.TotalMilliseconds / reps;
}
var xt = randn(4, 256, d);
int reps = Notebook.Pick(quick: 2, full: 10);
double tAdd = Time(() => Additive(xt, xt, xt), reps);
double tDot = Time(() => ScaledDotProductAttention.Compute(xt, xt, xt), reps);
display($"T = 256, B = 4, d = 64: additive {tAdd:F1} ms, dot-product {tDot:F1} ms ({tAdd / tDot:F0}× slower)");
display(Claim.Close("additive attention materialises 4·256·256·64 floats = 67 MB", 4.0 * 256 * 256 * 64 * 4 / 1e6, 67.1, 0.05));
Claim.AtLeast("… and is much slower than one batched matrix multiplication (ratio)", tAdd / tDot, full: 2, quick: null)

// %% [markdown]
// Additive attention materialises a `[B, T, T, d_att]` tensor (here 4·256·256·64 floats = 67 MB) and applies `tanh` to all of it; dot-product attention is one batched matrix multiplication producing `[B, T, T]`, which BLAS runs at close to peak speed. Same asymptotic FLOPs, very different memory traffic — one reason Vaswani et al. chose the dot product (and why they needed the √d_k scale to make it behave).
//
// ## 4. Heads are free

// %%
var counts = new[] { 1, 2, 4, 8, 16 }.Select(h => (double)new MultiheadAttention(64, h).parameters().Sum(p => p.numel())).ToArray();
display(new DataFrame(new Int32DataFrameColumn("h", new[] { 1, 2, 4, 8, 16 }), new DoubleDataFrameColumn("parameters", counts),
    new DoubleDataFrameColumn("4E² + 4E", Enumerable.Repeat(4.0 * 64 * 64 + 4 * 64, 5))));
Claim.That("the count is 4E² + 4E whatever h is", counts.All(c => c == 4.0 * 64 * 64 + 4 * 64), string.Join(", ", counts))

// %% [markdown]
// The projections are `E × E` whatever `h` is (`h` only decides how the `E` output features are *grouped*), so the count is $3E^2 + 3E$ (in-projection) $+ E^2 + E$ (out-projection) $= 4E^2 + 4E$. With `h = 1` there is one group: the module is plain attention on the projected inputs.

// %%
var one = new MultiheadAttention(16, 1);
one.eval();
var xs = randn(2, 5, 16);
var Wp = one.in_proj_weight.detach().chunk(3, 0);
var bp = one.in_proj_bias!.detach().chunk(3, 0);
var (single, _) = ScaledDotProductAttention.Compute(matmul(xs, Wp[0].T) + bp[0], matmul(xs, Wp[1].T) + bp[1], matmul(xs, Wp[2].T) + bp[2]);
var expected = one.out_proj.forward(single);
display($"h = 1 vs single-head attention: max |diff| = {Claim.MaxDiff(one.forward(xs, xs, xs).Output, expected):E1}");
Claim.AtMost("with h = 1 the module is plain attention on the projected inputs", Claim.MaxDiff(one.forward(xs, xs, xs).Output, expected), full: 1e-5, quick: 1e-5)
