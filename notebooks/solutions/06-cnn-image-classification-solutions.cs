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
// # 06 · Solutions: CNN image classification
//
// Solutions to the exercises of `06-cnn-image-classification.ipynb`. The Quick profile trains on small slices so the notebook runs in CI in a minute or two; the numbers quoted in the text are for the Full profile.

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
using Workbook.Training;
using Workbook.Vision;

var classes = Datasets.FashionMnistClasses;
var trainAll = Datasets.FashionMnist(train: true, limit: Notebook.Pick<int?>(quick: 4000, full: null));
var testAll = Datasets.FashionMnist(train: false, limit: Notebook.Pick<int?>(quick: 1000, full: null));
// As in the chapter: 10% of the training images validate (per-epoch numbers, comparisons); the test set is used once, for exercise 1's final model.
var (trainRaw, valRaw) = trainAll.Split(validationFraction: 0.1, seed: 1);
float pixelMean = trainRaw.Inputs.mean().item<float>(), pixelStd = trainRaw.Inputs.std().item<float>();
InMemoryDataset Standardised(InMemoryDataset d) => new((d.Inputs - pixelMean) / pixelStd, d.Targets);
var (trainSet, valSet, testSet) = (Standardised(trainRaw), Standardised(valRaw), Standardised(testAll));
var valLoader = new BatchLoader(valSet, 1000);
long CountParameters(nn.Module m) => m.parameters().Sum(p => p.numel());
$"train {trainSet.Count}, validation {valSet.Count}, test {testSet.Count}"

// %% [markdown]
// ## Exercise 1 · Reach 92%
//
// Two changes over the chapter's run: **more epochs** (15 instead of 6) with a warm-up + cosine schedule, and **data augmentation**: every batch is randomly mirrored left-right (clothes are roughly symmetric, so a flipped shirt is still a shirt) and shifted by up to 2 pixels (zero padding plus a random crop). Augmentation shows the network a slightly different image each epoch, which fights the overfitting that more epochs would otherwise bring. It is applied to whole batches with tensor operations, seeded per epoch so a run is reproducible.

// %%
/// <summary>Wraps a loader and augments each training batch: random horizontal flips and random shifts of up to `shift` pixels.</summary>
sealed class AugmentedLoader : IBatchSource
{
    readonly BatchLoader inner; readonly int shift;
    public AugmentedLoader(BatchLoader inner, int shift) { this.inner = inner; this.shift = shift; }
    public int BatchCount => inner.BatchCount;
    public long SampleCount => inner.SampleCount;
    public IEnumerable<Batch> Batches(int epoch)
    {
        var rng = new Random(1000 + epoch);
        foreach (var (x, y) in inner.Batches(epoch))
        {
            long n = x.shape[0], h = x.shape[2], w = x.shape[3];
            // Flip: choose per sample between x and its mirror image.
            var flip = torch.tensor(Enumerable.Range(0, (int)n).Select(_ => rng.NextDouble() < 0.5).ToArray()).view(-1, 1, 1, 1);
            var flipped = torch.where(flip, x.flip(3), x);
            // Shift: pad by `shift` (with the background value, the minimum) and crop one random window for the batch.
            var background = x.min().item<float>();
            var padded = nn.functional.pad(flipped, new long[] { shift, shift, shift, shift }, value: background);
            int top = rng.Next(2 * shift + 1), left = rng.Next(2 * shift + 1);
            yield return new Batch(padded.narrow(2, top, h).narrow(3, left, w), y);
        }
    }
}

