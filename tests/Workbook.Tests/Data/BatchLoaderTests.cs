using TorchSharp;
using Workbook.Data;
using static TorchSharp.torch;

namespace Workbook.Tests.Data;

[Collection(Workbook.Tests.Training.TorchGlobalStateCollection.Name)]
public class BatchLoaderTests
{
    static InMemoryDataset Indexed(int n) => new(torch.arange(n, dtype: float32).unsqueeze(1), torch.arange(n));

    static long[] Order(BatchLoader loader, int epoch) =>
        loader.Batches(epoch).SelectMany(b => b.Target.data<long>().ToArray()).ToArray();

    [Fact]
    public void BatchesHaveTheRightSizes()
    {
        using var ds = Indexed(10);
        var loader = new BatchLoader(ds, 4);
        Assert.Equal(3, loader.BatchCount);
        Assert.Equal(new long[] { 4, 4, 2 }, loader.Batches(0).Select(b => b.Input.shape[0]));
        Assert.Equal(Enumerable.Range(0, 10).Select(i => (long)i), Order(loader, 0)); // unshuffled: in order
        var dropped = new BatchLoader(ds, 4, dropLast: true);
        Assert.Equal(2, dropped.BatchCount);
        Assert.Equal(8, dropped.SampleCount);
        Assert.Equal(new long[] { 4, 4 }, dropped.Batches(0).Select(b => b.Input.shape[0]));
        Assert.Throws<ArgumentOutOfRangeException>(() => new BatchLoader(ds, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => new BatchLoader(ds, 11, dropLast: true));
    }

    [Fact]
    public void ShuffleIsAPermutationPerEpochSeededAndReproducible()
    {
        using var ds = Indexed(100);
        var loader = new BatchLoader(ds, 16, shuffle: true, seed: 7);
        var e0 = Order(loader, 0); var e1 = Order(loader, 1);
        Assert.Equal(Enumerable.Range(0, 100).Select(i => (long)i), e0.OrderBy(i => i)); // every sample exactly once
        Assert.Equal(Enumerable.Range(0, 100).Select(i => (long)i), e1.OrderBy(i => i));
        Assert.NotEqual(e0, e1);                                              // a new order each epoch
        Assert.Equal(e1, Order(new BatchLoader(ds, 16, shuffle: true, seed: 7), 1)); // same seed and epoch, same order
        Assert.NotEqual(e0, Order(new BatchLoader(ds, 16, shuffle: true, seed: 8), 0));
        // Inputs and targets stay paired.
        foreach (var b in loader.Batches(3)) Assert.Equal(b.Target.to(float32).data<float>().ToArray(), b.Input.squeeze(1).data<float>().ToArray());
        // foreach walks epoch 0, then epoch 1.
        Assert.Equal(e0, loader.SelectMany(b => b.Target.data<long>().ToArray()));
        Assert.Equal(e1, loader.SelectMany(b => b.Target.data<long>().ToArray()));
    }

    [Fact]
    public void ShufflingDoesNotTouchTheGlobalRng()
    {
        using var ds = Indexed(50);
        torch.manual_seed(3);
        var a = torch.rand(4);
        torch.manual_seed(3);
        _ = Order(new BatchLoader(ds, 8, shuffle: true, seed: 1), 0);
        var b = torch.rand(4);
        Assert.True(a.bytes.SequenceEqual(b.bytes));
    }

    [Fact]
    public void SplitIsDisjointCompleteAndSeeded()
    {
        using var ds = Indexed(100);
        var (train, val) = ds.Split(0.2, seed: 5);
        Assert.Equal(80, train.Count);
        Assert.Equal(20, val.Count);
        var all = train.Targets.data<long>().ToArray().Concat(val.Targets.data<long>().ToArray()).OrderBy(i => i);
        Assert.Equal(Enumerable.Range(0, 100).Select(i => (long)i), all);
        var (_, val2) = ds.Split(0.2, seed: 5);
        Assert.Equal(val.Targets.data<long>().ToArray(), val2.Targets.data<long>().ToArray());
        var (_, val3) = ds.Split(0.2, seed: 6);
        Assert.NotEqual(val.Targets.data<long>().ToArray(), val3.Targets.data<long>().ToArray());
        Assert.Equal("validationFraction", Assert.Throws<ArgumentOutOfRangeException>(() => ds.Split(0.001)).ParamName);
    }

    [Fact]
    public void MismatchedSampleCountsAreNamed()
    {
        var e = Assert.Throws<ArgumentException>(() => new InMemoryDataset(torch.zeros(5, 2), torch.zeros(4)));
        Assert.Contains("inputs has 5 samples", e.Message);
        Assert.Contains("targets has 4", e.Message);
    }
}
