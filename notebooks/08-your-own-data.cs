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
// # 08 · Prototyping with your own data
//
// The chapters built models for text and images. Most analysts start somewhere else: **a table in a CSV file**. This notebook takes one table from file to a trained, evaluated and exported model, with the habits that keep the numbers honest:
//
// 1. load the CSV into a `Microsoft.Data.Analysis` `DataFrame` and explore it (summary statistics, class balance, distributions);
// 2. handle missing values and standardise features with statistics from the **training rows only**;
// 3. go DataFrame → tensors → model → metrics back into a DataFrame → CSV and charts;
// 4. compare an MLP with the baseline every analyst expects, logistic regression, under **stratified 5-fold cross-validation**, reported as mean ± std.
//
// The data set is the Wisconsin diagnostic breast cancer table (569 tumours, 30 numeric features measured on cell nuclei, malignant or benign). Swap in your own file by changing the path and the label column.

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
using Plotly.NET;
using TorchSharp.Modules;
using Workbook.Data;
using Workbook.Tabular;
// A table this size is a few thousand numbers per step: one thread beats two that wait for each other.
torch.set_num_threads(1);

// %% [markdown]
// ## 1. Load the CSV
//
// `DataPaths.File` finds the repository's `data/` folder (or `WORKBOOK_DATA`). `TabularData.LoadCsv` reads the header row and gives each column a type: a column of numbers becomes a `Double` column, anything else `String`, and empty cells are missing. Unlike `DataFrame.LoadCsv`, which silently reads the quoted cell `"2,5"` as 25 and accepts rows of the wrong width, it stops with the file, row and column of such a cell. The file has the 30 features, the class index `target` and the class name `class`.

// %%
var df = TabularData.LoadCsv(DataPaths.File("tabular", "breast_cancer.csv"));
display($"{df.Rows.Count} rows × {df.Columns.Count} columns; types: {string.Join(", ", df.Columns.GroupBy(c => c.DataType.Name).Select(g => $"{g.Count()} {g.Key}"))}");
df.Head(4)

// %% [markdown]
// ## 2. Explore
//
// `Description()` gives count, mean, min and max per numeric column. With 32 columns that is wide, so we look at the first eight, then build our own per-column table with the standard deviation and the number of missing cells.

// %%
var description = df.Description();
new DataFrame(description.Columns.Take(9))

// %%
var features = TabularData.NumericColumns(df, "target");     // every numeric column except the label index
var X = TabularData.ToTensor(df, features);                  // [569, 30] float32; throws on text or missing cells
var stats = new DataFrame(
    new StringDataFrameColumn("feature", features),
    new DoubleDataFrameColumn("mean", X.mean(new long[] { 0 }).to_type(float64).data<double>().ToArray()),
    new DoubleDataFrameColumn("std", X.std(0, unbiased: false).to_type(float64).data<double>().ToArray()),
    new DoubleDataFrameColumn("min", X.amin(0).to_type(float64).data<double>().ToArray()),
    new DoubleDataFrameColumn("max", X.amax(0).to_type(float64).data<double>().ToArray()),
    new Int64DataFrameColumn("missing", features.Select(f => df.Columns[f].NullCount)));
var byStd = stats.OrderByDescending("std");
display(byStd.Head(3));
display(byStd.Tail(3));
double StdOf(string feature) => X[.., Array.IndexOf(features, feature)].std(0, unbiased: false).item<float>();
display(Claim.Between("the std of worst area is about 570", StdOf("worst area"), 520, 620, quick: (520, 620)));
display(Claim.Between("that of fractal dimension error about 0.003", StdOf("fractal dimension error"), 0.0025, 0.0035, quick: (0.0025, 0.0035)));
Claim.Between("a ratio of 10⁵ (log₁₀ of the largest std over the smallest)", Math.Log10(StdOf("worst area") / StdOf("fractal dimension error")), 4.5, 5.5, quick: (4.5, 5.5))

// %% [markdown]
// The features live on wildly different scales: the standard deviation of `worst area` is about 570, that of `fractal dimension error` about 0.003, a ratio of 10⁵. A network's first layer would see area and little else until its weights adapted, so we will **standardise** each feature to mean 0, std 1.
//
// **Class balance.** A classifier that always answers "benign" is already right 63% of the time; that is the floor any model must beat, and the reason our splits are *stratified* (each part keeps the 37/63 mix).

