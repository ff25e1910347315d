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
// # 02 · Positional encoding — solutions
//
// Solutions to the exercises of [02 · Positional encoding](../02-positional-encoding.ipynb).

// %%
#r "nuget: Workbook, 0.1.0"
#r "nuget: TorchSharp-cpu, 0.107.0"
using TorchSharp;
using static TorchSharp.torch;
using Workbook;
using Workbook.Plots;
Notebook.Setup(seed: 42)

// %%
using Workbook.Transformers;
using Microsoft.Data.Analysis;
// The largest standard deviation along any diagonal n − m = const of a square score grid: 0 means "depends only on n − m".
double DiagonalSpread(Tensor s) => Enumerable.Range(-(int)s.shape[0] + 2, 2 * (int)s.shape[0] - 3).Max(off => s.to_type(ScalarType.Float64).diagonal(off).std().item<double>());

// %% [markdown]
// ## 1. Where is the relative part?
//
// $(x_m + p_m)^\top A (x_n + p_n) = \underbrace{x_m^\top A x_n}_{\text{content}} + \underbrace{x_m^\top A p_n}_{\text{content}\to\text{position}} + \underbrace{p_m^\top A x_n}_{\text{position}\to\text{content}} + \underbrace{p_m^\top A p_n}_{\text{position–position}}$.
//
// Only the last term involves both positions. Pair by pair, $p$ is $(\sin\omega m, \cos\omega m)$; if $A$'s 2×2 block for that pair is a rotation-and-scaling $\begin{pmatrix} a & b \\ -b & a\end{pmatrix}$ (for example $A = I$), then $p_m^\top A p_n = a\cos\omega(m-n) + b\sin\omega(m-n)$: relative. A general $A$ mixes sin and cos of different frequencies and is not.

// %%
long d = 32, P = 32;
var p = SinusoidalPositionalEncoding.Table(P, d, ScalarType.Float64);
var x = randn(P, d, dtype: ScalarType.Float64);
var A = randn(d, d, dtype: ScalarType.Float64) / Math.Sqrt(d);
var rotScale = zeros(d, d, dtype: ScalarType.Float64);           // block-diagonal [[a, b], [-b, a]]
for (int i = 0; i < d / 2; i++)
{
    double ai = Notebook.Random.NextDouble(), bi = Notebook.Random.NextDouble();
    rotScale[2 * i, 2 * i] = ai; rotScale[2 * i, 2 * i + 1] = bi; rotScale[2 * i + 1, 2 * i] = -bi; rotScale[2 * i + 1, 2 * i + 1] = ai;
}
var spreads = new[] {
    DiagonalSpread(matmul(matmul(x, A), x.T)), DiagonalSpread(matmul(matmul(x, A), p.T)), DiagonalSpread(matmul(matmul(p, A), x.T)),
    DiagonalSpread(matmul(matmul(p, A), p.T)), DiagonalSpread(matmul(p, p.T)), DiagonalSpread(matmul(matmul(p, rotScale), p.T)) };
display(new DataFrame(
    new StringDataFrameColumn("term", new[] { "x_mᵀ A x_n", "x_mᵀ A p_n", "p_mᵀ A x_n", "p_mᵀ A p_n, random A", "p_mᵀ A p_n, A = I", "p_mᵀ A p_n, A rotation-scaling blocks" }),
    new DoubleDataFrameColumn("largest std along a diagonal", spreads)));
display(Claim.AtLeast("the content terms and the position term with a random A vary along diagonals (smallest spread of the four)", spreads.Take(4).Min(), full: 0.05, quick: 0.05));
Claim.AtMost("with A = I or rotation-scaling blocks the position term is exactly relative (float64 rounding)", Math.Max(spreads[4], spreads[5]), full: 1e-10, quick: 1e-10)

// %% [markdown]
// The content terms and the position term with a random $A$ vary along diagonals; with $A = I$ or rotation-scaling blocks the position term is exactly relative (float64 rounding). A trained model would have to *learn* such an $A$; RoPE builds the relative structure in.
//
// ## 2. rotate_half

