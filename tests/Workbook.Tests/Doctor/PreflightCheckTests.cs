using System.Buffers.Binary;
using Workbook.Doctor.Checks;
using Workbook.Runtime;

namespace Workbook.Tests.Doctor;

/// <summary>Each doctor check's failure path, simulated in temporary folders, produces a failing row with its fix.</summary>
public sealed class PreflightCheckTests : IDisposable
{
    readonly string _dir = Path.Combine(Path.GetTempPath(), "wb-doctor-" + Guid.NewGuid().ToString("N")[..8]);

    public PreflightCheckTests() => Directory.CreateDirectory(_dir);
    public void Dispose() => Directory.Delete(_dir, recursive: true);

    string MakeDataDir()
    {
        var data = Path.Combine(_dir, "data");
        Directory.CreateDirectory(Path.Combine(data, "tabular"));
        File.WriteAllText(Path.Combine(data, "tabular", "a.csv"), "x,y\n1,2\n");
        File.WriteAllText(Path.Combine(data, "b.txt"), "abc");
        Assert.Equal(2, DataManifest.Write(data));
        return data;
    }

    static CheckResult Single(PreflightCheck check, CheckStatus status)
    {
        var rows = check.Run();
        var row = Assert.Single(rows, r => r.Status == status);
        return row;
    }

    [Fact]
    public void Manifest_uses_sha256sum_format_with_known_digest()
    {
        var data = MakeDataDir();
        var lines = File.ReadAllLines(Path.Combine(data, DataManifest.FileName));
        // sha256("abc") from FIPS 180-2, appendix B.1.
        Assert.Equal("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad  b.txt", lines[0]);
        Assert.Equal(new[] { "b.txt", "tabular/a.csv" }, DataManifest.Read(Path.Combine(data, DataManifest.FileName)).Select(e => e.Path));
        var ok = Single(new DataFilesCheck(data), CheckStatus.Pass);
        Assert.Contains("2 file(s)", ok.Detail);
    }

    [Fact]
    public void Missing_data_file_fails_with_restore_fix()
    {
        var data = MakeDataDir();
        File.Delete(Path.Combine(data, "tabular", "a.csv"));
        var row = Single(new DataFilesCheck(data), CheckStatus.Fail);
        Assert.Contains("1 of 2 file(s) missing: tabular/a.csv", row.Detail);
        Assert.Contains("git checkout -- data/tabular/a.csv", row.Fix);
    }

    [Fact]
    public void Wrong_checksum_fails_with_both_fixes()
    {
        var data = MakeDataDir();
        File.WriteAllText(Path.Combine(data, "b.txt"), "abd");
        var row = Single(new DataFilesCheck(data), CheckStatus.Fail);
        Assert.Contains("wrong checksum: b.txt (expected ba7816bf8f01", row.Detail);
        Assert.Contains("git checkout -- data/<file>", row.Fix);
        Assert.Contains("--write-manifest", row.Fix);
    }

    [Fact]
    public void Lfs_pointer_and_unlisted_file_are_reported()
    {
        var data = MakeDataDir();
        File.WriteAllText(Path.Combine(data, "b.txt"), "version https://git-lfs.github.com/spec/v1\noid sha256:00\nsize 3\n");
        File.WriteAllText(Path.Combine(data, "new.bin"), "new");
        var rows = new DataFilesCheck(data).Run();
        Assert.Contains(rows, r => r.Status == CheckStatus.Fail && r.Detail.Contains("Git LFS pointers") && r.Fix!.Contains("git lfs pull"));
        Assert.Contains(rows, r => r.Status == CheckStatus.Warn && r.Detail.Contains("not in the manifest: new.bin"));
    }

    [Fact]
    public void Missing_manifest_and_malformed_line_fail()
    {
        var data = MakeDataDir();
        var manifest = Path.Combine(data, DataManifest.FileName);
        File.Delete(manifest);
        Assert.Contains("--write-manifest", Single(new DataFilesCheck(data), CheckStatus.Fail).Fix);
        File.WriteAllText(manifest, "deadbeef  b.txt\n");
        var row = Single(new DataFilesCheck(data), CheckStatus.Fail);
        Assert.Contains("line 1 is not '<64 hex digits>  <path>'", row.Detail);
    }

