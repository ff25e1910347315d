using Spectre.Console;
using Workbook.Doctor.Checks;
using Workbook.Runtime;

// Workbook doctor: one command that tells an attendee, before the session, whether every notebook will run here.
return Doctor.Run(args);

static class Doctor
{
    const string Usage = """
        Usage: dotnet run --project tools/Workbook.Doctor -c Release -- [options]
          Checks this machine for the Workbook notebooks and prints check / status / fix.
        Options:
          --repo DIR                repository root (default: found from the current directory)
          --skip-restore            skip the restores: the kernel tool and the two package-restore checks
          --calibration-seconds S   length of the calibration (default 10; 0 skips it)
          --write-manifest          regenerate data/checksums.sha256 from the files in data/ and exit
          --record-costs REPORT     calibrate, then store the notebooks' run times from a runner report.json
                                    as cost factors in tools/Workbook.Doctor/notebook-costs.json and exit
          --check-costs REPORT      calibrate, then compare each notebook's estimate with its time in a runner
                                    report.json; exit 1 when one is off by more than 50 % or has no factor
        Exit code: 0 when nothing would stop a notebook (warnings allowed), 1 when a check failed, 2 for bad arguments.
        """;

    public static int Run(string[] args)
    {
        string? repo = null, recordCosts = null, checkCosts = null;
        bool skipRestore = false, writeManifest = false;
        double calibration = 10;
        try
        {
            for (int i = 0; i < args.Length; i++)
            {
                switch (args[i])
                {
                    case "-h" or "--help": Console.WriteLine(Usage); return 0;
                    case "--repo": repo = Next(args, ref i); break;
                    case "--skip-restore": skipRestore = true; break;
                    case "--calibration-seconds": calibration = double.Parse(Next(args, ref i), System.Globalization.CultureInfo.InvariantCulture); break;
                    case "--write-manifest": writeManifest = true; break;
                    case "--record-costs": recordCosts = Next(args, ref i); break;
                    case "--check-costs": checkCosts = Next(args, ref i); break;
                    default: throw new ArgumentException($"Unknown option '{args[i]}'.");
                }
            }
        }
        catch (Exception e) when (e is ArgumentException or FormatException)
        {
            Console.Error.WriteLine($"{e.Message}\n{Usage}");
            return 2;
        }
        repo ??= FindRepo();
        if (repo is null)
        {
            Console.Error.WriteLine($"No Workbook repository (a folder with Workbook.sln) above '{Directory.GetCurrentDirectory()}': run from inside the repository or pass --repo.");
            return 2;
        }
        var data = Path.Combine(repo, "data");
        var costsPath = Path.Combine(repo, "tools", "Workbook.Doctor", "notebook-costs.json");

        if (writeManifest)
        {
            int n = DataManifest.Write(data);
            Console.WriteLine($"Wrote {Path.Combine(data, DataManifest.FileName)}: {n} files.");
            return 0;
        }
        if (recordCosts is not null) return RecordCosts(recordCosts, costsPath, calibration);
        if (checkCosts is not null) return CheckCosts(checkCosts, costsPath, calibration);

        if (Console.IsOutputRedirected) AnsiConsole.Profile.Width = 160; // CI logs: a wide table instead of 80 columns
        AnsiConsole.MarkupLine($"[bold]Workbook doctor[/] - {Markup.Escape(repo)}");
        var results = new List<CheckResult>();
        void Run(PreflightCheck check)
        {
            IReadOnlyList<CheckResult> rows = Array.Empty<CheckResult>();
            AnsiConsole.Status().Start($"checking {check.Name}...", _ => rows = check.Run());
            results.AddRange(rows);
        }

        Run(new DotnetSdkCheck());
        if (!skipRestore)
        {
            Run(new KernelToolCheck(repo));
            var packages = Path.Combine(repo, "artifacts", "packages");
            Run(new PackageRestoreCheck(packages, offline: false));
            Run(new PackageRestoreCheck(packages, offline: true));
        }
        var torchCheck = new TorchSharpCheck();
        Run(torchCheck);
        var report = torchCheck.Report ?? TorchRuntime.Report;
        if (report?.Original is { } original)
            Run(new NativeLibraryCheck(original, probeLoad: false, name: "libLibTorchSharp.so"));
        Run(new ComputeDeviceCheck(report is null ? null : () => (TorchSharp.torch.cuda.is_available(), TorchSharp.torch.cuda.device_count()),
            report?.Original is { } o ? NativeFlavour(o) : null, requestedDevice: Environment.GetEnvironmentVariable("WORKBOOK_DEVICE")));
        Run(new DataFilesCheck(data));
        Run(new DiskSpaceCheck(new[] { repo, PackageRestoreCheck.GlobalPackagesFolder() }));
        if (calibration > 0 && report is not null)
            Run(new CalibrationCheck(costsPath, Path.Combine(repo, "notebooks"), TimeSpan.FromSeconds(calibration)));

        var table = new Table().Border(TableBorder.Rounded).Expand();
        table.AddColumn("check");
        table.AddColumn("status");
        table.AddColumn("detail");
        table.AddColumn("fix");
        foreach (var r in results)
        {
            var status = r.Status switch { CheckStatus.Pass => "[green]ok[/]", CheckStatus.Warn => "[yellow]warn[/]", _ => "[red]FAIL[/]" };
            table.AddRow(Markup.Escape(r.Check), status, Markup.Escape(r.Detail), Markup.Escape(r.Fix ?? ""));
        }
        AnsiConsole.Write(table);
        // The problems again as plain lines: nothing wrapped, commands copy-paste cleanly (and CI logs stay greppable).
        foreach (var r in results.Where(r => r.Status != CheckStatus.Pass))
        {
            Console.WriteLine($"{(r.Status == CheckStatus.Fail ? "FAIL" : "warn")} {r.Check}: {r.Detail}");
            if (r.Fix is not null) Console.WriteLine($"     fix: {r.Fix}");
        }
        int failed = results.Count(r => r.Status == CheckStatus.Fail);
        int warned = results.Count(r => r.Status == CheckStatus.Warn);
        AnsiConsole.MarkupLine(failed > 0
            ? $"[red]{failed} check(s) failed[/]: fix them before the session (see the fix column)."
            : $"[green]Ready[/]: every notebook can run here{(warned > 0 ? $" ({warned} warning(s))" : "")}.");
        return failed > 0 ? 1 : 0;
    }