// %%
int epochs1 = Notebook.Pick(quick: 1, full: 15);
Notebook.Reseed(42);
var wide = new BatchNormCNN(channels1: 16, channels2: 32, hidden: 128, dropout: 0.3);
var augmented = new AugmentedLoader(new BatchLoader(trainSet, 128, shuffle: true, seed: 42), shift: 2);
var trainer1 = new Trainer(wide, Optimizers.AdamW(wide.parameters(), 3e-3, weightDecay: 1e-4), Losses.CrossEntropyWith(labelSmoothing: 0.05))
{
    Metrics = { Metric.Accuracy },
    Epochs = epochs1,
    Schedule = LRSchedule.WarmupCosine(3e-3, augmented.BatchCount / 2, epochs1 * (long)augmented.BatchCount),
};
var bar1 = Notebook.Display("training…");
trainer1.OnProgress = p => bar1.Update(p);
var clock1 = System.Diagnostics.Stopwatch.StartNew();
trainer1.Fit(augmented, valLoader);
display(trainer1.History.Plot("Wider BatchNormCNN with augmentation"));
var wideAccuracy = Evaluation.Accuracy(Evaluation.Predict(wide, testSet.Inputs), testSet.Targets);   // the test set, once
display($"test accuracy {wideAccuracy:P2} after {epochs1} epoch(s) in {clock1.Elapsed.TotalMinutes:F1} minutes (goal: 92%), {CountParameters(wide):N0} parameters");
display(Claim.AtLeast("in Full the wider, augmented CNN clears 90 % test accuracy", wideAccuracy, full: 0.90, quick: null));
Claim.AtMost("… but stays short of the 92 % goal", wideAccuracy, full: 0.92, quick: null)

// %% [markdown]
// In the Full profile (15 epochs over the 54,000 training images; the cell prints how long it took) this network reached 91.3 % on our machine: it clears 90 % (the claim above checks that), but falls short of the 92 % goal. The Quick run only shows that the pipeline works. The next steps cost more CPU time: the wider layers below, and more epochs. Augmentation is what lets 15 epochs help: without it the network sees the same images again and again and starts to memorise them. Wider layers (`channels1: 32, channels2: 64`) cost about four times the convolution work per image in the second layer (twice the filters in, twice out) on a CPU. Label smoothing (0.05) and weight decay are small regularisers; measure each change on its own before keeping it.
//
// ## Exercise 2 · Receptive field
//
// Each layer widens the window of input pixels a unit depends on by `(k − 1)` times the product of the strides before it ("jump"):
//
// | layer | k | s | jump before | receptive field |
// |---|---|---|---|---|
// | conv1 | 3 | 1 | 1 | 1 + 2·1 = 3 |
// | pool1 | 2 | 2 | 1 | 3 + 1·1 = 4 |
// | conv2 | 3 | 1 | 2 | 4 + 2·2 = 8 |
// | pool2 | 2 | 2 | 2 | 8 + 1·2 = 10 |
//
// So one unit of the second stage sees a 10×10 patch, a bit over a third of the 28×28 image. Empirically: replace every weight by 1 and max-pool by average-pool (so no path is cut off by a ReLU or by max selection), and ask autograd which input pixels one output unit depends on.

// %%
int ReceptiveField(int[] kernels, int[] strides)
{
    int rf = 1, jump = 1;
    for (int l = 0; l < kernels.Length; l++) { rf += (kernels[l] - 1) * jump; jump *= strides[l]; }
    return rf;
}
var x = torch.zeros(1, 1, 28, 28, requires_grad: true);
var ones3 = torch.ones(1, 1, 3, 3);
var stage2 = nn.functional.avg_pool2d(nn.functional.conv2d(nn.functional.avg_pool2d(nn.functional.conv2d(x, ones3, padding: new long[] { 1, 1 }), 2),
    ones3, padding: new long[] { 1, 1 }), 2);
stage2[0, 0, 3, 3].backward();                                  // one unit in the middle of the 7×7 output
var touched = x.grad!.squeeze().ne(0);
long rows = touched.any(1).sum().item<long>(), cols = touched.any(0).sum().item<long>();
display($"formula: {ReceptiveField(new[] { 3, 2, 3, 2 }, new[] { 1, 2, 1, 2 })}; autograd: {rows}×{cols} input pixels influence unit (3, 3)");
display(Claim.Close("the formula gives a 10×10 receptive field", ReceptiveField(new[] { 3, 2, 3, 2 }, new[] { 1, 2, 1, 2 }), 10, 0));
Claim.That("autograd finds the same 10×10 patch", rows == 10 && cols == 10, $"{rows}×{cols}")

// %% [markdown]
// ## Exercise 3 · Strided convolutions instead of pooling
//
// A 3×3 convolution with stride 2 and padding 1 also halves the size (`ConvArithmetic.OutputSize(28, 3, 2, 1) = 14`), but it *learns* how to downsample instead of taking a fixed maximum. It costs parameters and compute.

