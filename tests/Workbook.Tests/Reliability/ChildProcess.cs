using System.Diagnostics;
using System.Text;
using TorchSharp;
using Workbook.Tests.Training;
using Workbook.Training;
using static TorchSharp.torch;

namespace Workbook.Tests.Reliability;

/// <summary>
/// The test assembly's entry point, for tests that need a second process: one that may die (a corrupt RNG state
/// used to abort the process from inside libtorch), or one to kill with SIGKILL in the middle of a save or a
/// training run. <c>dotnet Workbook.Tests.dll MODE ARGS</c>; the test runner itself never calls it.
/// </summary>
public static class ChildProcess
{
    public static int Main(string[] args)
    {
        if (args.Length == 0) { Console.Error.WriteLine("usage: Workbook.Tests.dll rng-load FILE... | save-loop PATH | train PATH DELAY_MS"); return 2; }
        switch (args[0])
        {
            case "rng-load": return RngLoad(args[1..]);
            case "save-loop": return SaveLoop(args[1]);
            case "train": return Train(args[1], int.Parse(args[2]));
            default: Console.Error.WriteLine($"unknown mode '{args[0]}'"); return 2;
        }
    }

    /// <summary>Loads each trainer checkpoint into a fresh trainer; prints the outcome and whether the RNG changed.</summary>
    static int RngLoad(string[] files)
    {
        foreach (var file in files)
        {
            Console.WriteLine("CASE " + Path.GetFileName(file));
            Console.Out.Flush();
            var trainer = ReliabilityModels.Fresh();
            var before = Hostile.Snapshot(trainer.Model, trainer.Optimizer);
            try
            {
                trainer.LoadCheckpoint(file);
                Console.WriteLine("RESULT OK");
            }
            catch (Exception e)
            {
                Console.WriteLine($"RESULT {e.GetType().FullName} {Convert.ToBase64String(Encoding.UTF8.GetBytes(e.Message))}");
                var after = Hostile.Snapshot(trainer.Model, trainer.Optimizer);
                bool same = before.Count == after.Count && before.Zip(after).All(p => p.First.AsSpan().SequenceEqual(p.Second));
                Console.WriteLine(same ? "STATE unchanged" : "STATE changed");
            }
            Console.Out.Flush();
        }
        Console.WriteLine("DONE");
        return 0;
    }

    /// <summary>Saves checkpoints of a 4 MB model forever: save k holds every weight = k and step = k, so a file is either one save or another.</summary>
    static int SaveLoop(string path)
    {
        var model = new TinyMlp(1024, 1024, 2);
        var optimizer = Optimizers.Sgd(model.parameters(), lr: 0.1);
        for (long k = 1; ; k++)
        {
            using (torch.no_grad())
                foreach (var p in model.parameters()) p.fill_(k);
            Checkpoint.Save(path, model, optimizer, epoch: (int)k, step: k);
            Console.WriteLine("saved " + k);
            Console.Out.Flush();
        }
    }

    /// <summary>The reliability trainer's run of 4 epochs with a checkpoint after each; slowed down so a kill lands mid-epoch.</summary>
    static int Train(string path, int delayMs)
    {
        var (train, val, data) = ReliabilityModels.Data();
        using var _ = data;
        torch.manual_seed(11);
        var model = new DropoutMlp(10, 32, 4);
        var trainer = ReliabilityModels.Trainer(model, 4, train.BatchCount);
        trainer.CheckpointPath = path;
        trainer.ProgressInterval = TimeSpan.Zero;
        trainer.OnProgress = p =>
        {
            if (p.Phase == TrainingPhase.EpochEnd) { Console.WriteLine("epoch-end " + p.Epoch); Console.Out.Flush(); }
            else if (p.Phase == TrainingPhase.Train) Thread.Sleep(delayMs);
        };
        trainer.Fit(train, val);
        Console.WriteLine("finished");
        return 0;
    }

    /// <summary>Starts <c>dotnet Workbook.Tests.dll ARGS</c> with stdout redirected.</summary>
    internal static Process Start(params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(typeof(ChildProcess).Assembly.Location);
        foreach (var a in args) psi.ArgumentList.Add(a);
        return Process.Start(psi)!;
    }
}