// %%
var counts = df.Columns["class"].ValueCounts();
var classNames = counts.Columns[0].Cast<string>().ToList();
var classCounts = counts.Columns[1].Cast<long>().Select(c => (double)c).ToList();
display(counts);
display(Plot.Bar(classNames, classCounts, title: "Class balance", yTitle: "tumours"));
Claim.Between("always answering benign is right 63 % of the time", classCounts[classNames.IndexOf("benign")] / classCounts.Sum(), 0.625, 0.635, quick: (0.625, 0.635))

// %% [markdown]
// **Distributions by class.** Overlaid histograms of four features show which ones separate the classes: concave points and radius separate well, texture and smoothness overlap more.

// %%
var labelText = df.Columns["class"].Cast<string>().ToArray();
GenericChart ClassHistogram(string feature)
{
    var values = df.Columns[feature].Cast<double?>().Select(v => v!.Value).ToArray();
    var traces = new[] { "malignant", "benign" }.Select(cls => Plot.Trace("histogram",
        ("x", values.Where((_, i) => labelText[i] == cls).ToArray()), ("name", $"{cls}"), ("opacity", 0.6), ("nbinsx", 30),
        ("legendgroup", cls), ("showlegend", feature == "worst concave points")));
    return GenericChart.combine(traces);
}
var shown = new[] { "worst concave points", "worst radius", "mean texture", "mean smoothness" };
Plot.WithLayout(Plot.Grid(shown.Select(ClassHistogram).ToList(), rows: 2, columns: 2, title: "Feature distributions by class: " + string.Join(", ", shown)),
    ("barmode", "overlay"))

// %%
Plot.Scatter(df.Columns["worst radius"].Cast<double?>().Select(v => v!.Value).ToList(),
             df.Columns["worst concave points"].Cast<double?>().Select(v => v!.Value).ToList(),
             labelText, title: "Two features already separate most tumours", xTitle: "worst radius", yTitle: "worst concave points")

// %% [markdown]
// ## 3. Missing values
//
// This table is complete (the `missing` column above is all zeros), but your own data rarely is. `TabularData.MissingReport` counts nulls per column, and `ToTensor` refuses a column with nulls unless you say what they mean. To see both strategies, we knock out 3% of the cells of a copy at random:

// %%
var holey = df.Clone();
var rng = new Random(7);
foreach (var f in features)
    for (long i = 0; i < holey.Rows.Count; i++)
        if (rng.NextDouble() < 0.03) holey.Columns[f][i] = null;
var missing = TabularData.MissingReport(holey);
display($"{missing.Columns["missing"].Cast<long>().Sum()} missing cells in {features.Length} feature columns");
try { TabularData.ToTensor(holey, features); }
catch (ArgumentException e) { display(e.Message); }
var dropped = holey.DropNulls();
display($"Dropping incomplete rows keeps {dropped.Rows.Count} of {holey.Rows.Count} rows ({100.0 * dropped.Rows.Count / holey.Rows.Count:F0}%)");
Claim.AtMost("dropping rows with any missing cell throws away more than half the table (share kept)", (double)dropped.Rows.Count / holey.Rows.Count, full: 0.5, quick: 0.5)

// %% [markdown]
// Dropping rows with any missing cell throws away more than half the table, because 30 columns × 3% adds up. The alternative keeps every row: read missing cells as NaN and let a `Standardizer` fitted with `imputeMissing: true` replace them by the **training** mean (after scaling, a missing value becomes 0). Exercise 2 measures what each strategy costs in accuracy.

// %%
var xHoley = TabularData.ToTensor(holey, features, MissingValues.AsNaN);
using (var imputer = Standardizer.Fit(xHoley, imputeMissing: true))
{
    var filled = imputer.Transform(xHoley);
    display($"NaN before: {xHoley.isnan().sum().item<long>()}, after: {filled.isnan().sum().item<long>()}");
}

// %% [markdown]
// ## 4. Labels, a stratified split, and standardisation without leakage
//
// `EncodeLabels` maps the `class` text to indices; we fix the order so that index 0 is *malignant*, the class we care about. `StratifiedSplit` holds out 20% of **each** class.