// %%
Tensor RotateHalfRope(Tensor xs, long offset = 0)
{
    long dd = xs.shape[^1], half = dd / 2, T = xs.shape[^2];
    var theta = pow(10000.0, arange(0, dd, 2, dtype: ScalarType.Float64).div(dd).neg());          // [d/2]
    var angle = arange(offset, offset + T, dtype: ScalarType.Float64).unsqueeze(1) * theta;        // [T, d/2]
    var cos = cat(new[] { angle.cos(), angle.cos() }, -1).to_type(xs.dtype);                      // [T, d]: frequency i at i and i + d/2
    var sin = cat(new[] { angle.sin(), angle.sin() }, -1).to_type(xs.dtype);
    var rotated = cat(new[] { -xs.narrow(-1, half, half), xs.narrow(-1, 0, half) }, -1);                           // rotate_half
    return xs * cos + rotated * sin;
}
// Interleaved feature 2i <-> half-split feature i, 2i+1 <-> i + d/2.
var perm = cat(new[] { arange(0, d, 2), arange(1, d, 2) });
var xr = randn(40, d);
var interleaved = RotaryEmbedding.Apply(xr);
var halfSplit = RotateHalfRope(xr.index_select(-1, perm));
display($"rotate_half(x[perm]) vs RotaryEmbedding(x)[perm]: max |diff| = {Claim.MaxDiff(halfSplit, interleaved.index_select(-1, perm)):E1}");
Claim.AtMost("rotate_half equals RotaryEmbedding.Apply after a fixed permutation of the features", Claim.MaxDiff(halfSplit, interleaved.index_select(-1, perm)), full: 1e-5, quick: 1e-5)

// %%
var qv = randn(d); var kv = randn(d);
var scores = matmul(RotateHalfRope(qv.expand(P, d)), RotateHalfRope(kv.expand(P, d)).T);
display($"rotate_half scores: largest std along a diagonal = {DiagonalSpread(scores):E1} (relative), overall std = {scores.std().item<float>():F2}");
Claim.AtMost("rotate_half keeps the relative-position property (diagonal spread / overall spread)", DiagonalSpread(scores) / scores.std().item<float>(), full: 1e-5, quick: 1e-5)

// %% [markdown]
// The two conventions are the same rotation applied to differently ordered features. They are *not* interchangeable for a given checkpoint: weights trained with one ordering must be used with that ordering (or permuted).
//
// ## 3. The base

// %%
var bases = new[] { 10.0, 100.0, 10_000.0, 1_000_000.0 };
long L = 2000, d16 = 16;
var idx = arange(L);
var near = (idx.unsqueeze(0) - idx.unsqueeze(1)).abs().lt(10);          // pairs less than 10 positions apart
var rows = new List<(double Base, double Neighbour, double FarMin, long I, long J)>();
foreach (var b in bases)
{
    using var scope = NewDisposeScope();
    var t = SinusoidalPositionalEncoding.Table(L, d16, ScalarType.Float64, baseValue: b);
    var dist = cdist(t, t).masked_fill(near, double.PositiveInfinity);
    var flat = dist.argmin().item<long>();
    rows.Add((b, (t[1] - t[0]).norm().item<double>(), dist.min().item<double>(), flat / L, flat % L));
}
new DataFrame(
    new DoubleDataFrameColumn("base", rows.Select(r => r.Base)),
    new DoubleDataFrameColumn("distance between neighbours", rows.Select(r => r.Neighbour)),
    new DoubleDataFrameColumn($"smallest distance between positions ≥ 10 apart (of {L})", rows.Select(r => r.FarMin)),
    new StringDataFrameColumn("that pair", rows.Select(r => $"{r.I} and {r.J}")),
    new Int64DataFrameColumn("their gap", rows.Select(r => Math.Abs(r.J - r.I))))

