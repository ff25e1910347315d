using TorchSharp;
using Workbook.FineTuning;
using Workbook.Gpt;
using static TorchSharp.torch;

namespace Workbook.Tests.Gpt;

[Collection(Workbook.Tests.Training.TorchGlobalStateCollection.Name)]
public class GptSequenceClassifierTests
{
    const int Pad = 511; // the tiny model's end-of-text id

    [Fact]
    public void HiddenStatesAreTheReferenceFinalHiddenStatesWithGradients()
    {
        using var model = Golden.Model();
        var hidden = model.HiddenStates(Golden.Tensors["input.input_ids"]);
        Assert.True(hidden.requires_grad);
        Assert.True(Golden.MaxDiff(hidden.detach(), Golden.Tensors["expected.hidden.ln_f"]) < 1e-4);
    }

    [Fact]
    public void TheHeadReadsTheLastRealTokenAndPaddingChangesNothing()
    {
        using var model = Golden.Model();
        manual_seed(5);
        using var clf = new GptSequenceClassifier(model, numClasses: 3, padTokenId: Pad);
        int[][] texts = [[5, 17, 300, 42, 9], [8, 8], [100, 200, 300, 400, 500, 7, 6]];
        var batch = clf.Pad(texts, maxLength: 64);
        Assert.Equal(new long[] { 3, 7 }, batch.shape);
        Assert.Equal(new long[] { 4, 1, 6 }, clf.LastTokenIndex(batch).data<long>().ToArray());
        using var _ = no_grad();
        var logits = clf.forward(batch);
        Assert.Equal(new long[] { 3, 3 }, logits.shape);
        for (int b = 0; b < texts.Length; b++)
        {
            // Alone and unpadded: the hidden state of its own last token, times the head's weight.
            var alone = model.HiddenStates(tensor(texts[b].Select(i => (long)i).ToArray(), [1, texts[b].Length]))[0, -1];
            var expected = clf.Head.weight!.matmul(alone);
            Assert.True((logits[b] - expected).abs().max().item<float>() < 1e-5, $"row {b}");
        }
        // More padding on the right: the same logits (causal attention never looks ahead).
        var longer = cat([batch, full(3, 9, Pad, dtype: ScalarType.Int64)], 1);
        Assert.True((clf.forward(longer) - logits).abs().max().item<float>() < 1e-5);
        // The cut keeps the first tokens.
        Assert.Equal(new long[] { 3, 2 }, clf.Pad(texts, maxLength: 2).shape);
    }

    [Fact]
    public void ALinearProbeTrainsOnlyTheHeadAndFullFineTuningReachesTheBackbone()
    {
        using var model = Golden.Model();
        manual_seed(1);
        using var clf = new GptSequenceClassifier(model, 2, Pad);
        var ids = Golden.Tensors["input.input_ids"];
        var labels = tensor(Enumerable.Range(0, (int)ids.shape[0]).Select(i => (long)(i % 2)).ToArray());

        Freezing.Freeze(clf.Backbone);
        Assert.Equal(2L * model.Config.DModel, Freezing.TrainableCount(clf));
        nn.functional.cross_entropy(clf.forward(ids), labels).backward();
        Assert.All(clf.named_parameters(), p => Assert.Equal(p.name == "score.weight", p.parameter.grad is not null));

        clf.zero_grad();
        Freezing.Unfreeze(clf);
        nn.functional.cross_entropy(clf.forward(ids), labels).backward();
        var grad = clf.named_parameters().First(p => p.name == "transformer.h.0.attn.c_attn.weight").parameter.grad;
        Assert.True(grad is not null && grad.norm().item<float>() > 0);
        Assert.Contains(clf.named_parameters(), p => p.name == "transformer.wte.weight");
    }

    [Fact]
    public void BadInputIsRejected()
    {
        using var model = Golden.Model();
        Assert.Contains("at least 2", Assert.Throws<ArgumentException>(() => new GptSequenceClassifier(model, 1)).Message);
        Assert.Contains("padTokenId must be in [0, 512), got 600", Assert.Throws<ArgumentException>(() => new GptSequenceClassifier(model, 2, 600)).Message);
        using var clf = new GptSequenceClassifier(model, 2, Pad);
        Assert.Contains("only of padding", Assert.Throws<ArgumentException>(() => clf.forward(full(2, 4, Pad, dtype: ScalarType.Int64))).Message);
        Assert.Contains("maxLength must be in [1, 64]", Assert.Throws<ArgumentException>(() => clf.Pad([[1, 2]], 65)).Message);
        Assert.Contains("Sequence 1 is empty", Assert.Throws<ArgumentException>(() => clf.Pad([[1], []], 8)).Message);
    }
}
