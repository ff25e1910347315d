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
// # 08 · Solutions: prototyping with your own data
//
// Solutions to the exercises at the end of `08-your-own-data.ipynb`. The helpers (models, training loop, cross-validation) are the notebook's, collected in one cell so each solution stays short.

// %%
#r "nuget: Workbook, 0.1.0"
#r "nuget: TorchSharp-cpu, 0.107.0"
using TorchSharp;
using static TorchSharp.torch;
using Workbook;
using Workbook.Plots;
Notebook.Setup(seed: 42)

// %%
using Microsoft.Data.Analysis;
using Workbook.Data;
using Workbook.Tabular;
using Workbook.Training;
torch.set_num_threads(1); // tiny tables: one thread avoids synchronisation overhead

nn.Module<Tensor, Tensor> MakeLogistic(long inputs, long classes) => nn.Sequential(("linear", nn.Linear(inputs, classes)));
nn.Module<Tensor, Tensor> MakeMlp(long inputs, long classes, int hidden = 32, double dropout = 0.2) =>
    nn.Sequential(("fc1", nn.Linear(inputs, hidden)), ("relu", nn.ReLU()), ("dropout", nn.Dropout(dropout)), ("fc2", nn.Linear(hidden, classes)));
int epochs = Notebook.Pick(quick: 25, full: 60);

void Fit(nn.Module<Tensor, Tensor> model, Tensor x, Tensor target, int epochCount, double lr = 1e-2, double weightDecay = 1e-3)
{
    using var data = new InMemoryDataset(x.alias(), target.alias());   // aliases: the dataset frees only its own handles
    var loader = new BatchLoader(data, batchSize: 64, shuffle: true, seed: Notebook.Seed);
    using var optimizer = Optimizers.AdamW(model.parameters(), lr: lr, weightDecay: weightDecay);
    new Trainer(model, optimizer, Losses.CrossEntropy) { Epochs = epochCount }.Fit(loader);
    model.eval();
}

Tensor Probabilities(nn.Module<Tensor, Tensor> model, Tensor x)
{
    using var _ = no_grad();
    return nn.functional.softmax(model.forward(x), 1);
}

/// Stratified k-fold CV. Each fold fits its own Standardizer (imputing NaNs with the fold's training mean when asked).
/// Returns one ClassificationReport per fold and the out-of-fold class probabilities [rows, classes].
(List<ClassificationReport> Folds, Tensor OutOfFold) CrossValidate(Func<long, long, nn.Module<Tensor, Tensor>> make, Tensor X, EncodedLabels labels,
    int k = 5, bool impute = false, int seed = 42)
{
    var y = labels.Labels;
    var reports = new List<ClassificationReport>();
    var oof = zeros(y.shape[0], labels.Classes.Count);
    foreach (var (fold, i) in Splits.StratifiedKFold(y, k, seed).Select((f, i) => (f, i)))
    {
        using var scope = NewDisposeScope();
        var tr = Split.ToTensor(fold.Train);
        var te = Split.ToTensor(fold.Test);
        using var scaler = Standardizer.Fit(X.index_select(0, tr), imputeMissing: impute);
        Notebook.Reseed(100 + i);
        var model = make(X.shape[1], labels.Classes.Count);
        Fit(model, scaler.Transform(X.index_select(0, tr)), y.index_select(0, tr), epochs);
        var p = Probabilities(model, scaler.Transform(X.index_select(0, te)));
        oof.index_copy_(0, te, p);
        reports.Add(new ClassificationReport(p.argmax(1), y.index_select(0, te), labels.Classes));
    }
    return (reports, oof);
}
"helpers ready"

// %% [markdown]
// ## Exercise 1: three classes (wine)
//
// The same pipeline, pointed at another file: only the path and the label column change. With three classes, macro F1 (each class weighted equally) complements accuracy.

// %%
var wine = TabularData.LoadCsv(DataPaths.File("tabular", "wine_data.csv"));
var wineFeatures = TabularData.NumericColumns(wine, "target");
var wineX = TabularData.ToTensor(wine, wineFeatures);
var wineY = TabularData.EncodeLabels(wine, "class");
display($"{wine.Rows.Count} wines, {wineFeatures.Length} features, classes {string.Join(", ", wineY.Classes)} " +
        $"({string.Join("/", wineY.Classes.Select((_, c) => wineY.Labels.eq(c).sum().item<long>()))})");