// %%
sealed class StridedCNN : nn.Module<Tensor, Tensor>
{
    readonly nn.Module<Tensor, Tensor> conv1, down1, conv2, down2, fc;
    public StridedCNN(int height = 28, int width = 28, int c1 = 8, int c2 = 16, int classes = 10) : base(nameof(StridedCNN))
    {
        int h = ConvArithmetic.OutputSize(ConvArithmetic.OutputSize(height, 3, 2, 1), 3, 2, 1);
        int w = ConvArithmetic.OutputSize(ConvArithmetic.OutputSize(width, 3, 2, 1), 3, 2, 1);
        conv1 = nn.Conv2d(1, c1, 3, padding: 1); down1 = nn.Conv2d(c1, c1, 3, stride: 2, padding: 1);
        conv2 = nn.Conv2d(c1, c2, 3, padding: 1); down2 = nn.Conv2d(c2, c2, 3, stride: 2, padding: 1);
        fc = nn.Linear(c2 * h * w, classes);
        RegisterComponents();
    }
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var h = nn.functional.relu(down1.forward(nn.functional.relu(conv1.forward(x))));
        h = nn.functional.relu(down2.forward(nn.functional.relu(conv2.forward(h))));
        return fc.forward(h.flatten(1)).MoveToOuterDisposeScope();
    }
}

(double Accuracy, double Seconds) TrainOneEpoch(nn.Module<Tensor, Tensor> model)
{
    var loader = new BatchLoader(trainSet, 128, shuffle: true, seed: 42);
    var trainer = new Trainer(model, Optimizers.Adam(model.parameters(), 2e-3), Losses.CrossEntropy) { Epochs = 1 };
    var clock = System.Diagnostics.Stopwatch.StartNew();
    trainer.Fit(loader);
    return (Evaluation.Accuracy(Evaluation.Predict(model, valSet.Inputs), valSet.Targets), clock.Elapsed.TotalSeconds);
}
Notebook.Reseed(42);
var pooledNet = new SimpleCNN();
var pooledResult = TrainOneEpoch(pooledNet);
Notebook.Reseed(42);
var stridedNet = new StridedCNN();
var stridedResult = TrainOneEpoch(stridedNet);
display(new DataFrame(
    new StringDataFrameColumn("model", new[] { "SimpleCNN (max-pool)", "StridedCNN (stride-2 conv)" }),
    new Int64DataFrameColumn("parameters", new[] { CountParameters(pooledNet), CountParameters(stridedNet) }),
    new DoubleDataFrameColumn("validation accuracy, 1 epoch", new[] { Math.Round(pooledResult.Accuracy, 4), Math.Round(stridedResult.Accuracy, 4) }),
    new DoubleDataFrameColumn("seconds", new[] { Math.Round(pooledResult.Seconds, 1), Math.Round(stridedResult.Seconds, 1) })));
display(Claim.Close("the strided network adds 8·8·9 + 8 + 16·16·9 + 16 = 2,904 parameters", CountParameters(stridedNet) - CountParameters(pooledNet), 2_904, 0));
Claim.AtMost("after one epoch the two are close (points)", Math.Abs(pooledResult.Accuracy - stridedResult.Accuracy), full: 0.02, quick: null)

// %% [markdown]
// The strided network adds `8·8·9 + 8 + 16·16·9 + 16 = 2,904` parameters and two full convolutions of compute. After one epoch the two are close; pooling's fixed "take the max" is a good prior at this scale, while learned downsampling pays off in deeper networks (ResNets downsample with stride-2 convolutions).
//
// ## Exercise 4 · Out-of-distribution photos
//
// Two photographs that are not clothing at all, through the same ImageFolder pipeline (grayscale, resized to 28×28, normalised with the training statistics), classified by the network from exercise 1:

// %%
using System.IO;
var photoRoot = Path.Combine(Path.GetTempPath(), "workbook-06-photos");
if (Directory.Exists(photoRoot)) Directory.Delete(photoRoot, recursive: true);
Directory.CreateDirectory(Path.Combine(photoRoot, "photo"));
foreach (var name in new[] { "china.jpg", "flower.jpg" })
    File.Copy(DataPaths.File("images", name), Path.Combine(photoRoot, "photo", name));
var photos = new ImageFolder(photoRoot, torchvision.transforms.Compose(torchvision.transforms.Resize(28, 28, InterpolationMode.Bilinear, antialias: true),
    torchvision.transforms.ConvertImageDtype(ScalarType.Float32), new Normalize(new[] { pixelMean }, new[] { pixelStd })), channels: 1);
