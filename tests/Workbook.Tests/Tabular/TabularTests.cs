using Microsoft.Data.Analysis;
using Workbook.Tabular;
using static TorchSharp.torch;

namespace Workbook.Tests.Tabular;

/// <summary>DataFrame/tensor conversion, the standardiser, stratified splits and classification metrics.</summary>
public sealed class TabularTests
{
    static DataFrame Small() => new(
        new DoubleDataFrameColumn("a", new double?[] { 1, 2, 3, 4 }),
        new Int32DataFrameColumn("b", new int?[] { 10, 20, 30, 40 }),
        new StringDataFrameColumn("name", new[] { "x", "y", "x", "z" }),
        new BooleanDataFrameColumn("flag", new bool?[] { true, false, true, false }));

    [Fact]
    public void ToTensor_copies_columns_in_the_given_order()
    {
        using var t = TabularData.ToTensor(Small(), new[] { "b", "a", "flag" });
        Assert.Equal(new long[] { 4, 3 }, t.shape);
        Assert.Equal(ScalarType.Float32, t.dtype);
        Assert.Equal(new float[] { 10, 1, 1, 20, 2, 0, 30, 3, 1, 40, 4, 0 }, t.data<float>().ToArray());
        Assert.Equal(new[] { "a", "b", "flag" }, TabularData.NumericColumns(Small()));
        Assert.Equal(new[] { "b", "flag" }, TabularData.NumericColumns(Small(), "a"));
    }

    [Fact]
    public void ToTensor_names_a_missing_column_and_lists_the_real_ones()
    {
        var e = Assert.Throws<ArgumentException>(() => TabularData.ToTensor(Small(), new[] { "a", "c" }));
        Assert.StartsWith("Column 'c' is not in the DataFrame. Its 4 columns are: 'a', 'b', 'name', 'flag'.", e.Message);
        Assert.Equal("columns", e.ParamName);
        Assert.Throws<ArgumentException>(() => TabularData.NumericColumns(Small(), "target")); // excluding a typo is an error too
    }

    [Fact]
    public void ToTensor_rejects_a_text_column_with_advice()
    {
        var e = Assert.Throws<ArgumentException>(() => TabularData.ToTensor(Small(), new[] { "a", "name" }));
        Assert.StartsWith("Column 'name' holds String values, not numbers, so it cannot be a feature.", e.Message);
        Assert.Contains("EncodeLabels", e.Message);
    }

    [Fact]
    public void ToTensor_rejects_nulls_unless_asked_for_NaN()
    {
        var f = Small();
        f.Columns["a"][1] = null;
        var e = Assert.Throws<ArgumentException>(() => TabularData.ToTensor(f, new[] { "a" }));
        Assert.StartsWith("Column 'a' has 1 missing value(s) in 4 rows.", e.Message);
        using var t = TabularData.ToTensor(f, new[] { "a" }, MissingValues.AsNaN);
        Assert.True(float.IsNaN(t[1, 0].item<float>()));
        var report = TabularData.MissingReport(f);
        Assert.Equal(1L, report.Columns["missing"][0]);
        Assert.Equal(0.25, report.Columns["fraction"][0]);
    }

    [Fact]
    public void EncodeLabels_sorts_classes_and_checks_a_fixed_order()
    {
        var enc = TabularData.EncodeLabels(Small(), "name");
        Assert.Equal(new[] { "x", "y", "z" }, enc.Classes);
        Assert.Equal(new long[] { 0, 1, 0, 2 }, enc.Labels.data<long>().ToArray());
        var num = TabularData.EncodeLabels(Small(), "b");
        Assert.Equal(new[] { "10", "20", "30", "40" }, num.Classes);
        var e = Assert.Throws<ArgumentException>(() => TabularData.EncodeLabels(Small(), "name", new[] { "x", "y" }));
        Assert.Equal("Label column 'name' has value 'z' in row 3, which is not one of the classes x, y. (Parameter 'classes')", e.Message);
    }

