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
// # 02 · Positional encoding
//
// Notebook 01 ended with a puzzle: attention treats its input as a *set*. This notebook shows that precisely, then fixes it three ways:
//
// 1. why order matters — attention is permutation-equivariant, shown on "dog bites man";
// 2. the sinusoidal encoding of the original Transformer, as a heatmap;
// 3. its properties, each verified numerically: bounded, unique per position, `PE(pos+k)` a fixed linear map of `PE(pos)`, dot products that depend only on distance;
// 4. learned position embeddings;
// 5. rotary embeddings (RoPE), the modern extension, and their relative-position property.
//
// The types used here live in `Workbook.Transformers`: `SinusoidalPositionalEncoding`, `LearnedPositionalEmbedding`, `RotaryEmbedding`.

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
using Workbook.Transformers;
using Microsoft.Data.Analysis;

// %% [markdown]
// ## 1. Attention cannot see order
//
// Take self-attention $y = \mathrm{MHA}(x, x, x)$ and permute the tokens with a permutation matrix $P$. Every query, key and value is computed from its own token, so the scores are permuted on both axes, $P S P^\top$, the softmax is row-wise, and the output is $P y$: **permuting the input permutes the output the same way**. A token's output depends on *which* tokens surround it, not *where* they are. "dog bites man" and "man bites dog":

// %%
long E = 32;
var vocab = new[] { "dog", "bites", "man" };
var tokenEmb = randn(3, E);                                    // one random vector per word
var mha = new MultiheadAttention(E, 4);
mha.eval();
Tensor Sentence(params int[] ids) => tokenEmb.index_select(0, tensor(ids.Select(i => (long)i).ToArray())).unsqueeze(0);
var a = Sentence(0, 1, 2);                                      // dog bites man
var b = Sentence(2, 1, 0);                                      // man bites dog
var ya = mha.forward(a, a, a).Output;
var yb = mha.forward(b, b, b).Output;
var pe = SinusoidalPositionalEncoding.Table(3, E);
var (ap, bp) = (a + pe, b + pe);
var yap = mha.forward(ap, ap, ap).Output;
var ybp = mha.forward(bp, bp, bp).Output;
new DataFrame(
    new StringDataFrameColumn("output of \"dog\": subject (position 0) vs object (position 2)", new[] { "without positions", "with sinusoidal positions added" }),
    new DoubleDataFrameColumn("max |diff|", new[] { Claim.MaxDiff(ya[0, 0], yb[0, 2]), Claim.MaxDiff(yap[0, 0], ybp[0, 2]) }))

// %%
display(Claim.AtMost("without positions, \"dog\" as subject and as object is the same vector (float rounding)", Claim.MaxDiff(ya[0, 0], yb[0, 2]), full: 1e-5, quick: 1e-5));
Claim.AtLeast("with positions added, the two \"dog\"s differ", Claim.MaxDiff(yap[0, 0], ybp[0, 2]), full: 1e-2, quick: 1e-2)

// %% [markdown]
// Without position information "dog" gets exactly the same representation as subject and as object (a difference of 0, or float rounding). The fix is to make each input vector carry its position: add a position-dependent vector to the token embedding (sinusoidal or learned, sections 2–4), or rotate queries and keys by a position-dependent angle (RoPE, section 5).
//
// ## 2. The sinusoidal table
//
// Vaswani et al. (2017, §3.5) add
//
// $$PE_{(pos,\,2i)} = \sin\!\left(\frac{pos}{10000^{2i/d}}\right), \qquad PE_{(pos,\,2i+1)} = \cos\!\left(\frac{pos}{10000^{2i/d}}\right)$$
//
// Columns $2i$ and $2i+1$ share the angular frequency $\omega_i = 10000^{-2i/d}$, which falls geometrically from 1 (wavelength $2\pi$) to almost $1/10000$ (wavelength $\approx 2\pi \cdot 10000$). Each position is a point on $d/2$ circles turning at different speeds, like the hands of a clock.
//
// **Odd $d$.** The formula is applied column by column with $d$ in the exponent: $\lceil d/2 \rceil$ sin columns, $\lfloor d/2 \rfloor$ cos columns, the last column a sin. (The PyTorch tutorial's code fails for odd $d$.) The library's table is computed in float64 and matches PyTorch-computed golden tables within 1e-5 for $d = 16$ and $d = 7$ (unit tests).