// %%
var labels = TabularData.EncodeLabels(df, "class", new[] { "malignant", "benign" });
var y = labels.Labels;
var split = Splits.StratifiedSplit(y, testFraction: 0.2, seed: 42);
string Share(long[] rows) => $"{rows.Length} rows, {100.0 * rows.Count(i => y[i].item<long>() == 0) / rows.Length:F1}% malignant";
$"all: {Share(Enumerable.Range(0, (int)y.shape[0]).Select(i => (long)i).ToArray())} | train: {Share(split.Train)} | test: {Share(split.Test)}"

// %% [markdown]
// **Fit once, on training rows, apply everywhere.** `Standardizer.Fit` takes the training rows only, and an instance cannot be refitted: the test rows are scaled with the training mean and std. If we fitted on all rows, every test row would have contributed to the statistics that preprocess it: information from the evaluation data would leak into training. The check: training features come out with mean 0 and std 1 exactly, test features only approximately, as genuinely unseen data should.

// %%
var trainIdx = Split.ToTensor(split.Train);
var testIdx = Split.ToTensor(split.Test);
var scaler = Standardizer.Fit(X.index_select(0, trainIdx));
var xTrain = scaler.Transform(X.index_select(0, trainIdx));
var xTest = scaler.Transform(X.index_select(0, testIdx));
var yTrain = y.index_select(0, trainIdx);
var yTest = y.index_select(0, testIdx);
string MeanStdOf(Tensor t) => $"mean |μ| {t.mean(new long[] { 0 }).abs().mean().item<float>():F4}, mean σ {t.std(0, unbiased: false).mean().item<float>():F3}";
display($"train: {MeanStdOf(xTrain)} | test: {MeanStdOf(xTest)}");
display(Claim.AtMost("training features come out with mean 0 and std 1 exactly (largest deviation)", Math.Max(xTrain.mean(new long[] { 0 }).abs().max().item<float>(),
    (xTrain.std(0, unbiased: false) - 1).abs().max().item<float>()), full: 1e-4, quick: 1e-4));
Claim.AtLeast("test features only approximately (mean |μ|)", xTest.mean(new long[] { 0 }).abs().mean().item<float>(), full: 1e-3, quick: 1e-3)

// %% [markdown]
// **Why leakage matters.** With 569 rows the standardisation leak is small. Leaks that involve the *labels* are not. The classic one: pick the features most correlated with the label using all rows, then cross-validate. On **pure noise** (2,000 random features, coin-flip labels) the honest answer is 50%. Selecting features inside each training fold gets that; selecting them once on all rows, test folds included, "finds" signal that does not exist.

// %%
Notebook.Reseed(7);
var noise = randn(569, 2000);
var coin = randint(0, 2, new long[] { 569 });
Tensor TopFeatures(Tensor x, Tensor labelsOf, int k)
{
    using var scope = NewDisposeScope();
    var xc = x - x.mean(new long[] { 0 });
    var yc = labelsOf.to_type(float32) - labelsOf.to_type(float32).mean();
    var corr = (xc * yc.unsqueeze(1)).sum(dim: 0) / (xc.pow(2).sum(dim: 0).sqrt() * yc.pow(2).sum().sqrt() + 1e-8);
    return corr.abs().topk(k).indexes.MoveToOuterDisposeScope();
}

// %% [markdown]
// ## 5. Models built from the same parts
//
// Logistic regression is a network with no hidden layer: one `Linear` layer to two logits, softmax cross-entropy. The MLP adds a hidden layer with ReLU and dropout. Both train with the same loop, the series' `Trainer` (`Workbook.Training`): AdamW on shuffled mini-batches of 64 rows, each step inside its own dispose scope, so memory stays flat however many models we train.

// %%
using Workbook.Training;

nn.Module<Tensor, Tensor> MakeLogistic(long inputs, long classes) =>
    nn.Sequential(("linear", nn.Linear(inputs, classes)));

nn.Module<Tensor, Tensor> MakeMlp(long inputs, long classes, int hidden = 32, double dropout = 0.2) =>
    nn.Sequential(("fc1", nn.Linear(inputs, hidden)), ("relu", nn.ReLU()), ("dropout", nn.Dropout(dropout)), ("fc2", nn.Linear(hidden, classes)));

int epochs = Notebook.Pick(quick: 25, full: 60);

