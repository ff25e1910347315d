using TorchSharp;
using Workbook.Tests.Attention;
using Workbook.Transformers;
using static TorchSharp.torch;

namespace Workbook.Tests.Transformers;

public class DigitSequenceTaskTests
{
    [Fact]
    public void SolvesEachKind()
    {
        var s = new long[] { 3, 1, 4, 1 };
        Assert.Equal(new long[] { 1, 4, 1, 3 }, new DigitSequenceTask(DigitTaskKind.Reverse).Solve(s));
        Assert.Equal(new long[] { 1, 1, 3, 4 }, new DigitSequenceTask(DigitTaskKind.Sort).Solve(s));
        Assert.Equal(s, new DigitSequenceTask(DigitTaskKind.Copy).Solve(s));
    }

    [Fact]
    public void BatchIsShiftedTeacherForcingWithPaddingAndEos()
    {
        var task = new DigitSequenceTask(DigitTaskKind.Reverse, 1, 4);
        using var b = task.Batch(new[] { new long[] { 1, 2, 3 }, new long[] { 7 } });
        const long P = DigitSequenceTask.Pad, S = DigitSequenceTask.Bos, E = DigitSequenceTask.Eos;
        Assert.Equal(new long[] { 1, 2, 3, P, 7, P, P, P }, b.Source.data<long>().ToArray());
        Assert.Equal(new[] { false, false, false, true, false, true, true, true }, b.SourcePadding.data<bool>().ToArray());
        Assert.Equal(new long[] { S, 3, 2, 1, P, S, 7, P, P, P }, b.DecoderInput.data<long>().ToArray());
        Assert.Equal(new long[] { 3, 2, 1, E, P, 7, E, P, P, P }, b.Target.data<long>().ToArray());
    }

    [Fact]
    public void TrainingSamplesNeverComeFromTheHeldOutSet()
    {
        var task = new DigitSequenceTask(DigitTaskKind.Reverse, 1, 2, seed: 3);   // only 110 possible sequences
        var test = task.HeldOut(60);
        Assert.Equal(60, test.Select(s => string.Join(",", s)).Distinct().Count());
        var train = task.Sample(2000);
        Assert.DoesNotContain(train, task.IsHeldOut);
        Assert.Equal(50, train.Select(s => string.Join(",", s)).Distinct().Count());   // all the others do appear
    }

    [Fact]
    public void ExactMatchComparesUpToEosAndIgnoresTheRest()
    {
        const long P = DigitSequenceTask.Pad, S = DigitSequenceTask.Bos, E = DigitSequenceTask.Eos;
        var target = tensor(new long[] { 3, 2, E, P, 5, E, P, P, 1, 1, 1, E }, new long[] { 3, 4 });
        var generated = tensor(new long[] { S, 3, 2, E, 9, S, 5, E, E, E, S, 1, 1, 2, E }, new long[] { 3, 5 });
        Assert.Equal(new[] { true, true, false }, DigitSequenceTask.Correct(generated, target));
        Assert.Equal(2 / 3.0, DigitSequenceTask.ExactMatch(generated, target), 12);
        var tooShort = tensor(new long[] { S, 3, 2 }, new long[] { 1, 3 });
        Assert.Equal(new[] { false }, DigitSequenceTask.Correct(tooShort, target[..1]));
        Assert.Equal("<s> 3 2 </s>", DigitSequenceTask.Format(new long[] { S, 3, 2, E, 9 }));
    }
}