    [Fact]
    public void Native_check_fails_for_a_file_that_is_not_elf()
    {
        var fake = Path.Combine(_dir, "libLibTorchSharp.so");
        File.WriteAllText(fake, "<html>404 Not Found</html>"); // what a broken download leaves behind
        var row = Single(new NativeLibraryCheck(fake, probeLoad: true), CheckStatus.Fail);
        Assert.Contains("not a loadable library", row.Detail);
        Assert.Contains("bad magic", row.Detail);
        Assert.Equal(NativeLibraryCheck.ReinstallFix(fake), row.Fix);
        Assert.Contains("~/.nuget/packages/libtorch-cpu-linux-x64", row.Fix);
    }

    [Fact]
    public void Native_check_fails_for_missing_file()
    {
        var row = Single(new NativeLibraryCheck(Path.Combine(_dir, "nope.so")), CheckStatus.Fail);
        Assert.Contains("does not exist", row.Detail);
        Assert.Contains("restore again", row.Fix);
    }

    static string SystemLibrary() =>
        LibStdCxxFix.FindSystemLibStdCxx() ?? throw new InvalidOperationException("test needs a system libstdc++.so.6");

    [Fact]
    public void Native_check_passes_for_a_real_library_and_fails_for_a_corrupted_section_header()
    {
        var real = SystemLibrary();
        Assert.Contains("valid ELF", Single(new NativeLibraryCheck(real), CheckStatus.Pass).Detail);

        var copy = Path.Combine(_dir, "libcorrupt.so");
        var bytes = File.ReadAllBytes(real);
        BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan(0x28), (ulong)bytes.Length * 2); // e_shoff past the end
        File.WriteAllBytes(copy, bytes);
        var row = Single(new NativeLibraryCheck(copy, probeLoad: true), CheckStatus.Fail);
        Assert.Contains("no readable section header table", row.Detail);
        Assert.Equal(NativeLibraryCheck.ReinstallFix(copy), row.Fix);
    }

    [Fact]
    public void Native_check_reports_the_loaders_error_for_a_corrupted_program_header()
    {
        var copy = Path.Combine(_dir, "libbadphdr.so");
        var bytes = File.ReadAllBytes(SystemLibrary());
        BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan(0x20), 0xFFFF_FFF0UL); // e_phoff: sections intact, segments unreadable
        File.WriteAllBytes(copy, bytes);
        Assert.Equal(CheckStatus.Pass, new NativeLibraryCheck(copy, probeLoad: false).Run().Single().Status); // the ELF reader alone is satisfied
        var row = Single(new NativeLibraryCheck(copy, probeLoad: true), CheckStatus.Fail);
        Assert.Contains("the loader refused", row.Detail);
        Assert.Contains("libbadphdr.so", row.Detail);
        Assert.Contains("restore again", row.Fix);
    }

    [Fact]
    public void Torch_check_turns_a_load_failure_into_its_fix()
    {
        var check = new TorchSharpCheck(() => throw new TorchNativeLoadException(
            "TorchSharp's native library did not load: libLibTorchSharp.so: cannot open shared object file\nWhat to do: reference TorchSharp-cpu."));
        var row = Single(check, CheckStatus.Fail);
        Assert.Equal("did not load: TorchSharp's native library did not load: libLibTorchSharp.so: cannot open shared object file", row.Detail);
        Assert.Equal("What to do: reference TorchSharp-cpu.", row.Fix);
        Assert.Null(check.Report);
    }

    [Fact]
    public void Torch_check_reports_patched_and_decision_and_a_failing_computation()
    {
        var report = new NativeLoadReport(true, "weaken GLIBCXX_3.4.32", "/o/libLibTorchSharp.so", "/c/libLibTorchSharp.so", "/usr/lib/libstdc++.so.6");
        var ok = Single(new TorchSharpCheck(() => report, () => "sum = 4"), CheckStatus.Pass);
        Assert.Equal("sum = 4; Patched=True; Decision: weaken GLIBCXX_3.4.32; loaded /c/libLibTorchSharp.so", ok.Detail);
        var bad = Single(new TorchSharpCheck(() => report, () => throw new InvalidOperationException("illegal instruction")), CheckStatus.Fail);
        Assert.Contains("a computation failed: illegal instruction", bad.Detail);
        // The real runtime (already loaded by TestSetup) passes.
        Assert.Contains("ones(2,2).sum() = 4", Single(new TorchSharpCheck(), CheckStatus.Pass).Detail);
    }

    [Fact]
    public void Sdk_check_requires_version_10()
    {
        var old = Single(new DotnetSdkCheck(10, () => new ProcessOutput(0, "8.0.404 [/usr/share/dotnet/sdk]\n9.0.100 [/usr/share/dotnet/sdk]\n")), CheckStatus.Fail);
        Assert.Equal("SDKs 8.0.404, 9.0.100: none is 10.0 or later", old.Detail);
        Assert.Contains(".NET 10 SDK", old.Fix);
        Assert.Contains("no SDK installed", Single(new DotnetSdkCheck(10, () => new ProcessOutput(0, "")), CheckStatus.Fail).Detail);
        Assert.StartsWith("SDK 10.0.401", Single(new DotnetSdkCheck(10, () => new ProcessOutput(0, "10.0.401 [/usr/lib/dotnet/sdk]\n")), CheckStatus.Pass).Detail);
    }

    [Fact]
    public void Cuda_requested_but_unavailable_fails_and_gpu_without_cuda_package_warns()
    {
        var smi = () => new ProcessOutput(0, "NVIDIA H100 80GB HBM3, 550.54.15, 81559 MiB\n");
        var fail = Single(new ComputeDeviceCheck(() => (false, 0), "TorchSharp-cpu", smi, "cuda"), CheckStatus.Fail);
        Assert.Contains("WORKBOOK_DEVICE=cuda", fail.Detail);
        Assert.Contains("TorchSharp-cuda-linux", fail.Fix);
        var warn = Single(new ComputeDeviceCheck(() => (false, 0), "TorchSharp-cpu", smi), CheckStatus.Warn);
        Assert.Contains("NVIDIA H100 80GB HBM3, 550.54.15", warn.Detail);
        var gpu = new ComputeDeviceCheck(() => (true, 1), "TorchSharp-cuda", smi).Run();
        Assert.Contains(gpu, r => r.Status == CheckStatus.Pass && r.Detail.StartsWith("CUDA available: 1 device(s); NVIDIA H100"));
    }

    [Fact]
    public void Disk_check_fails_below_threshold()
    {
        var row = Single(new DiskSpaceCheck(new[] { _dir }, failBelowBytes: long.MaxValue), CheckStatus.Fail);
        Assert.Contains("GiB free for", row.Detail);
        Assert.Contains("Free at least", row.Fix);
    }

    [Fact]
    public void Restore_check_fails_without_the_library_package_and_names_a_missing_package()
    {
        var packages = Path.Combine(_dir, "packages");
        Directory.CreateDirectory(packages);
        var row = Single(new PackageRestoreCheck(packages, offline: true), CheckStatus.Fail);
        Assert.Contains("Workbook.0.1.0.nupkg' is missing", row.Detail);
        Assert.Contains("dotnet build lib/Workbook -c Release", row.Fix);

        // A real offline restore of a package that is in no local source: the NuGet error is reported.
        var missing = Single(new PackageRestoreCheck(packages, offline: true, new[] { ("Workbook.NoSuchPackage", "9.9.9") }, Path.Combine(_dir, "restore")), CheckStatus.Fail);
        Assert.Contains("NU1101", missing.Detail);
        Assert.Contains("Workbook.NoSuchPackage", missing.Detail);
        Assert.Contains("local cache", missing.Fix);
    }

    [Fact]
    public void Cost_factors_scale_with_calibration_score()
    {
        var report = """
            {"profile":"Quick","notebooks":[{"relative":"08-your-own-data.ipynb","ok":true,"seconds":40.0},
                                             {"relative":"broken.ipynb","ok":false,"seconds":3.0}]}
            """;
        var costs = new List<NotebookCost>();
        Assert.Equal(1, NotebookCosts.Record(costs, report, score: 10, "test"));
        Assert.Equal(400, costs.Single().QuickUnits);
        Assert.Null(costs.Single().FullUnits);
        var path = Path.Combine(_dir, "costs.json");
        NotebookCosts.Write(path, costs);
        var back = NotebookCosts.Read(path).Single();
        Assert.Equal(20, CalibrationCheck.EstimateSeconds(back.QuickUnits!.Value, score: 20)); // a machine twice as fast: half the time
        Assert.Equal("3.0 min", CalibrationCheck.Format(180));
    }

    [Fact]
    public void Cost_check_compares_estimates_with_a_report()
    {
        var costs = new List<NotebookCost> { new("a.ipynb", QuickUnits: 300, FullUnits: 900), new("b.ipynb", QuickUnits: 100, FullUnits: null) };
        var report = """
            {"profile":"Full","notebooks":[{"relative":"a.ipynb","ok":true,"seconds":100.0},{"relative":"b.ipynb","ok":true,"seconds":10.0},
                                            {"relative":"c.ipynb","ok":false,"seconds":1.0}]}
            """;
        var checks = NotebookCosts.Compare(costs, report, score: 10);
        Assert.Equal(["a.ipynb", "b.ipynb"], checks.Select(c => c.Notebook));
        Assert.Equal(90, checks[0].EstimateSeconds);
        Assert.Equal(-0.1, checks[0].Error!.Value, 9);
        Assert.True(checks[0].Within(0.5));
        Assert.Null(checks[1].EstimateSeconds); // no Full factor: not within any tolerance
        Assert.False(checks[1].Within(0.5));
    }

    [Fact]
    public void A_missing_Full_factor_counts_only_with_its_reason()
    {
        var dir = Path.Combine(Path.GetTempPath(), "wb-costs-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Path.Combine(dir, "solutions"));
        foreach (var f in new[] { "a.ipynb", "b.ipynb", "solutions/c.ipynb" }) File.WriteAllText(Path.Combine(dir, f), "{}");
        var costs = new List<NotebookCost>
        {
            new("a.ipynb", 10, 20),
            new("b.ipynb", 10, null, FullMissing: "the Full run timed out under load"),
            new("c.ipynb", 10, null),
        };
        Assert.Equal(new[] { "solutions/c.ipynb" }, NotebookCosts.Missing(costs, dir));
        var path = Path.Combine(dir, "costs.json");
        NotebookCosts.Write(path, costs);
        var back = NotebookCosts.Read(path);
        Assert.Equal("the Full run timed out under load", back.Single(c => c.Notebook == "b.ipynb").FullMissing);
        // Recording a Full run clears the reason.
        NotebookCosts.Record(back, """{"profile": "Full", "notebooks": [{"relative": "b.ipynb", "ok": true, "seconds": 2}]}""", 5, "test");
        Assert.Equal((10.0, (string?)null), (back.Single(c => c.Notebook == "b.ipynb").FullUnits!.Value, back.Single(c => c.Notebook == "b.ipynb").FullMissing));
        Directory.Delete(dir, recursive: true);
    }

    [Fact]
    public void Every_notebook_has_quick_and_full_cost_factors()
    {
        // The doctor's estimates (tools/Workbook.Doctor/notebook-costs.json) must cover every chapter and solution. After
        // adding or changing a notebook, run it in both profiles and record the reports:
        //   dotnet run --project tools/Workbook.Runner -c Release -- notebooks --out out/quick --profile Quick
        //   dotnet run --project tools/Workbook.Doctor -c Release -- --record-costs out/quick/report.json   (and the same for Full)
        var costs = NotebookCosts.Read(Path.Combine(TestSetup.RepoRoot, "tools", "Workbook.Doctor", "notebook-costs.json"));
        var missing = NotebookCosts.Missing(costs, Path.Combine(TestSetup.RepoRoot, "notebooks"));
        Assert.True(missing.Count == 0, $"No Quick or Full cost factor for: {string.Join(", ", missing)}. Record them with doctor --record-costs (see the comment in this test).");
        Assert.All(costs, c => Assert.True(c.QuickUnits > 0 && (c.FullUnits > 0 || (c.FullUnits is null && !string.IsNullOrWhiteSpace(c.FullMissing))),
            $"{c.Notebook}: factors must be positive, and a missing Full factor needs its reason"));
    }

    [Fact]
    public void Repository_data_matches_its_manifest()
    {
        // Guards data/checksums.sha256: a changed or deleted data file fails here (new unlisted files only warn).
        var rows = new DataFilesCheck(Path.Combine(TestSetup.RepoRoot, "data")).Run();
        Assert.DoesNotContain(rows, r => r.Status == CheckStatus.Fail);
        Assert.Contains(rows, r => r.Status == CheckStatus.Pass && r.Detail.Contains("all checksums match"));
    }

    [Fact]
    public void Calibration_measures_positive_rates()
    {
        int threads = TorchSharp.torch.get_num_threads();
        var r = Calibration.Measure(TimeSpan.FromMilliseconds(300));
        Assert.True(r.MatmulPerSecond > 0 && r.ConvPerSecond > 0 && r.MlpStepsPerSecond > 0, r.ToString());
        Assert.Equal(threads, TorchSharp.torch.get_num_threads()); // measured on one thread, the count restored
        Assert.Equal(Math.Cbrt(r.MatmulPerSecond * r.ConvPerSecond * r.MlpStepsPerSecond), r.Score, 9);
    }
}