TrainingHistory Fit(nn.Module<Tensor, Tensor> model, Tensor x, Tensor target, int epochCount, double lr = 1e-2, double weightDecay = 1e-3)
{
    // The dataset owns (and frees) its tensors: give it aliases, so our x and target stay usable afterwards.
    using var data = new InMemoryDataset(x.alias(), target.alias());
    var loader = new BatchLoader(data, batchSize: 64, shuffle: true, seed: Notebook.Seed);
    using var optimizer = Optimizers.AdamW(model.parameters(), lr: lr, weightDecay: weightDecay);
    var trainer = new Trainer(model, optimizer, Losses.CrossEntropy) { Epochs = epochCount, Metrics = { Metric.Accuracy } };
    var history = trainer.Fit(loader);
    model.eval();   // dropout off for every prediction that follows
    return history;
}

Tensor Predict(nn.Module<Tensor, Tensor> model, Tensor x)
{
    using var _ = no_grad();
    return model.forward(x).argmax(1);
}

double Accuracy(nn.Module<Tensor, Tensor> model, Tensor x, Tensor target)
{
    using var scope = NewDisposeScope();
    return Predict(model, x).eq(target).to_type(float64).mean().item<double>();
}
$"{epochs} epochs of {Math.Ceiling(split.Train.Length / 64.0)} mini-batches per model ({Notebook.Profile})"

// %% [markdown]
// Back to the leak: 5-fold cross-validation of logistic regression on the 10 "best" noise features, selected once on all rows (leaky) or inside each training fold (honest).

// %%
var noiseFolds = Splits.StratifiedKFold(coin, k: 5, seed: 1);
double NoiseCv(bool selectOnAllRows)
{
    var accs = new List<double>();
    var leakySelection = TopFeatures(noise, coin, 10);
    foreach (var fold in noiseFolds)
    {
        using var scope = NewDisposeScope();
        var tr = Split.ToTensor(fold.Train);
        var te = Split.ToTensor(fold.Test);
        var cols = selectOnAllRows ? leakySelection : TopFeatures(noise.index_select(0, tr), coin.index_select(0, tr), 10);
        var xs = noise.index_select(1, cols);
        Notebook.Reseed(1);
        var model = MakeLogistic(10, 2);
        Fit(model, xs.index_select(0, tr), coin.index_select(0, tr), 10);
        accs.Add(Accuracy(model, xs.index_select(0, te), coin.index_select(0, te)));
    }
    return accs.Average();
}
var leaky = NoiseCv(selectOnAllRows: true);
var honest = NoiseCv(selectOnAllRows: false);
display(new DataFrame(new StringDataFrameColumn("feature selection", new[] { "on all rows (leaky)", "inside each training fold" }),
                      new DoubleDataFrameColumn("CV accuracy on pure noise", new[] { leaky, honest })));
display($"The leak adds {100 * (leaky - honest):F0} points of accuracy to data with no signal at all.");
display(Claim.Between("selecting inside each training fold gets the honest 50 %", honest, 0.4, 0.6, quick: (0.4, 0.6)));
Claim.AtLeast("selecting on all rows 'finds' signal that does not exist (points above honest)", leaky - honest, full: 0.05, quick: 0.05)

// %% [markdown]
// ## 6. One model on the hold-out split
//
// Train the MLP on the training rows (80%) with the `Trainer` and evaluate on the held-out 20%. The training history shows loss and accuracy per epoch; the report shows precision, recall and F1 per class (recall on *malignant* is the number a screening tool is judged by).

// %%
Notebook.Reseed(42);
var mlp = MakeMlp(features.Length, 2);
var mlpHistory = Fit(mlp, xTrain, yTrain, epochs);
var yPred = Predict(mlp, xTest);
var report = new ClassificationReport(yPred, yTest, labels.Classes);
display(mlpHistory.Plot("MLP training history"));
display(report.ToDataFrame());
report.ConfusionDataFrame()

// %%
Plot.Heatmap(Enumerable.Range(0, 2).Select(t => (IReadOnlyList<double>)Enumerable.Range(0, 2).Select(p => (double)report.Confusion[t, p]).ToList()).ToList(),
             labels.Classes, labels.Classes, title: $"Confusion matrix on the test split (accuracy {report.Accuracy:P1})",
             xTitle: "predicted", yTitle: "true", colorscale: "Blues", showValues: true)