// %%
long maxLength = 100, d = 64;
var table = SinusoidalPositionalEncoding.Table(maxLength, d);
Plot.Heatmap(table, title: "PE[pos, j], d = 64: fast columns on the left, slow on the right", xTitle: "feature j", yTitle: "position", colorscale: "RdBu")

// %%
var positions = Enumerable.Range(0, (int)maxLength).Select(p => (double)p).ToList();
Plot.Lines(positions, new[] { 0, 1, 10, 20, 40 }.Select(j => ($"column {j}", (IReadOnlyList<double>)table[.., j].to_type(ScalarType.Float64).data<double>().ToArray())),
    title: "Some columns as functions of the position", xTitle: "position", yTitle: "PE")

// %%
var odd = SinusoidalPositionalEncoding.Table(50, 7, ScalarType.Float64);
var lastColumnSin = odd[.., 6] - arange(50, dtype: ScalarType.Float64).div(Math.Pow(10000, 6.0 / 7)).sin();
display($"d = 7: table {string.Join("×", odd.shape)}, max |last column − sin(pos/10000^(6/7))| = {lastColumnSin.abs().max().item<double>():E1}");
Claim.AtMost("for odd d the last column is a sin", lastColumnSin.abs().max().item<double>(), full: 1e-12, quick: 1e-12)

// %% [markdown]
// The PyTorch tutorial computes the frequencies in float32 as `exp(arange(0, d, 2) · (−ln 10000 / d))`. Same formula, different rounding:

// %%
var divTerm = exp(arange(0, d, 2, dtype: float32) * (float)(-Math.Log(10000.0) / d));
var posCol = arange(maxLength, dtype: float32).unsqueeze(1);
var tutorial = zeros(maxLength, d);
tutorial[.., TensorIndex.Slice(0, null, 2)] = sin(posCol * divTerm);
tutorial[.., TensorIndex.Slice(1, null, 2)] = cos(posCol * divTerm);
display($"max |tutorial (float32) − library (float64, rounded)| = {Claim.MaxDiff(tutorial, table):E1}");
Claim.AtMost("the tutorial's float32 table is the same formula, up to float32 rounding", Claim.MaxDiff(tutorial, table), full: 1e-4, quick: 1e-4)

// %% [markdown]
// ## 3. Properties, verified
//
// **Bounded.** Every entry is a sine or cosine, so it lies in [−1, 1] whatever the position: unlike feeding the raw index `pos`, the encoding never dwarfs the token embedding.
// **Unique.** No two positions get the same vector: we compute all pairwise distances between the first 2,000 rows. The closest pair turns out to be neighbours, still about 1.5 apart, while every entry stays within [−1, 1]:

// %%
var big = SinusoidalPositionalEncoding.Table(2000, d, ScalarType.Float64);
var dist = cdist(big, big);
dist = dist + eye(2000, dtype: ScalarType.Float64) * 1e9;          // ignore each row's distance to itself
var closest = dist.min().item<double>();
var neighbours = (big[1..] - big[..^1]).norm(1).min().item<double>();
display(new DataFrame(
    new StringDataFrameColumn("property (2,000 positions, d = 64)", new[] { "min entry", "max entry", "smallest distance between two different positions", "that distance for neighbours pos, pos+1 (min)" }),
    new DoubleDataFrameColumn("value", new[] { big.min().item<double>(), big.max().item<double>(), closest, neighbours })));
display(Claim.That("every entry lies in [−1, 1]", big.abs().max().item<double>() <= 1, $"max |entry| = {big.abs().max().item<double>():F6}"));
display(Claim.Close("the closest pair of positions are neighbours", closest, neighbours, 1e-12));
Claim.Between("neighbours are still about 1.5 apart", closest, 1.4, 1.6, quick: (1.4, 1.6))