    [Fact]
    public void ToDataFrame_round_trips_and_checks_names()
    {
        using var t = tensor(new float[] { 1, 2, 3, 4, 5, 6 }).reshape(3, 2);
        var f = TabularData.ToDataFrame(t, new[] { "p", "q" });
        Assert.Equal(3, f.Rows.Count);
        Assert.Equal(5.0, f.Columns["p"][2]);
        using var back = TabularData.ToTensor(f, new[] { "p", "q" });
        Assert.True(back.allclose(t));
        var e = Assert.Throws<ArgumentException>(() => TabularData.ToDataFrame(t, new[] { "p" }));
        Assert.StartsWith("The tensor has 2 column(s) but 1 name(s) were given: p.", e.Message);
        var rows = TabularData.Rows(f, new long[] { 2, 0 });
        Assert.Equal(new object[] { 5.0, 1.0 }, new[] { rows.Columns["p"][0], rows.Columns["p"][1] });
    }

    [Fact]
    public void Standardizer_uses_train_statistics_only()
    {
        using var train = tensor(new double[] { 1, 10, 3, 10, 5, 10 }).reshape(3, 2); // column 2 constant
        using var s = Standardizer.Fit(train);
        Assert.Equal(new[] { 3.0, 10.0 }, s.Mean.data<double>().ToArray());
        // population std of 1,3,5 = sqrt(8/3); the constant column gets 1.
        Assert.Equal(Math.Sqrt(8.0 / 3), s.Std[0].item<double>(), 12);
        Assert.Equal(1.0, s.Std[1].item<double>());
        using var z = s.Transform(train);
        Assert.Equal(0.0, z.mean(new long[] { 0 })[0].item<double>(), 12);
        Assert.Equal(1.0, z[.., 0].std(unbiased: false).item<double>(), 12);
        using var test = tensor(new double[] { 7, 12 }).reshape(1, 2);
        using var zt = s.Transform(test); // test rows are scaled with the TRAIN mean/std
        Assert.Equal(4 / Math.Sqrt(8.0 / 3), zt[0, 0].item<double>(), 12);
        Assert.Equal(2.0, zt[0, 1].item<double>(), 12);
        using var back = s.InverseTransform(zt);
        Assert.True(back.allclose(test));
    }

    [Fact]
    public void Standardizer_errors_and_mean_imputation()
    {
        using var wrong = zeros(2, 3);
        using var train = tensor(new double[] { 1, double.NaN, 3, 4 }).reshape(2, 2);
        var nan = Assert.Throws<ArgumentException>(() => Standardizer.Fit(train));
        Assert.StartsWith("The training features contain 1 NaN value(s) (first at row 0, feature column 1); pass imputeMissing: true", nan.Message);
        using var s = Standardizer.Fit(train, imputeMissing: true);
        Assert.Equal(new[] { 2.0, 4.0 }, s.Mean.data<double>().ToArray()); // NaN ignored in the mean
        using var z = s.Transform(train);
        Assert.Equal(0.0, z[0, 1].item<double>()); // the missing cell becomes the training mean
        var shape = Assert.Throws<ArgumentException>(() => s.Transform(wrong));
        Assert.StartsWith("This Standardizer was fitted on 2 features; got shape [2, 3], expected [rows, 2].", shape.Message);
    }

    static long[] Labels() => Enumerable.Range(0, 100).Select(i => i < 60 ? 0L : i < 90 ? 1L : 2L).ToArray(); // 60/30/10

    [Fact]
    public void StratifiedSplit_keeps_class_shares_and_is_seeded()
    {
        var y = Labels();
        var s = Splits.StratifiedSplit(y, 0.2, seed: 1);
        Assert.Equal(new[] { 12, 6, 2 }, new[] { 0L, 1, 2 }.Select(c => s.Test.Count(i => y[i] == c)));
        Assert.Equal(80, s.Train.Length);
        Assert.Empty(s.Train.Intersect(s.Test));
        Assert.Equal(s.Test, Splits.StratifiedSplit(y, 0.2, seed: 1).Test);
        Assert.NotEqual(s.Test, Splits.StratifiedSplit(y, 0.2, seed: 2).Test);
        var e = Assert.Throws<ArgumentException>(() => Splits.StratifiedSplit(new long[] { 0, 0, 1 }, 0.5));
        Assert.StartsWith("Class 1 has 1 row(s); a stratified split needs at least 2 per class.", e.Message);
        Assert.Throws<ArgumentException>(() => Splits.StratifiedSplit(y, 1.0));
    }

