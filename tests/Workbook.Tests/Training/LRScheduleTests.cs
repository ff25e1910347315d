using TorchSharp;
using Workbook.Training;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Workbook.Tests.Training;

public class LRScheduleTests
{
    [Fact]
    public void StepDecayValues()
    {
        var s = LRSchedule.Step(0.1, stepSize: 10, gamma: 0.5);
        Assert.Equal(0.1, s.LearningRate(0));
        Assert.Equal(0.1, s.LearningRate(9));
        Assert.Equal(0.05, s.LearningRate(10));
        Assert.Equal(0.025, s.LearningRate(25), 15);
    }

    [Fact]
    public void CosineValues()
    {
        var s = LRSchedule.Cosine(1.0, totalSteps: 100);
        Assert.Equal(1.0, s.LearningRate(0));
        Assert.Equal((1 + Math.Sqrt(0.5)) / 2, s.LearningRate(25), 15); // cos(π/4) = √½
        Assert.Equal(0.5, s.LearningRate(50), 15);
        Assert.Equal(0.0, s.LearningRate(100), 15);
        Assert.Equal(0.0, s.LearningRate(150));
        var m = LRSchedule.Cosine(1.0, totalSteps: 100, minLr: 0.1);
        Assert.Equal(0.55, m.LearningRate(50), 15);
        Assert.Equal(0.1, m.LearningRate(100), 15);
    }

    [Fact]
    public void WarmupCosineValues()
    {
        var s = LRSchedule.WarmupCosine(1e-3, warmupSteps: 10, totalSteps: 110, minLr: 1e-4);
        Assert.Equal(1e-4, s.LearningRate(0), 15);   // (0+1)/10 of the peak
        Assert.Equal(5e-4, s.LearningRate(4), 15);
        Assert.Equal(1e-3, s.LearningRate(9), 15);   // warmup reaches the peak ...
        Assert.Equal(1e-3, s.LearningRate(10), 15);  // ... and the cosine starts from it
        Assert.Equal(5.5e-4, s.LearningRate(60), 15); // half-way: min + (peak − min)/2
        Assert.Equal(1e-4 + 9e-4 * (1 + Math.Cos(Math.PI / 4)) / 2, s.LearningRate(35), 15);
        Assert.Equal(1e-4, s.LearningRate(110), 15);
        Assert.Equal(1e-4, s.LearningRate(1000));
        Assert.Equal(10, s.Values(10).Length);
    }

    [Fact]
    public void StepMatchesTorchSharpStepLR()
    {
        var w = new Parameter(torch.zeros(1));
        var opt = Optimizers.Sgd(new[] { w }, lr: 0.3);
        var torchSchedule = torch.optim.lr_scheduler.StepLR(opt, 7, 0.3);
        var ours = LRSchedule.Step(0.3, 7, 0.3);
        for (int t = 0; t < 40; t++)
        {
            Assert.Equal(ours.LearningRate(t), Optimizers.GetLearningRate(opt), 12);
            opt.step();
            torchSchedule.step();
        }
    }

    [Fact]
    public void CosineMatchesTorchSharpCosineAnnealingLR()
    {
        var w = new Parameter(torch.zeros(1));
        var opt = Optimizers.Sgd(new[] { w }, lr: 0.5);
        var torchSchedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, 50, 0.05);
        var ours = LRSchedule.Cosine(0.5, 50, 0.05);
        for (int t = 0; t <= 50; t++)
        {
            Assert.True(Math.Abs(ours.LearningRate(t) - Optimizers.GetLearningRate(opt)) < 1e-9,
                $"step {t}: ours {ours.LearningRate(t)}, TorchSharp {Optimizers.GetLearningRate(opt)}");
            opt.step();
            torchSchedule.step();
        }
    }

    [Fact]
    public void InvalidArgumentsAreNamed()
    {
        Assert.Equal("totalSteps", Assert.Throws<ArgumentOutOfRangeException>(() => LRSchedule.WarmupCosine(1e-3, 10, 10)).ParamName);
        Assert.Equal("stepSize", Assert.Throws<ArgumentOutOfRangeException>(() => LRSchedule.Step(1e-3, 0)).ParamName);
        Assert.Equal("lr", Assert.Throws<ArgumentOutOfRangeException>(() => LRSchedule.Cosine(double.NaN, 10)).ParamName);
        Assert.Throws<ArgumentOutOfRangeException>(() => LRSchedule.Constant(0.1).LearningRate(-1));
    }
}