// %% [markdown]
// **A shift is a fixed linear map.** For each frequency, $(\sin(\omega(p+k)), \cos(\omega(p+k)))$ is the point $(\sin \omega p, \cos \omega p)$ rotated by the angle $\omega k$:
//
// $$\begin{pmatrix} \sin\omega(p+k) \\ \cos\omega(p+k) \end{pmatrix} = \begin{pmatrix} \cos\omega k & \sin\omega k \\ -\sin\omega k & \cos\omega k \end{pmatrix} \begin{pmatrix} \sin\omega p \\ \cos\omega p \end{pmatrix}$$
//
// So $PE(p+k) = M_k\, PE(p)$ with $M_k$ block-diagonal and **independent of $p$**: "k steps later" is one linear map, which the paper hoped would let the model attend by relative position easily. We build $M_k$ from the formula and apply the *same* matrix to 1,500 different positions; the error is float64 rounding:

// %%
Tensor ShiftMatrix(long k)
{
    var M = zeros(d, d, dtype: ScalarType.Float64);
    for (long i = 0; i < d / 2; i++)
    {
        double w = Math.Pow(10000, -2.0 * i / d), c = Math.Cos(w * k), s = Math.Sin(w * k);
        M[2 * i, 2 * i] = c;      M[2 * i, 2 * i + 1] = s;
        M[2 * i + 1, 2 * i] = -s; M[2 * i + 1, 2 * i + 1] = c;
    }
    return M;
}
var ks = new long[] { 1, 5, 50, 500 };
var shiftErrors = ks.Select(k => Claim.MaxDiff(big[(int)k..(int)(k + 1500)], matmul(big[..1500], ShiftMatrix(k).T))).ToArray();
display(new DataFrame(
    new Int64DataFrameColumn("k", ks),
    new DoubleDataFrameColumn("max over 1,500 positions of |PE(p+k) − M_k PE(p)|", shiftErrors)));
Claim.AtMost("one matrix M_k shifts every position by k (float64 rounding)", shiftErrors.Max(), full: 1e-10, quick: 1e-10)

// %% [markdown]
// **Dot products depend only on distance.** Using $\sin a \sin b + \cos a \cos b = \cos(a-b)$ pair by pair,
//
// $$PE(p) \cdot PE(p+k) = \sum_{i=0}^{d/2-1} \cos(\omega_i k),$$
//
// a function of $k$ alone, symmetric in $k$, largest at $k = 0$ (where it equals $d/2$) and decaying, with ripples, as $|k|$ grows. Three different starting positions $p$ give the same curve, and the formula traces it:

// %%
var kRange = Enumerable.Range(0, 200).ToList();
IReadOnlyList<double> DotCurve(int p) => kRange.Select(k => big[p].dot(big[p + k]).item<double>()).ToList();
IReadOnlyList<double> formula = kRange.Select(k => Enumerable.Range(0, (int)d / 2).Sum(i => Math.Cos(Math.Pow(10000, -2.0 * i / d) * k))).ToList();
var curves = new[] { 0, 100, 1000 }.Select(p => ($"PE({p}) · PE({p}+k)", DotCurve(p))).ToList();
curves.Add(("Σ cos(ω_i k)", formula));
Plot.Lines(kRange.Select(k => (double)k).ToList(), curves, title: "Dot product against distance k", xTitle: "k", yTitle: "dot product")

// %%
var dotError = curves.Take(3).Max(c => c.Item2.Zip(formula, (x, y) => Math.Abs(x - y)).Max());
display($"max |PE(p)·PE(p+k) − Σ cos(ω_i k)| over p ∈ {{0, 100, 1000}}, k < 200: {dotError:E1}");
display(Claim.AtMost("PE(p)·PE(p+k) = Σ cos(ω_i k) whatever p", dotError, full: 1e-9, quick: 1e-9));
Claim.Close("at k = 0 the dot product is d/2", formula[0], d / 2.0, 1e-12)