var (wineMlp, _) = CrossValidate((i, c) => MakeMlp(i, c), wineX, wineY);
var (wineLog, _) = CrossValidate((i, c) => MakeLogistic(i, c), wineX, wineY);
var wineSummary = new DataFrame(
    new StringDataFrameColumn("model", new[] { "MLP", "logistic regression" }),
    new StringDataFrameColumn("accuracy (mean ± std)", new[] { MeanStd.Of(wineMlp.Select(r => r.Accuracy)).ToString(), MeanStd.Of(wineLog.Select(r => r.Accuracy)).ToString() }),
    new StringDataFrameColumn("macro F1 (mean ± std)", new[] { MeanStd.Of(wineMlp.Select(r => r.MacroF1)).ToString(), MeanStd.Of(wineLog.Select(r => r.MacroF1)).ToString() }));
display(wineSummary);
var (wineMlpCv, wineLogCv) = (MeanStd.Of(wineMlp.Select(r => r.Accuracy)), MeanStd.Of(wineLog.Select(r => r.Accuracy)));
display(Claim.AtLeast("both models are near-perfect on wine (lower mean accuracy)", Math.Min(wineMlpCv.Mean, wineLogCv.Mean), full: 0.95, quick: null));
Claim.AtMost("the gap between them is within one standard deviation of the folds (|gap| − larger std)", Math.Abs(wineMlpCv.Mean - wineLogCv.Mean) - Math.Max(wineMlpCv.Std, wineLogCv.Std), full: 0, quick: null)

// %% [markdown]
// Both models are near-perfect on wine and the gap between them is within one standard deviation of the folds: as on breast cancer, the data are almost linearly separable once standardised, and the baseline is as good as the network.
//
// ## Exercise 2: missing data, measured
//
// Knock out 10% of the cells (seeded), then compare (a) dropping incomplete rows with (b) imputing the training mean inside each fold. The complete table is the reference.

// %%
var cancer = TabularData.LoadCsv(DataPaths.File("tabular", "breast_cancer.csv"));
var cancerFeatures = TabularData.NumericColumns(cancer, "target");
var classes = new[] { "malignant", "benign" };
var holey = cancer.Clone();
var rng = new Random(2024);
foreach (var f in cancerFeatures)
    for (long i = 0; i < holey.Rows.Count; i++)
        if (rng.NextDouble() < 0.10) holey.Columns[f][i] = null;

var complete = CrossValidate((i, c) => MakeMlp(i, c), TabularData.ToTensor(cancer, cancerFeatures), TabularData.EncodeLabels(cancer, "class", classes)).Folds;
var imputed = CrossValidate((i, c) => MakeMlp(i, c), TabularData.ToTensor(holey, cancerFeatures, MissingValues.AsNaN), TabularData.EncodeLabels(holey, "class", classes), impute: true).Folds;

var kept = holey.DropNulls();
var keptY = TabularData.EncodeLabels(kept, "class", classes);
long smallest = classes.Select((_, c) => keptY.Labels.eq(c).sum().item<long>()).Min();
int dropK = (int)Math.Min(5, smallest);
var droppedFolds = CrossValidate((i, c) => MakeMlp(i, c), TabularData.ToTensor(kept, cancerFeatures), keptY, k: dropK).Folds;
// Pool the folds: correct predictions out of all rows tested, with a 95% Wilson interval for the accuracy.
(double Low, double High) Wilson(double correct, double n, double z = 1.96)
{
    double p = correct / n, d = 1 + z * z / n, c = p + z * z / (2 * n), h = z * Math.Sqrt(p * (1 - p) / n + z * z / (4 * n * n));
    return ((c - h) / d, (c + h) / d);
}
var strategies = new[] { ("complete table (reference)", complete), ("impute training mean per fold", imputed), ($"drop incomplete rows (k = {dropK})", droppedFolds) };
(double Low, double High) Interval((string, List<ClassificationReport>) s)
{
    double n = s.Item2.Sum(r => r.Support.Sum()), correct = s.Item2.Sum(r => r.Accuracy * r.Support.Sum());
    return Wilson(correct, n);
}
display(new DataFrame(
    new StringDataFrameColumn("strategy", strategies.Select(s => s.Item1)),
    new Int64DataFrameColumn("rows used", strategies.Select(s => s.Item2.Sum(r => r.Support.Sum()))),
    new StringDataFrameColumn("CV accuracy (mean ± std)", strategies.Select(s => MeanStd.Of(s.Item2.Select(r => r.Accuracy)).ToString())),
    new StringDataFrameColumn("95% interval (pooled)", strategies.Select(s => { var (lo, hi) = Interval(s); return $"[{lo:F3}, {hi:F3}]"; }))));