// %% [markdown]
// **Predictions back into a DataFrame.** `TabularData.ToDataFrame` turns the model's probabilities into columns; we add the true and predicted class for the rows the model got wrong.

// %%
Tensor probabilities;
using (no_grad()) probabilities = nn.functional.softmax(mlp.forward(xTest), 1);
var predictions = TabularData.ToDataFrame(probabilities, new[] { "p(malignant)", "p(benign)" });
predictions.Columns.Insert(0, new Int64DataFrameColumn("row", split.Test));
predictions.Columns.Add(new StringDataFrameColumn("true", yTest.data<long>().ToArray().Select(i => labels.Classes[(int)i])));
predictions.Columns.Add(new StringDataFrameColumn("predicted", yPred.data<long>().ToArray().Select(i => labels.Classes[(int)i])));
var wrong = predictions.Filter(predictions.Columns["true"].ElementwiseNotEquals(predictions.Columns["predicted"]));
display($"{wrong.Rows.Count} of {predictions.Rows.Count} test rows misclassified");
wrong

// %% [markdown]
// ## 7. Cross-validation: MLP against logistic regression
//
// One split is one draw of luck: with 113 test rows, one tumour is 0.9 points of accuracy. **Stratified 5-fold cross-validation** trains each model five times, each time holding out a different fifth (with the class mix preserved), and reports mean ± standard deviation over the folds. Every fold fits its **own** standardiser on its own training rows: the same no-leak rule, applied inside the loop.

// %%
var folds = Splits.StratifiedKFold(y, k: 5, seed: 42);
var cvRows = new List<(int Fold, double Mlp, double Logistic, double MlpMacroF1, double LogisticMacroF1)>();
var progress = Notebook.Display("cross-validating…");
for (int k = 0; k < folds.Count; k++)
{
    using var scope = NewDisposeScope();
    var tr = Split.ToTensor(folds[k].Train);
    var te = Split.ToTensor(folds[k].Test);
    using var foldScaler = Standardizer.Fit(X.index_select(0, tr));
    var xs = foldScaler.Transform(X.index_select(0, tr));
    var xt = foldScaler.Transform(X.index_select(0, te));
    var ys = y.index_select(0, tr);
    var yt = y.index_select(0, te);
    Notebook.Reseed(100 + k);
    var mlpK = MakeMlp(features.Length, 2);
    Fit(mlpK, xs, ys, epochs);
    Notebook.Reseed(100 + k);
    var logK = MakeLogistic(features.Length, 2);
    Fit(logK, xs, ys, epochs);
    var rMlp = new ClassificationReport(Predict(mlpK, xt), yt, labels.Classes);
    var rLog = new ClassificationReport(Predict(logK, xt), yt, labels.Classes);
    cvRows.Add((k + 1, rMlp.Accuracy, rLog.Accuracy, rMlp.MacroF1, rLog.MacroF1));
    progress.Update($"fold {k + 1}/{folds.Count}: MLP {rMlp.Accuracy:P1}, logistic regression {rLog.Accuracy:P1}");
}
var cv = new DataFrame(
    new Int32DataFrameColumn("fold", cvRows.Select(r => r.Fold)),
    new DoubleDataFrameColumn("MLP accuracy", cvRows.Select(r => r.Mlp)),
    new DoubleDataFrameColumn("logistic accuracy", cvRows.Select(r => r.Logistic)),
    new DoubleDataFrameColumn("MLP macro F1", cvRows.Select(r => r.MlpMacroF1)),
    new DoubleDataFrameColumn("logistic macro F1", cvRows.Select(r => r.LogisticMacroF1)));
cv

// %%
var mlpCv = MeanStd.Of(cvRows.Select(r => r.Mlp));
var logCv = MeanStd.Of(cvRows.Select(r => r.Logistic));
var summary = new DataFrame(
    new StringDataFrameColumn("model", new[] { "MLP (30-32-2)", "logistic regression" }),
    new StringDataFrameColumn("accuracy, mean ± std over 5 folds", new[] { mlpCv.ToString(), logCv.ToString() }),
    new DoubleDataFrameColumn("mean", new[] { mlpCv.Mean, logCv.Mean }),
    new DoubleDataFrameColumn("std", new[] { mlpCv.Std, logCv.Std }));
