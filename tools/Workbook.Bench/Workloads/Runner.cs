using System.Diagnostics;
using System.Text.Json.Nodes;
using TorchSharp;
using Workbook.Engine;
using static TorchSharp.torch;

namespace Workbook.Bench.Workloads;

/// <summary>
/// Workload 5b: the notebook runner's overhead. The same MLP training code runs (a) as cells of a notebook through the
/// runner's engine (<see cref="ScriptSession"/>: Roslyn scripting, state carried across cells, outputs formatted), in
/// this process, with a fresh session per repetition, and (b) as compiled code in this program. The figure is
/// notebook time ÷ plain time (1.00 = no overhead); the JSON splits it into cell compilation and the training cell.
/// The runner's extra child process per notebook (about one .NET start-up) is not included.
/// </summary>
public sealed class RunnerOverheadWorkload : IWorkload
{
    /// <inheritdoc/>
    public string Name => "runner";
    /// <inheritdoc/>
    public string Description => "runner overhead: MLP training as notebook cells (engine) vs the same code compiled, notebook/plain";
    /// <inheritdoc/>
    public IReadOnlyList<RowSpec> Rows { get; } = [new("runner_overhead", "x", false, Compare: false), new("runner_loop_overhead", "x", false, Compare: false)];
    /// <inheritdoc/>
    public bool HasPyTorch => false;

    /// <inheritdoc/>
    public JsonObject Parameters(bool smoke) => new() { ["steps"] = smoke ? 5 : 300, ["reps"] = 3, ["batch"] = 64 };

    sealed class NullSink : IOutputSink
    {
        public void Stream(string name, string text) { }
        public void Display(MimeBundle data, string displayId) { }
        public void UpdateDisplay(MimeBundle data, string displayId) { }
        public void Result(MimeBundle data) { }
    }

    /// <summary>The notebook's cells: references, setup, training (the same statements as <see cref="Plain"/>).</summary>
    static string[] Cells(int steps, int batch) =>
    [
        $"#r \"{typeof(torch).Assembly.Location}\"\n#r \"{typeof(RunnerOverheadWorkload).Assembly.Location}\"\nusing TorchSharp;\nusing static TorchSharp.torch;\nusing F = TorchSharp.torch.nn.functional;",
        $"torch.manual_seed(0);\nvar model = Workbook.Bench.Workloads.MlpTrainWorkload.Build(new long[] {{ 784, 256, 128, 10 }});\nvar opt = optim.Adam(model.parameters(), lr: 1e-3);\nvar x = randn({batch}, 784);\nvar y = randint(10, new long[] {{ {batch} }});",
        $"for (int s = 0; s < {steps}; s++)\n{{\n    using var scope = NewDisposeScope();\n    model.zero_grad();\n    var loss = F.cross_entropy(model.forward(x), y);\n    loss.backward();\n    opt.step();\n}}\n\"trained\"",
        "model.Dispose(); opt.Dispose(); x.Dispose(); y.Dispose();",
    ];

    /// <summary>The same code, compiled: returns (total seconds, training-loop seconds).</summary>
    static (double Total, double Loop) Plain(int steps, int batch)
    {
        var sw = Stopwatch.StartNew();
        torch.manual_seed(0);
        var model = MlpTrainWorkload.Build([784, 256, 128, 10]);
        var opt = optim.Adam(model.parameters(), lr: 1e-3);
        var x = randn(batch, 784);
        var y = randint(10, [batch]);
        var loop = Stopwatch.StartNew();
        TrainLoop.Steps(model, opt, x, y, steps);
        double loopS = loop.Elapsed.TotalSeconds;
        model.Dispose(); opt.Dispose(); x.Dispose(); y.Dispose();
        return (sw.Elapsed.TotalSeconds, loopS);
    }

    /// <summary>Runs the cells in a fresh session: (total seconds, training-cell seconds).</summary>
    static (double Total, double Loop) Notebook(int steps, int batch)
    {
        var session = new ScriptSession(Path.GetTempPath());
        var sink = new NullSink();
        double total = 0, loop = 0;
        var cells = Cells(steps, batch);
        for (int i = 0; i < cells.Length; i++)
        {
            var r = session.ExecuteAsync(cells[i], sink).GetAwaiter().GetResult();
            if (!r.Ok) throw new InvalidOperationException($"Runner benchmark cell {i + 1} failed: {r.Error}");
            total += r.Elapsed.TotalSeconds;
            if (i == 2) loop = r.Elapsed.TotalSeconds;
        }
        // The engine routes Console to the last cell's sink; give the bench its console back.
        Console.SetOut(ConsoleRouter.OriginalOut);
        Console.SetError(ConsoleRouter.OriginalError);
        return (total, loop);
    }

    /// <inheritdoc/>
    public IReadOnlyList<Figure> Run(JsonObject p)
    {
        int steps = p.Int("steps"), batch = p.Int("batch"), reps = p.Int("reps");
        Notebook(steps, batch); Plain(steps, batch); // warm-up: Roslyn and the JIT
        var ratio = new double[reps];
        var loopRatio = new double[reps];
        var nb = new double[reps];
        var plain = new double[reps];
        for (int r = 0; r < reps; r++)
        {
            GC.Collect();
            var n = Notebook(steps, batch);
            GC.Collect();
            var q = Plain(steps, batch);
            (nb[r], plain[r], ratio[r], loopRatio[r]) = (n.Total, q.Total, n.Total / q.Total, n.Loop / q.Loop);
        }
        var extra = new JsonObject
        {
            ["notebook_s"] = Stats.Median(nb), ["plain_s"] = Stats.Median(plain),
            ["overhead_ms"] = (Stats.Median(nb) - Stats.Median(plain)) * 1000,
            ["note"] = "in-process engine (ScriptSession), warm Roslyn; excludes the runner's child-process start",
        };
        return [new Figure("runner_overhead", ratio, extra), new Figure("runner_loop_overhead", loopRatio)];
    }
}
