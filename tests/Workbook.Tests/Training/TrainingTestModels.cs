using TorchSharp;
using TorchSharp.Modules;
using Workbook.Data;
using Workbook.Training;
using static TorchSharp.torch;

namespace Workbook.Tests.Training;

/// <summary>Tests that draw from torch's global RNG (dropout, init) or measure per-thread tensor counts run alone.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class TorchGlobalStateCollection
{
    public const string Name = "Training: torch global RNG";
}

/// <summary>fc2(tanh(fc1(x))), the golden optim_mlp model; names match the PyTorch state_dict.</summary>
sealed class TinyMlp : nn.Module<Tensor, Tensor>
{
    readonly Linear fc1, fc2;

    public TinyMlp(int inputs = 4, int hidden = 5, int outputs = 2) : base(nameof(TinyMlp))
    {
        fc1 = nn.Linear(inputs, hidden);
        fc2 = nn.Linear(hidden, outputs);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => fc2.call(torch.tanh(fc1.call(x)));
}

/// <summary>A small classifier with dropout, so resume tests exercise the RNG.</summary>
sealed class DropoutMlp : nn.Module<Tensor, Tensor>
{
    readonly Linear fc1, fc2;
    readonly Dropout drop;

    public DropoutMlp(int inputs, int hidden, int classes, double p = 0.3) : base(nameof(DropoutMlp))
    {
        fc1 = nn.Linear(inputs, hidden);
        drop = nn.Dropout(p);
        fc2 = nn.Linear(hidden, classes);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => fc2.call(drop.call(torch.nn.functional.relu(fc1.call(x))));
}

static class TrainingData
{
    /// <summary>A seeded, learnable classification problem: labels from a random linear map of Gaussian inputs.</summary>
    public static InMemoryDataset Classification(int n, int features, int classes, int seed)
    {
        using var g = new torch.Generator((ulong)seed);
        using var scope = torch.NewDisposeScope();
        var x = torch.randn(new long[] { n, features }, generator: g);
        var w = torch.randn(new long[] { features, classes }, generator: g);
        var y = x.matmul(w).argmax(1);
        return new InMemoryDataset(x, y);
    }

    public static byte[][] Bytes(nn.Module m) => m.parameters().Select(p => p.detach().cpu().bytes.ToArray()).ToArray();
}

static class NameClashProbe
{
    // Workbook names must stay usable next to `using TorchSharp.Modules;` (which notebooks use for layer types).
    public static string Format => Checkpoint.Format;
    public static Type[] Types => new[] { typeof(BatchLoader), typeof(InMemoryDataset), typeof(Trainer), typeof(Metric), typeof(Losses), typeof(LRSchedule) };
}
