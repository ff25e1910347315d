using System.Diagnostics;
using Workbook.Data;
using Workbook.Training;
using F = TorchSharp.torch.nn.functional;

namespace Workbook.Bench.Workloads;

/// <summary>
/// Workload 5a: the Trainer's overhead. One epoch of MLP 784-256-128-10 training (Adam, batch 64) over the same
/// <see cref="BatchLoader"/>, once through <see cref="Trainer.Fit"/> and once as the bare loop a reader would write
/// (zero_grad, forward, loss, backward, step in a dispose scope). The figure is Trainer time ÷ bare time (1.00 = free).
/// </summary>
public sealed class TrainerOverheadWorkload() : Workload("trainer",
    "Trainer overhead: one epoch of MLP training via Trainer.Fit vs a bare loop, same BatchLoader: time ratio",
    [new("trainer_overhead", "x", false, Compare: false)])
{
    /// <inheritdoc/>
    public override bool HasPyTorch => false;

    /// <inheritdoc/>
    public override JsonObject Parameters(bool smoke) => new() { ["steps"] = smoke ? 5 : 300, ["batch"] = 64, ["reps"] = smoke ? 3 : 5 };

    /// <inheritdoc/>
    public override IReadOnlyList<Figure> Run(JsonObject p)
    {
        int steps = p.Int("steps"), batch = p.Int("batch"), reps = p.Int("reps");
        torch.manual_seed(0);
        using var data = new InMemoryDataset(randn(steps * batch, 784), randint(10, [steps * batch]));
        var loader = new BatchLoader(data, batch);

        double Bare()
        {
            torch.manual_seed(0);
            using var model = MlpTrainWorkload.Build([784, 256, 128, 10]);
            using var opt = optim.Adam(model.parameters(), lr: 1e-3);
            model.train();
            var sw = Stopwatch.StartNew();
            using (var e = loader.Batches(0).GetEnumerator())
            {
                for (; ; )
                {
                    using var scope = NewDisposeScope();
                    if (!e.MoveNext()) break;
                    model.zero_grad(); // set_to_none (Optimizer.zero_grad() in TorchSharp fills zeros instead)
                    var loss = F.cross_entropy(model.forward(e.Current.Input), e.Current.Target);
                    loss.backward();
                    opt.step();
                }
            }
            return sw.Elapsed.TotalSeconds;
        }

        double WithTrainer()
        {
            torch.manual_seed(0);
            using var model = MlpTrainWorkload.Build([784, 256, 128, 10]);
            using var opt = optim.Adam(model.parameters(), lr: 1e-3);
            var trainer = new Trainer(model, opt, (output, target) => F.cross_entropy(output, target)) { Epochs = 1 };
            var sw = Stopwatch.StartNew();
            trainer.Fit(loader);
            return sw.Elapsed.TotalSeconds;
        }

        Bare(); WithTrainer(); // warm-up
        var ratio = new double[reps];
        var bare = new double[reps];
        var fit = new double[reps];
        for (int r = 0; r < reps; r++)
        {
            GC.Collect();
            bare[r] = Bare();
            GC.Collect();
            fit[r] = WithTrainer();
            ratio[r] = fit[r] / bare[r];
        }
        var extra = new JsonObject
        {
            ["bare_s"] = Stats.Median(bare), ["trainer_s"] = Stats.Median(fit),
            ["overhead_us_per_step"] = (Stats.Median(fit) - Stats.Median(bare)) / steps * 1e6,
        };
        return [new Figure("trainer_overhead", ratio, extra)];
    }
}