    static int RecordCosts(string reportPath, string costsPath, double seconds)
    {
        if (!File.Exists(reportPath)) { Console.Error.WriteLine($"Runner report '{reportPath}' not found (the runner writes it as OUT/report.json)."); return 2; }
        TorchRuntime.EnsureLoaded();
        var cal = Calibration.Measure(TimeSpan.FromSeconds(seconds > 0 ? seconds : 10));
        var costs = NotebookCosts.Read(costsPath);
        var source = $"{Path.GetFileName(Path.GetDirectoryName(Path.GetFullPath(reportPath)))}/{Path.GetFileName(reportPath)} on {Environment.MachineName}: {Environment.ProcessorCount} cores, one-thread calibration score {cal.Score:F1}, {DateTime.UtcNow:yyyy-MM-dd}";
        int n = NotebookCosts.Record(costs, File.ReadAllText(reportPath), cal.Score, source);
        NotebookCosts.Write(costsPath, costs);
        Console.WriteLine($"Calibration score {cal.Score:F1}; recorded {n} notebook(s) into {costsPath}.");
        return 0;
    }

    static int CheckCosts(string reportPath, string costsPath, double seconds)
    {
        if (!File.Exists(reportPath)) { Console.Error.WriteLine($"Runner report '{reportPath}' not found (the runner writes it as OUT/report.json)."); return 2; }
        TorchRuntime.EnsureLoaded();
        var cal = Calibration.Measure(TimeSpan.FromSeconds(seconds > 0 ? seconds : 10));
        var checks = NotebookCosts.Compare(NotebookCosts.Read(costsPath), File.ReadAllText(reportPath), cal.Score);
        Console.WriteLine($"Calibration score {cal.Score:F1}; estimates against {reportPath}:");
        foreach (var c in checks)
            Console.WriteLine($"  {c.Notebook,-48} measured {CalibrationCheck.Format(c.MeasuredSeconds),9}  estimate {(c.EstimateSeconds is { } e ? CalibrationCheck.Format(e) : "none"),9}  {(c.Error is { } err ? $"{err:+0%;-0%}" : "no factor")}{(c.Within(0.5) ? "" : "  OUTSIDE ±50 %")}");
        double measured = checks.Sum(c => c.MeasuredSeconds), estimated = checks.Sum(c => c.EstimateSeconds ?? 0);
        Console.WriteLine($"  total: measured {CalibrationCheck.Format(measured)}, estimated {CalibrationCheck.Format(estimated)}");
        int bad = checks.Count(c => !c.Within(0.5));
        Console.WriteLine(bad == 0 ? "Every estimate is within ±50 %." : $"{bad} of {checks.Count} estimates are off by more than 50 % or missing.");
        return bad == 0 ? 0 : 1;
    }

    // The CUDA build ships libtorch_cuda beside libLibTorchSharp; the CPU build does not.
    static string NativeFlavour(string nativePath)
    {
        var dir = Path.GetDirectoryName(nativePath) ?? ".";
        bool cuda = Directory.Exists(dir) && Directory.EnumerateFiles(dir, "*torch_cuda*").Any();
        var ts = typeof(TorchSharp.torch).Assembly.GetName().Version?.ToString(3);
        return cuda ? $"TorchSharp-cuda {ts} (libtorch_cuda present)" : $"TorchSharp-cpu {ts} (no libtorch_cuda)";
    }

    static string Next(string[] args, ref int i) => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"Option {args[i]} needs a value.");

    static string? FindRepo()
    {
        for (var d = new DirectoryInfo(Directory.GetCurrentDirectory()); d is not null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "Workbook.sln"))) return d.FullName;
        return null;
    }
}