display(summary);
display($"MLP: {mlpCv.Mean:P1} ± {mlpCv.Std:P1} cross-validated accuracy; logistic regression: {logCv.Mean:P1} ± {logCv.Std:P1}");
display(Claim.Close("with 113 test rows, one tumour is 0.9 points of accuracy", 100.0 / split.Test.Length, 0.9, 0.05));
display(Claim.AtLeast("the MLP reaches ≥ 95 % cross-validated accuracy", mlpCv.Mean, full: 0.95, quick: 0.9));
Claim.AtMost("the two models are close: the gap is within the fold-to-fold spread (|gap| − larger std)", Math.Abs(mlpCv.Mean - logCv.Mean) - Math.Max(mlpCv.Std, logCv.Std), full: 0, quick: null)

// %%
Plot.WithLayout(Plot.GroupedBars(cvRows.Select(r => $"fold {r.Fold}").ToList(), new (string, IReadOnlyList<double>)[]
    {
        ($"MLP ({mlpCv})", cvRows.Select(r => r.Mlp).ToList()),
        ($"logistic regression ({logCv})", cvRows.Select(r => r.Logistic).ToList()),
    }, title: "Stratified 5-fold cross-validated accuracy on breast cancer", yTitle: "accuracy"),
    ("yaxis", new { range = new[] { 0.85, 1.0 }, title = new { text = "accuracy" } }))

// %% [markdown]
// On this table the two models are close: the classes are nearly linearly separable after standardisation, so logistic regression is a strong baseline, and the fold-to-fold spread is as large as the gap between the models. That is the point of reporting mean ± std: **a difference smaller than the spread is not evidence that one model is better.** When a simple baseline matches the network, ship the baseline: it is faster, and its weights are readable.
//
// ## 8. Export
//
// Metrics are DataFrames, so exporting is one call. The CSVs go to a scratch folder outside the repository.

// %%
using System.IO;
var exportDir = Path.Combine(Path.GetTempPath(), "workbook-08");
Directory.CreateDirectory(exportDir);
DataFrame.SaveCsv(cv, Path.Combine(exportDir, "cv-folds.csv"));
DataFrame.SaveCsv(report.ToDataFrame(), Path.Combine(exportDir, "test-report.csv"));
DataFrame.SaveCsv(predictions, Path.Combine(exportDir, "test-predictions.csv"));
var readBack = TabularData.LoadCsv(Path.Combine(exportDir, "cv-folds.csv"));
display($"wrote {string.Join(", ", Directory.GetFiles(exportDir, "*.csv").Select(Path.GetFileName).Order())} to {exportDir}");
readBack

// %% [markdown]
// ## Your own data: a checklist
//
// - **Load**: `TabularData.LoadCsv(path)`; check `Rows.Count`, the column types, and `Head()`.
// - **Columns**: `TabularData.NumericColumns(df, "label")` for features; text features need encoding; `ToTensor` names any column it cannot use.
// - **Missing values**: `TabularData.MissingReport(df)`; drop rows only if few are affected, otherwise impute with training statistics (`MissingValues.AsNaN` + `Standardizer.Fit(..., imputeMissing: true)`).
// - **Split before you look at the test rows**: `Splits.StratifiedSplit` / `StratifiedKFold`; fit every statistic (scaling, imputation, feature selection) on training rows only.
// - **Baseline first**: logistic regression from the same parts; report mean ± std over folds; trust only differences larger than the spread.
// - **Metrics**: `new ClassificationReport(pred, target, classes).ToDataFrame()`, then `DataFrame.SaveCsv`.
//
// ## Exercises
//
// 1. **Three classes.** Run the cross-validated comparison on `data/tabular/wine_data.csv` (13 features, 3 cultivars). Which model wins, by how much compared with the spread, and what is the macro F1?
// 2. **Missing data, measured.** Knock out 10% of the cells of the breast-cancer table. Compare 5-fold CV accuracy of the MLP when you (a) drop incomplete rows and (b) impute with the training mean inside each fold. How much does each strategy cost relative to the complete table?
// 3. **A screening threshold.** A screening tool must miss few malignant tumours. Instead of `argmax`, predict *malignant* when p(malignant) ≥ t. Using cross-validated probabilities, find the largest t with malignant recall ≥ 99%, and report what it costs in precision. Plot recall and precision against t.
//
// Solutions: `notebooks/solutions/08-your-own-data-solutions.ipynb`.
