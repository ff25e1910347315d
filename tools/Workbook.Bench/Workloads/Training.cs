using TorchSharp.Modules;
using static TorchSharp.torch.nn;
using F = TorchSharp.torch.nn.functional;

namespace Workbook.Bench.Workloads;

/// <summary>
/// Shared training step for the throughput workloads: zero the gradients, forward, cross-entropy, backward, Adam step,
/// all inside one dispose scope so that no step leaves tensors behind.
/// </summary>
static class TrainLoop
{
    /// <summary>Trains <paramref name="model"/> on one fixed batch for <paramref name="steps"/> steps.</summary>
    public static void Steps(Module<Tensor, Tensor> model, optim.Optimizer opt, Tensor x, Tensor y, int steps)
    {
        for (int s = 0; s < steps; s++)
        {
            using var scope = NewDisposeScope();
            model.zero_grad(); // set_to_none (Optimizer.zero_grad() in TorchSharp fills zeros instead)
            using var loss = F.cross_entropy(model.forward(x), y);
            loss.backward();
            opt.step();
        }
    }

    /// <summary>Samples per second of <paramref name="steps"/> training steps on a batch of <paramref name="batch"/>, per repetition.</summary>
    public static double[] SamplesPerSecond(Module<Tensor, Tensor> model, Tensor x, Tensor y, int batch, int steps, int reps)
    {
        model.train();
        using var opt = optim.Adam(model.parameters(), lr: 1e-3);
        // Two warm-up repetitions: the first ones after building a model still climb (allocator, runtime), on both sides.
        var seconds = Stats.TimeReps(reps, warmup: 2, () => Steps(model, opt, x, y, steps));
        return seconds.Select(t => batch * (double)steps / t).ToArray();
    }
}

/// <summary>Workload 3a: MLP 784-256-128-10 (ReLU) training with Adam, batch 64, samples/s.</summary>
public sealed class MlpTrainWorkload() : Workload("mlp",
    "MLP 784-256-128-10 training (Adam, batch 64): samples/s",
    [new("mlp_train", "samples/s", true)])
{

    /// <inheritdoc/>
    public override JsonObject Parameters(bool smoke) => new()
    {
        ["batch"] = 64, ["sizes"] = new JsonArray(784, 256, 128, 10),
        ["steps"] = smoke ? 5 : 300, ["reps"] = smoke ? 3 : 5,
    };

    /// <summary>The MLP: Linear-ReLU pairs, no activation after the last layer (the loss takes logits).</summary>
    public static Sequential Build(long[] sizes)
    {
        var layers = new List<(string, Module<Tensor, Tensor>)>();
        for (int i = 0; i + 1 < sizes.Length; i++)
        {
            layers.Add(($"fc{i + 1}", Linear(sizes[i], sizes[i + 1])));
            if (i + 2 < sizes.Length) layers.Add(($"relu{i + 1}", ReLU()));
        }
        return Sequential(layers);
    }

    /// <inheritdoc/>
    public override IReadOnlyList<Figure> Run(JsonObject p)
    {
        var sizes = p.Longs("sizes");
        int batch = p.Int("batch");
        torch.manual_seed(0);
        using var model = Build(sizes);
        using var x = randn(batch, sizes[0]);
        using var y = randint(sizes[^1], [batch]);
        return [new Figure("mlp_train", TrainLoop.SamplesPerSecond(model, x, y, batch, p.Int("steps"), p.Int("reps")))];
    }
}

/// <summary>Workload 3b: notebook 06's SimpleCNN (conv 1→8→16) training with Adam, batch 64 of 28×28 images, samples/s.</summary>
public sealed class CnnTrainWorkload() : Workload("cnn",
    "SimpleCNN conv 1->8->16 training (Adam, batch 64, 28x28): samples/s",
    [new("cnn_train", "samples/s", true)])
{

    /// <inheritdoc/>
    public override JsonObject Parameters(bool smoke) => new() { ["batch"] = 64, ["steps"] = smoke ? 3 : 200, ["reps"] = smoke ? 3 : 5 };

    /// <summary>The network measured: the library's notebook-06 CNN.</summary>
    public static string ModelSource => "Workbook.Vision.SimpleCNN (conv 1->8->16, fc 784->10)";

    /// <inheritdoc/>
    public override IReadOnlyList<Figure> Run(JsonObject p)
    {
        int batch = p.Int("batch");
        torch.manual_seed(0);
        using var model = new Workbook.Vision.SimpleCNN();
        using var x = rand(batch, 1, 28, 28);
        using var y = randint(10, [batch]);
        var figs = TrainLoop.SamplesPerSecond(model, x, y, batch, p.Int("steps"), p.Int("reps"));
        return [new Figure("cnn_train", figs, new JsonObject { ["model"] = ModelSource })];
    }
}