var (photoInputs, _) = photos.Load();
// Fashion-MNIST garments are light on black: also try the inverted photos (1 − x in 0..1 units).
var inverted = (1f - (photoInputs * pixelStd + pixelMean) - pixelMean) / pixelStd;
var probs = Evaluation.Predict(wide, torch.cat(new[] { photoInputs, inverted })).softmax(1);
var (conf, pred) = probs.max(1);
// For comparison: the median confidence on real Fashion-MNIST images the model did not train on (the validation split).
var testConfidence = Evaluation.Predict(wide, valSet.Inputs).softmax(1).max(1).values.median().item<float>();
display($"median softmax confidence on Fashion-MNIST validation images: {testConfidence:F3}");
new DataFrame(
    new StringDataFrameColumn("image", photos.Samples.Select(s => Path.GetFileName(s.Path)).Concat(photos.Samples.Select(s => Path.GetFileName(s.Path) + " (inverted)"))),
    new StringDataFrameColumn("predicted class", pred.data<long>().ToArray().Select(p => classes[(int)p])),
    new DoubleDataFrameColumn("softmax confidence", conf.data<float>().ToArray().Select(c => Math.Round((double)c, 3))))

// %%
VisionPlot.ImageGrid(torch.cat(new[] { photoInputs, inverted }), photos.Samples.Select(s => Path.GetFileName(s.Path)).Concat(new[] { "inverted", "inverted" }).ToList(),
    columns: 4, title: "What the network sees: 28×28 grayscale")

// %% [markdown]
// The network must answer with one of its ten classes, and the softmax always sums to 1 over them, so it names a garment for a temple or a flower; nothing in its output can say "this is not clothing". Compare its confidence on the photos with the median on real Fashion-MNIST images printed above: even where it is lower, a threshold on confidence is a weak detector, because many genuine but ambiguous images (shirts, pullovers) get low confidence too, and other out-of-distribution inputs can get high confidence. A softmax output is the model's relative preference among the classes it knows, not a probability that the input *is* one of them. Detecting out-of-distribution inputs needs something extra (a reject class trained on other images, thresholds on the maximum logit or energy, ensembles), and a deployed classifier should be evaluated on the kind of images it will actually receive.

// %% [markdown]
// The same experiment at scale with the **MNIST** test set (handwritten digits, same 28×28 grayscale format, light strokes on black, so it even matches Fashion-MNIST's polarity): every digit gets a garment label.

// %%
var digits = Datasets.Mnist(train: false, limit: Notebook.Pick<int?>(quick: 1000, full: null));
var digitProbs = Evaluation.Predict(wide, (digits.Inputs - pixelMean) / pixelStd).softmax(1);
var (digitConf, digitPred) = digitProbs.max(1);
var predicted = digitPred.data<long>().ToArray();
var confidences = digitConf.data<float>().ToArray();
var digitLabels = digits.Targets.data<long>().ToArray();
var rowsByDigit = Enumerable.Range(0, 10).Select(d =>
{
    var idx = Enumerable.Range(0, predicted.Length).Where(i => digitLabels[i] == d).ToList();
    var top = idx.GroupBy(i => predicted[i]).OrderByDescending(g => g.Count()).First();
    return (digit: d, garment: classes[(int)top.Key], share: (double)top.Count() / idx.Count,
            median: idx.Select(i => (double)confidences[i]).OrderBy(v => v).ElementAt(idx.Count / 2));
}).ToList();
display(Claim.AtLeast("the same digit mostly lands in the same garment class (mean share)", rowsByDigit.Average(r => r.share), full: 0.5, quick: null));
new DataFrame(
    new Int32DataFrameColumn("digit", rowsByDigit.Select(r => r.digit)),
    new StringDataFrameColumn("most often classified as", rowsByDigit.Select(r => r.garment)),
    new DoubleDataFrameColumn("share of that digit", rowsByDigit.Select(r => Math.Round(r.share, 3))),
    new DoubleDataFrameColumn("median confidence", rowsByDigit.Select(r => Math.Round(r.median, 3))))

// %% [markdown]
// Every digit is mapped onto some garment, often consistently (the same digit mostly lands in the same class), because the network matches the shapes it knows: a vertical stroke, a closed loop, a wide blob. Compare the median confidences with the median on real Fashion-MNIST images above: a model trained on ten classes has no way to say "none of these".