// %%
var kAxis = Enumerable.Range(0, 1000).Select(k => (double)k).ToList();
Plot.Lines(kAxis, bases.Select(b => ($"base {b:G}", (IReadOnlyList<double>)kAxis.Select(k =>
    Enumerable.Range(0, (int)d16 / 2).Sum(i => Math.Cos(Math.Pow(b, -2.0 * i / d16) * k))).ToList())),
    title: "PE(0) · PE(k) for d = 16 and different bases", xTitle: "distance k", yTitle: "dot product")

// %%
double Dot(double b, int k) => Enumerable.Range(0, (int)d16 / 2).Sum(i => Math.Cos(Math.Pow(b, -2.0 * i / d16) * k));
var gap = rows.ToDictionary(r => r.Base, r => Math.Abs(r.J - r.I));
var base10 = Enumerable.Range(0, 1000).Select(k => Dot(10, k)).ToArray();
display(Claim.Close("the dot product starts at d/2 = 8 for k = 0", Dot(10_000, 0), 8, 1e-12));
display(Claim.AtLeast("small bases: the most similar pair ≥ 10 apart is more than 1,000 positions apart (smaller gap of bases 10, 100)", Math.Min(gap[10], gap[100]), full: 1000, quick: 1000));
display(Claim.That("base 10: the dot product drops below 0 within 5 positions", base10.Take(6).Any(v => v < 0), $"{string.Join(", ", base10.Take(6).Select(v => v.ToString("F2")))}"));
display(Claim.Between("… then swings between about −6 (lowest after k = 5)", base10.Skip(5).Min(), -6.5, -5.5, quick: (-6.5, -5.5)));
display(Claim.Between("… and +5.5 (highest after k = 5)", base10.Skip(5).Max(), 5, 6, quick: (5, 6)));
display(Claim.Between("base 10,000: the most similar non-neighbouring pair is only about 20 positions apart", gap[10_000], 10, 30, quick: (10, 30)));
display(Claim.Between("… the dot product is about 3.5 at k = 100", Dot(10_000, 100), 3, 4, quick: (3, 4)));
display(Claim.AtMost("… and below 2 at k = 500", Dot(10_000, 500), full: 2, quick: 2));
display(Claim.Close("base 10⁶: positions 176 apart come closest", gap[1_000_000], 176, 0));
var far = rows.Single(r => r.Base == 1_000_000);
display(Claim.AtMost("… almost as close as neighbours (their distance / the neighbours')", far.FarMin / far.Neighbour, full: 1.3, quick: 1.3));
display(Claim.Between("… and the dot product stays near 5: 4.7 on average over k = 20–200", Enumerable.Range(20, 181).Average(k => Dot(1e6, k)), 4.6, 4.75, quick: (4.6, 4.75)));
Claim.AtLeast("… back above 6 at k = 999", Dot(1e6, 999), full: 6, quick: 6)

// %% [markdown]
// Reading the table and the curves (the dot product starts at d/2 = 8 for k = 0):
//
// * **Small base (10, 100).** Every frequency is fast. Neighbours are well separated, but the encoding keeps cycling: the most similar pair of positions at least 10 apart is more than 1,000 positions apart, and with base 10 the dot product drops below 0 within 5 positions and then swings between about −6 and +5.5 at every range — a far position can look more similar than a near one.
// * **Base 10,000.** The most similar "non-neighbouring" pair is itself only about 20 positions apart; the dot product falls more gradually (to about 3.5 at k = 100 and below 2 at k = 500), with ripples. Similarity in encoding space roughly tracks closeness in position over the whole range.
// * **Very large base (10⁶).** Most frequencies are so slow that their columns barely move over 2,000 positions: positions 176 apart come almost as close as neighbours, and the dot product stays near 5 for the first couple of hundred positions (4.7 on average over k = 20–200) and is back above 6 at k = 999 — poor resolution at long range.
//
// At d = 16 the picture is noisy (only 8 frequencies); with d = 512 the curves are much smoother. 10,000 balances the two effects for sequences of a few thousand tokens; long-context models (with RoPE, which uses the same frequencies) raise the base as the context grows.
