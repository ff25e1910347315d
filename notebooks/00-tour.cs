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
// # 00 · A tour of the Workbook
//
// This series teaches modern deep learning by **building it** in C#: attention, positional encoding, the Transformer, the training loop, GPT-2 text generation and CNN image classification. Every formula is executable and checked against an independent reference; every notebook runs top to bottom on a laptop CPU.
//
// | Notebook | What you build |
// |---|---|
// | 01 Attention | scaled dot-product and multi-head attention, masks, why √d_k |
// | 02 Positional encoding | sinusoidal, learned and rotary encodings, and their properties |
// | 03 The Transformer | LayerNorm, residuals, encoder and decoder layers, a model trained on a toy task |
// | 04 The training loop | losses, backprop by hand, SGD/momentum/Adam from scratch, a reusable Trainer |
// | 05 GPT-2 generation | the tokenizer, the model, loading weights, sampling strategies, the KV cache |
// | 06 CNN image classification | convolution by hand, a CNN on Fashion-MNIST, what it confuses |
// | 07 Pretraining a tiny GPT | how the shipped Shakespeare model was trained |
// | 08 Your own data | CSV → DataFrame → model → metrics, with cross-validation |
//
// Each notebook derives a piece by hand, proves it numerically, and then hands it over to the `Workbook` library, which later notebooks import.

// %% [markdown]
// ## The first cell
//
// Every notebook starts with the same cell. It loads the `Workbook` library (built by `dotnet build` into `artifacts/packages`) and TorchSharp, then `Notebook.Setup` makes TorchSharp's native library load on this machine, seeds every random generator, picks the device and returns a summary.

// %%
#r "nuget: Workbook, 0.1.0"
#r "nuget: TorchSharp-cpu, 0.107.0"
using TorchSharp;
using static TorchSharp.torch;
using Workbook;
using Workbook.Plots;
Notebook.Setup(seed: 42)

// %% [markdown]
// `Profile` is **Quick** or **Full** (environment variable `WORKBOOK_PROFILE`). Quick shrinks data and epochs so the whole series runs in CI in minutes; the claims each notebook makes (accuracies, losses) are measured in Full. Notebooks size their work with `Notebook.Pick(quick: …, full: …)`, and check every number their text claims with `Claim`, right where it is computed: a line with ✓ is a claim that held; in Full a claim that fails stops the run with the claim, the threshold and the measured value; Quick checks a looser threshold where one makes sense, or marks the claim "not checked".

// %%
var epochs = Notebook.Pick(quick: 1, full: 10);
$"{Notebook.Profile}: {epochs} epoch(s)"

// %% [markdown]
// ## Tensors
//
// A tensor displays as a one-line summary (shape, dtype, device, first values), never a wall of numbers.

// %%
var x = torch.arange(12, dtype: float32).reshape(3, 4);
x

// %%
var colSums = x.sum(dim: 0);
var expected = new float[] { 0 + 4 + 8, 1 + 5 + 9, 2 + 6 + 10, 3 + 7 + 11 };
display($"column sums {string.Join(", ", colSums.data<float>().ToArray())}; by hand {string.Join(", ", expected)}");
Claim.That("the column sums equal the sums by hand", colSums.data<float>().ToArray().SequenceEqual(expected), string.Join(", ", expected))

// %% [markdown]
// ## A chart
//
// `Workbook.Plots.Plot` builds Plotly.NET charts. They render as interactive plots in VS Code, in Jupyter and in the runner's HTML pages, offline: plotly.js is embedded, no CDN.

// %%
var xs = Enumerable.Range(0, 200).Select(i => i * 4 * Math.PI / 199).ToList();
Plot.Lines(xs, new (string, IReadOnlyList<double>)[]
{
    ("sin x", xs.Select(Math.Sin).ToList()),
    ("cos x", xs.Select(Math.Cos).ToList()),
}, title: "Two periods of sine and cosine", xTitle: "x (radians)")

// %% [markdown]
// ## A table
//
// Microsoft.Data.Analysis `DataFrame`s render as tables. Here: how the output range of three activation functions compares.

// %%
using Microsoft.Data.Analysis;
var zs = new[] { -4.0, -1.0, 0.0, 1.0, 4.0 };
var table = new DataFrame(
    new DoubleDataFrameColumn("z", zs),
    new DoubleDataFrameColumn("sigmoid", zs.Select(z => 1 / (1 + Math.Exp(-z)))),
    new DoubleDataFrameColumn("tanh", zs.Select(Math.Tanh)),
    new DoubleDataFrameColumn("relu", zs.Select(z => Math.Max(0, z))));
table

// %% [markdown]
// ## Live updates
//
// `Notebook.Display(value)` shows a value and returns a handle; `.Update(value)` replaces what it shows. Training loops use this for live progress tables and loss curves. (The kernel's own `display(value)` also returns a handle, but its `.Update` adds a second output in VS Code and changes nothing in JupyterLab: the handle it returns is not the one it showed.)

// %%
var progress = Notebook.Display("starting…");
var losses = new List<double>();
for (int step = 0; step < 50; step++)
{
    losses.Add(Math.Exp(-step / 12.0) + 0.05);
    if (step % 10 == 9) progress.Update($"step {step + 1}/50, loss {losses[^1]:F3}");
}
Plot.Curves(new (string, IReadOnlyList<double>)[] { ("loss", losses) }, title: "A made-up loss curve", yTitle: "loss")

// %% [markdown]
// ## Using the series in a workshop
//
// 1. Before the session, every attendee clones the repository and runs the preflight check (see the README's workshop section).
// 2. Open `notebooks/` in VS Code with the Polyglot Notebooks extension, or in Jupyter with the Workbook kernel (`environment.md`).
// 3. Run cells top to bottom. Each chapter ends with exercises; solutions are in `notebooks/solutions/`.
// 4. The instructor can run the whole series headlessly (`dotnet run --project tools/Workbook.Runner -c Release`) and hand out the HTML pages it writes to `out/site/`.