// %% [markdown]
// ### The source articles' version
//
// The source articles write the table as
//
// `PE(pos, 2·d_model − 1) = sin(pos / 10000^(2i/d_model))` if `i < d_model/2`, else the same with `cos`.
//
// Taken literally, the left-hand side names one column, `2·d_model − 1`, whatever `i` is, and that column does not exist: a table with `d_model` columns has columns 0 … `d_model − 1`.

// %% tags=["errata-1-article"]
long articleColumn = 2 * d - 1;
string outOfRange;
try { outOfRange = $"no error, value {big[0, articleColumn].item<double>()}"; } catch (Exception e) { outOfRange = e.Message.Split('\n')[0]; }
display($"d = {d}: the articles' column index 2·d − 1 = {articleColumn}; reading it from a table with {big.shape[1]} columns: {outOfRange}");
// The only reading that fills a table: column j < d/2 is sin(ω_j pos), column j ≥ d/2 is cos(ω_j pos), with ω_j = 10000^(−2j/d) and j the column.
Tensor ArticleTable(long n, long dd)
{
    var j = arange(dd, dtype: ScalarType.Float64);
    var angle = arange(n, dtype: ScalarType.Float64).unsqueeze(1) * (j * (-2.0 * Math.Log(10000) / dd)).exp();
    return where(j.lt(dd / 2), angle.sin(), angle.cos());
}
var article = ArticleTable(2000, d);
var cosHalf = article[.., (int)(d / 2)..];
var articleFrequencies = (arange(d / 2, d, dtype: ScalarType.Float64) * (-2.0 * Math.Log(10000) / d)).exp();
int[] starts = { 0, 100, 1000 };
double ArticleDot(int p) => article[p].dot(article[p + 10]).item<double>();
display(new DataFrame(
    new StringDataFrameColumn("the articles' table, d = 64, 2,000 positions", new[] { "largest ω in the cos half", "min entry of the cos half", "PE(0)·PE(10)", "PE(100)·PE(110)", "PE(1000)·PE(1010)" }),
    new DoubleDataFrameColumn("value", new[] { articleFrequencies.max().item<double>(), cosHalf.min().item<double>() }.Concat(starts.Select(ArticleDot)))));
display(Claim.That("the articles' column 2·d − 1 is out of range", articleColumn >= big.shape[1], $"column {articleColumn} of {big.shape[1]}"));
display(Claim.AtLeast("the cos half hardly moves: every entry stays ≥ 0.98 over 2,000 positions", cosHalf.min().item<double>(), full: 0.98, quick: 0.98));
Claim.AtLeast("its PE(p)·PE(p+10) depends on p (spread over p = 0, 100, 1000)", starts.Max(ArticleDot) - starts.Min(ArticleDot), full: 5, quick: 5)

// %% [markdown]
// Half of the articles' columns are almost constant (their frequencies are 10⁻⁴ and below), so they add nearly the same vector to every position and carry almost no information about it. Worse, the dot product between positions 10 apart now depends on *where* the pair sits, so "10 tokens apart" is no longer one relation the model could learn once. The table of the paper pairs each sin with a cos of the **same** frequency, in columns 2i and 2i + 1, and that pairing is what makes PE(p)·PE(p+k) = Σ cos(ω_i k) independent of p:

// %% tags=["errata-1-correct"]
double CorrectDot(int p) => big[p].dot(big[p + 10]).item<double>();
double tenApart = Enumerable.Range(0, (int)d / 2).Sum(i => Math.Cos(Math.Pow(10000, -2.0 * i / d) * 10));
display(new DataFrame(
    new StringDataFrameColumn("PE(p)·PE(p+10), d = 64", starts.Select(p => $"p = {p}")),
    new DoubleDataFrameColumn("the articles' table", starts.Select(ArticleDot)),
    new DoubleDataFrameColumn("the paper's table", starts.Select(CorrectDot))));