    [Fact]
    public void StratifiedKFold_partitions_rows_with_balanced_classes()
    {
        var y = Labels();
        var folds = Splits.StratifiedKFold(y, 5, seed: 3);
        Assert.Equal(5, folds.Count);
        Assert.Equal(Enumerable.Range(0, 100).Select(i => (long)i), folds.SelectMany(f => f.Test).Order());
        foreach (var f in folds)
        {
            Assert.Equal(20, f.Test.Length);
            Assert.Equal(80, f.Train.Length);
            Assert.Empty(f.Train.Intersect(f.Test));
            Assert.Equal(new[] { 12, 6, 2 }, new[] { 0L, 1, 2 }.Select(c => f.Test.Count(i => y[i] == c)));
        }
        var e = Assert.Throws<ArgumentException>(() => Splits.StratifiedKFold(y, 11));
        Assert.StartsWith("Class 2 has 10 row(s), fewer than k = 11 folds", e.Message);
        Assert.Throws<ArgumentException>(() => Splits.StratifiedKFold(y, 1));
        using var t = tensor(y);
        Assert.Equal(folds[0].Test, Splits.StratifiedKFold(t, 5, seed: 3)[0].Test);
    }

    [Fact]
    public void ClassificationReport_matches_hand_computation()
    {
        // true:  0 0 0 1 1 2 ; pred: 0 0 1 1 2 2
        using var target = tensor(new long[] { 0, 0, 0, 1, 1, 2 });
        using var pred = tensor(new long[] { 0, 0, 1, 1, 2, 2 });
        var r = new ClassificationReport(pred, target, new[] { "a", "b", "c" });
        Assert.Equal(4.0 / 6, r.Accuracy, 12);
        Assert.Equal(new[] { 1.0, 0.5, 0.5 }, r.Precision);
        Assert.Equal(new[] { 2.0 / 3, 0.5, 1.0 }, r.Recall);
        Assert.Equal(0.8, r.F1[0], 12);
        Assert.Equal(new long[] { 3, 2, 1 }, r.Support);
        Assert.Equal(1L, r.Confusion[0, 1]);
        var df = r.ToDataFrame();
        Assert.Equal(new[] { "a", "b", "c", "macro avg", "weighted avg", "accuracy" }, df.Columns["class"].Cast<string>());
        Assert.Equal((0.8 + 0.5 + 2.0 / 3) / 3, (double)df.Columns["f1"][3]!, 12);
        Assert.Equal(4.0 / 6, (double)df.Columns["f1"][5]!, 12);
        Assert.Equal(2L, r.ConfusionDataFrame().Columns["a"][0]);
        using var logits = nn.functional.one_hot(pred, 3).to_type(ScalarType.Float32);
        Assert.Equal(r.Accuracy, new ClassificationReport(logits, target).Accuracy);
        var e = Assert.Throws<ArgumentException>(() => new ClassificationReport(pred, target, new[] { "a", "b" }));
        Assert.Contains("outside the 2 classes", e.Message);
    }

    [Fact]
    public void MeanStd_uses_sample_std()
    {
        var m = MeanStd.Of(new[] { 0.9, 0.95, 1.0 });
        Assert.Equal(0.95, m.Mean, 12);
        Assert.Equal(0.05, m.Std, 12);
        Assert.Equal("0.9500 ± 0.0500", m.ToString());
        Assert.Throws<ArgumentException>(() => MeanStd.Of(Array.Empty<double>()));
    }

    [Fact]
    public void Breast_cancer_csv_loads_with_header()
    {
        var f = DataFrame.LoadCsv(Workbook.Data.DataPaths.File("tabular", "breast_cancer.csv"));
        Assert.Equal(569, f.Rows.Count);
        Assert.Equal("mean radius", f.Columns[0].Name);
        var features = TabularData.NumericColumns(f, "target");
        Assert.Equal(30, features.Length);
        var y = TabularData.EncodeLabels(f, "class", new[] { "malignant", "benign" });
        Assert.Equal(357, y.Labels.sum().item<long>()); // 212 malignant, 357 benign
    }
}
