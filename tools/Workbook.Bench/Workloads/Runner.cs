using System.Diagnostics;
using Microsoft.DotNet.Interactive.Events;
using Workbook.Runner.Kernel;
using Workbook.Runtime;

namespace Workbook.Bench.Workloads;

/// <summary>
/// Workload 5b: what running on the notebook kernel costs. The same MLP training loop runs (a) as cells on a fresh
/// real .NET Interactive kernel, started and driven as the runner does (<see cref="KernelSession"/>), with the
/// notebooks' first cell (package restore, <c>Notebook.Setup</c>), and (b) as compiled code in this program. The
/// rows are the training cell's time over the compiled loop's (1.00 = no overhead) and the kernel's start-up
/// time; the JSON adds the first cell's time (restore and setup), which a reader pays once per kernel.
/// </summary>
public sealed class RunnerOverheadWorkload() : Workload("runner",
    "runner on the real kernel: MLP training cell vs the same code compiled (ratio), kernel start-up (s)",
        [new("runner_loop_overhead", "x", false, Compare: false), new("runner_kernel_start", "s", false, Compare: false)])
{
    /// <inheritdoc/>
    public override bool HasPyTorch => false;

    /// <inheritdoc/>
    public override JsonObject Parameters(bool smoke) => new() { ["steps"] = smoke ? 5 : 300, ["reps"] = 3, ["batch"] = 64 };

    /// <summary>The notebook's cells: the workbook's first cell, the model, the timed training loop (the statements of <see cref="TrainLoop.Steps"/>).</summary>
    static string[] Cells(int steps, int batch) =>
    [
        PinnedVersions.NotebookReferences + "\nusing TorchSharp;\nusing static TorchSharp.torch;\nusing Workbook;\nusing F = TorchSharp.torch.nn.functional;\nNotebook.Setup(seed: 0)",
        $"var model = nn.Sequential((\"fc1\", nn.Linear(784, 256)), (\"relu1\", nn.ReLU()), (\"fc2\", nn.Linear(256, 128)), (\"relu2\", nn.ReLU()), (\"fc3\", nn.Linear(128, 10)));\nvar opt = optim.Adam(model.parameters(), lr: 1e-3);\nvar x = randn({batch}, 784);\nvar y = randint(10, new long[] {{ {batch} }});",
        // Warm-up run of the loop, then the timed one: the kernel's figure is the cell's own Stopwatch, as in (b).
        $"void Steps(int n) {{ for (int s = 0; s < n; s++) {{ using var scope = NewDisposeScope(); model.zero_grad(); using var loss = F.cross_entropy(model.forward(x), y); loss.backward(); opt.step(); }} }}\nSteps({steps});\nvar sw = System.Diagnostics.Stopwatch.StartNew();\nSteps({steps});\nsw.Elapsed.TotalSeconds.ToString(\"R\", System.Globalization.CultureInfo.InvariantCulture)",
    ];

    /// <summary>The compiled loop's seconds, after a warm-up run, as in the notebook.</summary>
    static double Plain(int steps, int batch)
    {
        torch.manual_seed(0);
        using var model = MlpTrainWorkload.Build([784, 256, 128, 10]);
        using var opt = optim.Adam(model.parameters(), lr: 1e-3);
        using var x = randn(batch, 784);
        using var y = randint(10, [batch]);
        TrainLoop.Steps(model, opt, x, y, steps);
        var sw = Stopwatch.StartNew();
        TrainLoop.Steps(model, opt, x, y, steps);
        return sw.Elapsed.TotalSeconds;
    }

    /// <summary>One fresh kernel: (start-up s, first cell s, training loop s).</summary>
    static (double Start, double FirstCell, double Loop) Notebook(KernelTool tool, int steps, int batch)
    {
        // The notebooks' folder: its NuGet.config adds the local feed that holds the Workbook package.
        var dir = Path.Combine(tool.Root, "notebooks");
        var session = KernelSession.StartAsync(tool, dir).GetAwaiter().GetResult();
        try
        {
            string? last = null;
            double first = 0;
            var cells = Cells(steps, batch);
            for (int i = 0; i < cells.Length; i++)
            {
                var r = session.SubmitAsync(cells[i], "csharp", e =>
                {
                    if (e is ReturnValueProduced rv) last = rv.FormattedValues.FirstOrDefault(v => v.MimeType == "text/plain")?.Value;
                }, TimeSpan.FromMinutes(10)).GetAwaiter().GetResult();
                if (r.Outcome != SubmissionOutcome.Succeeded) throw new InvalidOperationException($"Runner benchmark cell {i + 1} failed: {r.Message}");
                if (i == 0) first = r.Elapsed.TotalSeconds;
            }
            return (session.StartupTime.TotalSeconds, first, double.Parse(last!, System.Globalization.CultureInfo.InvariantCulture));
        }
        finally
        {
            session.DisposeAsync().AsTask().GetAwaiter().GetResult();
        }
    }

    /// <inheritdoc/>
    public override IReadOnlyList<Figure> Run(JsonObject p)
    {
        int steps = p.Int("steps"), batch = p.Int("batch"), reps = p.Int("reps");
        var tool = KernelTool.Locate();
        tool.RestoreAsync().GetAwaiter().GetResult();
        var loopRatio = new double[reps];
        var start = new double[reps];
        var firstCell = new double[reps];
        for (int r = 0; r < reps; r++)
        {
            GC.Collect();
            var n = Notebook(tool, steps, batch);
            GC.Collect();
            var q = Plain(steps, batch);
            (start[r], firstCell[r], loopRatio[r]) = (n.Start, n.FirstCell, n.Loop / q);
        }
        var extra = new JsonObject
        {
            ["first_cell_s"] = Stats.Median(firstCell),
            ["kernel"] = $"{KernelTool.PackageId} {tool.Version}",
            ["note"] = "fresh stdio kernel per repetition; the training cell times itself after a warm-up run, like the compiled side",
        };
        return [new Figure("runner_loop_overhead", loopRatio, extra), new Figure("runner_kernel_start", start)];
    }
}