var pAxis = Enumerable.Range(0, 1990).Select(p => (double)p).ToList();
display(Plot.Lines(pAxis, new (string, IReadOnlyList<double>)[] {
    ("the articles' table", pAxis.Select(p => ArticleDot((int)p)).ToList()), ("the paper's table", pAxis.Select(p => CorrectDot((int)p)).ToList()) },
    title: "PE(p)·PE(p+10) against the position p", xTitle: "p", yTitle: "dot product"));
Claim.Close("the paper's PE(p)·PE(p+10) is Σ cos(10 ω_i) at every p", starts.Max(p => Math.Abs(CorrectDot(p) - tenApart)), 0, 1e-9)

// %% [markdown]
// ## 4. Learned position embeddings
//
// BERT and GPT-2 instead *learn* a table: a parameter `weight [max_len, d]`, row `pos` added to the token at `pos`, initialised at random and trained like any other weight. It can express anything the sinusoids can, but nothing forces it to have their structure, it costs `max_len × d` parameters, and it knows no position beyond `max_len`:

// %%
var learned = new LearnedPositionalEmbedding(maxLength: 16, dModel: d);
var xTokens = randn(2, 10, d);
var withPos = learned.forward(xTokens);
string tooLong;
try { learned.forward(randn(1, 20, d)); tooLong = "no error"; } catch (Exception e) { tooLong = e.Message; }
display(new DataFrame(
    new StringDataFrameColumn("", new[] { "parameters", "x + P − x equals rows 0..9 (max |diff|)", "20 tokens" }),
    new StringDataFrameColumn("value", new[] { $"{learned.parameters().Sum(p => p.numel())} = 16 × {d}",
        $"{Claim.MaxDiff(withPos - xTokens, learned.weight[..10].expand(2, 10, d)):E1}", tooLong })));
display(Claim.Close("the table costs max_len × d parameters", learned.parameters().Sum(p => p.numel()), 16 * d, 0));
Claim.That("it knows no position beyond max_len", tooLong != "no error", tooLong)

// %% [markdown]
// The sinusoidal table, by contrast, is defined for every position (`Table(1_000_000, d)` works) — though a model trained on short sequences does not automatically generalise to longer ones either way. The original paper found both variants "nearly identical" in quality.
//
// ## 5. Rotary position embeddings (RoPE)
//
// Additive encodings mix position into the token vector, and the attention score $(x_m + PE_m)^\top W_Q^\top W_K (x_n + PE_n)$ then contains content terms, position terms and cross terms; only part of it is relative. **RoPE** (Su et al., 2021; used by LLaMA and most recent LLMs) instead *rotates* the query and key vectors, pair of features by pair of features, by an angle proportional to the position:
//
// $$\begin{pmatrix} x'_{2i} \\ x'_{2i+1} \end{pmatrix} = \begin{pmatrix} \cos m\theta_i & -\sin m\theta_i \\ \sin m\theta_i & \cos m\theta_i \end{pmatrix} \begin{pmatrix} x_{2i} \\ x_{2i+1} \end{pmatrix}, \qquad \theta_i = 10000^{-2i/d}$$
//
// Writing $R_m$ for this block rotation, $R_m^\top R_n = R_{n-m}$, so
//
// $$\langle R_m q, R_n k \rangle = q^\top R_m^\top R_n k = q^\top R_{n-m}\, k:$$
//
// the score depends on the positions **only through $n - m$**. Values are not rotated. We check: one query vector and one key vector, placed at every pair of positions $(m, n)$, 0–31:

// %%
long dh = 32, P = 32;
var qv = randn(dh); var kv = randn(dh);
var rq = RotaryEmbedding.Apply(qv.expand(P, dh));                 // row m = R_m q
var rk = RotaryEmbedding.Apply(kv.expand(P, dh));                 // row n = R_n k
var ropeScores = matmul(rq, rk.T);                                 // [m, n]
var peP = SinusoidalPositionalEncoding.Table(P, dh);
var additiveScores = matmul(qv + peP, (kv + peP).T);              // (q + PE_m)·(k + PE_n)
Plot.Grid(new[] { Plot.Heatmap(ropeScores, colorscale: "RdBu"), Plot.Heatmap(additiveScores, colorscale: "RdBu") }, 1, 2,
    title: "score(m, n): RoPE (left) is constant along every diagonal n − m; additive sinusoidal PE (right) is not")