double MeanAccuracy(List<ClassificationReport> folds) => folds.Average(r => r.Accuracy);
double Width((string, List<ClassificationReport>) s) { var (lo, hi) = Interval(s); return hi - lo; }
display(Claim.Close("10% missing cells leave about 0.9³⁰ ≈ 4% of rows complete", Math.Pow(0.9, 30), 0.04, 0.005));
display(Claim.Close("dropping rows keeps 27 tumours", kept.Rows.Count, 27, 0));
display(Claim.AtLeast("the dropped-rows interval is wide (width / the imputed one's)", Width(strategies[2]) / Width(strategies[1]), full: 3, quick: 3));
Claim.Between("mean imputation costs about a point against the complete table", MeanAccuracy(complete) - MeanAccuracy(imputed), -0.005, 0.025, quick: null)

// %% [markdown]
// With 30 columns, 10% missing cells leave only about 0.9³⁰ ≈ 4% of rows complete: dropping rows keeps 27 tumours. Their cross-validated accuracy can look perfect, but it rests on 27 predictions (about 5 per fold): the 95% interval is wide, and those 27 rows need not resemble the population. The table shows the real difference: the interval, not the mean. Mean imputation inside each fold keeps every row and costs about a point against the complete table, with a tight interval: the features are strongly correlated, so the values present in a row carry most of the signal of the missing ones.
//
// ## Exercise 3: a screening threshold
//
// Out-of-fold probabilities give every tumour a p(malignant) from a model that never saw it. Predict malignant when p ≥ t and find the largest t whose malignant recall is still ≥ 99%. The default argmax (t = 0.5) misses about 5% of malignant tumours, and a few of them get a very low p(malignant), so t has to go far below 0.5.

// %%
var cancerY = TabularData.EncodeLabels(cancer, "class", classes);
var (_, oof) = CrossValidate((i, c) => MakeMlp(i, c), TabularData.ToTensor(cancer, cancerFeatures), cancerY);
var pMalignant = oof[.., 0].data<float>().ToArray();
var isMalignant = cancerY.Labels.data<long>().ToArray().Select(v => v == 0).ToArray();
(double Recall, double Precision) At(double t)
{
    int tp = 0, fp = 0, fn = 0;
    for (int i = 0; i < pMalignant.Length; i++)
    {
        bool flagged = pMalignant[i] >= t;
        if (flagged && isMalignant[i]) tp++; else if (flagged) fp++; else if (isMalignant[i]) fn++;
    }
    return (tp / (double)(tp + fn), tp + fp == 0 ? 1 : tp / (double)(tp + fp));
}
// Exact answer, no grid: recall >= 99% allows floor(1% of 212) = 2 misses, so t is the 3rd-smallest p(malignant) among malignant tumours.
var malignantP = pMalignant.Where((_, i) => isMalignant[i]).Order().ToArray();
int allowedMisses = (int)Math.Floor(0.01 * malignantP.Length);
double best = malignantP[allowedMisses];
var atHalf = At(0.5);
var atBest = At(best);
display(Claim.Between("the default argmax misses about 5% of malignant tumours", 1 - atHalf.Recall, 0.02, 0.08, quick: null));
display(Claim.Close("recall ≥ 99% allows floor(1% of 212) = 2 misses", allowedMisses, 2, 0));
display(Claim.AtMost("so t has to go far below 0.5", best, full: 0.1, quick: null));
display(new DataFrame(
    new StringDataFrameColumn("threshold t", new[] { "0.5 (argmax)", $"{best:G3} (largest with recall ≥ 99%)" }),
    new DoubleDataFrameColumn("malignant recall", new[] { atHalf.Recall, atBest.Recall }),
    new DoubleDataFrameColumn("malignant precision", new[] { atHalf.Precision, atBest.Precision }),
    new Int64DataFrameColumn("benign flagged", new[] { 0.5, best }.Select(t => (long)pMalignant.Where((p, i) => p >= t && !isMalignant[i]).Count()))));
var thresholds = Enumerable.Range(0, 61).Select(i => Math.Pow(10, -6 + i * 0.1)).Where(t => t < 1).ToList();   // 1e-6 .. ~0.8, log-spaced
thresholds.AddRange(new[] { 0.85, 0.9, 0.95, 0.99 });
var curve = thresholds.Select(At).ToList();
Plot.WithLayout(Plot.Lines(thresholds, new (string, IReadOnlyList<double>)[]
{
    ("recall (malignant)", curve.Select(c => c.Recall).ToList()),
    ("precision (malignant)", curve.Select(c => c.Precision).ToList()),
}, title: $"Out-of-fold recall and precision against the threshold (t* = {best:G3})", xTitle: "threshold t on p(malignant), log scale", yTitle: "fraction"),
    ("xaxis", new { type = "log", title = new { text = "threshold t on p(malignant), log scale" } }))

// %% [markdown]
// Lowering the threshold trades precision for recall: to miss at most 1% of malignant tumours, the screen flags more benign ones for follow-up. The threshold is chosen on out-of-fold predictions; a final claim about it would need a fresh test set, since choosing t is itself fitting.