// %%
double DiagonalSpread(Tensor s) => Enumerable.Range(-(int)P + 2, 2 * (int)P - 3).Max(off => s.diagonal(off).std().item<float>());
display(new DataFrame(
    new StringDataFrameColumn("scores over (m, n) ∈ [0, 32)²", new[] { "RoPE", "additive sinusoidal" }),
    new DoubleDataFrameColumn("largest std along a diagonal n − m = const", new[] { DiagonalSpread(ropeScores), DiagonalSpread(additiveScores) }),
    new DoubleDataFrameColumn("std of all scores", new double[] { ropeScores.std().item<float>(), additiveScores.std().item<float>() })));
display(Claim.AtMost("RoPE scores vary along a diagonal only by float rounding (relative to their spread)", DiagonalSpread(ropeScores) / ropeScores.std().item<float>(), full: 1e-5, quick: 1e-5));
Claim.AtLeast("additive scores vary along diagonals (relative to their spread)", DiagonalSpread(additiveScores) / additiveScores.std().item<float>(), full: 0.05, quick: 0.05)

// %% [markdown]
// Along each diagonal the RoPE scores vary only by float rounding, while the scores themselves vary across diagonals: position enters purely as the offset. Rotations also preserve lengths, so RoPE never changes a vector's norm, and position 0 is left untouched:

// %%
var xr = randn(4, 50, dh);
var rotated = new RotaryEmbedding(dh).forward(xr);
display($"max |‖R x‖ − ‖x‖| = {Claim.MaxDiff(rotated.norm(-1), xr.norm(-1)):E1}; position 0 unchanged: max |diff| = {Claim.MaxDiff(rotated[.., 0], xr[.., 0]):E1}");
display(Claim.AtMost("RoPE preserves lengths (float rounding)", Claim.MaxDiff(rotated.norm(-1), xr.norm(-1)), full: 1e-4, quick: 1e-4));
Claim.Close("position 0 is left untouched", Claim.MaxDiff(rotated[.., 0], xr[.., 0]), 0, 1e-7)

// %% [markdown]
// ## What went into the library
//
// | Type | What it does |
// |---|---|
// | `SinusoidalPositionalEncoding.Table(maxLength, d)` | the table, float64-exact, any `d` (odd: last column sin) |
// | `SinusoidalPositionalEncoding(d, maxLength, dropout)` | module adding `PE[offset .. offset+T]` to `[..., T, d]`, then dropout |
// | `LearnedPositionalEmbedding(maxLength, d)` | trainable table, N(0, 0.02²) init |
// | `RotaryEmbedding(d)` / `RotaryEmbedding.Apply(x, offset)` | RoPE on `[..., T, d]` (interleaved pairs, as in the paper) |
//
// ## Exercises
//
// 1. **Where is the relative part?** With additive encodings, the score between tokens at $m$ and $n$ is $(x_m + p_m)^\top A (x_n + p_n)$ with $A = W_Q^\top W_K$. Expand it into four terms. Using random $x$, $A$ and the sinusoidal $p$, compute each term on a 32 × 32 grid and measure which ones are constant along diagonals. Is $p_m^\top A p_n$ relative for a general $A$? For which $A$ is it?
// 2. **rotate_half.** Hugging Face's LLaMA code pairs feature $i$ with feature $i + d/2$ instead of $2i$ with $2i+1$: $x' = x \cos + \mathrm{rotate\_half}(x) \sin$ with $\mathrm{rotate\_half}(x) = (-x_{d/2:}, x_{:d/2})$. Implement it, show it equals `RotaryEmbedding.Apply` after a fixed permutation of the features, and verify its relative-position property.
// 3. **The base.** Tabulate the smallest distance between two rows of the sinusoidal table (d = 16, 4,000 positions) for bases 10, 100, 10,000 and 1,000,000, and plot the dot-product curve $PE(0)\cdot PE(k)$ for each. What goes wrong with a small base, and with a very large one?
