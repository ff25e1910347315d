using System.Diagnostics;
using System.Runtime.InteropServices;
using TorchSharp;
using Workbook.Runtime;

namespace Workbook.Tests.Runtime;

/// <summary>The libstdc++ fix, on real files: TorchSharp's own libLibTorchSharp.so, this machine's libstdc++, and
/// libraries compiled here that define exactly the versions a newer or older libstdc++ would.</summary>
public class LibStdCxxFixTests
{
    static string OriginalLibTorchSharp()
    {
        var file = TorchRuntime.CandidateNativeDirectories(typeof(torch).Assembly)
            .Select(d => Path.Combine(d, "libLibTorchSharp.so")).FirstOrDefault(File.Exists);
        Assert.NotNull(file);
        return file!;
    }

    static ElfFile TorchSharpElf() => ElfFile.Read(OriginalLibTorchSharp());

    /// <summary>Compiles an empty shared library whose version script defines the given version names, like a libstdc++ would.</summary>
    static string FakeLibStdCxx(IEnumerable<string> versions)
    {
        var dir = Path.Combine(Path.GetTempPath(), "wb-fake-stdcxx-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        var list = versions.ToList();
        // Each version node defines one marker symbol; chained so the order matches libstdc++'s.
        File.WriteAllText(Path.Combine(dir, "v.map"), string.Join("\n", list.Select((v, i) => $"{v} {{ global: marker_{i}; }};")));
        File.WriteAllText(Path.Combine(dir, "f.c"), string.Join("\n", list.Select((_, i) => $"int marker_{i}(void) {{ return {i}; }}")));
        var so = Path.Combine(dir, "libstdc++.so.6");
        var psi = new ProcessStartInfo("cc", $"-shared -fPIC -o \"{so}\" f.c -Wl,--version-script=v.map") { WorkingDirectory = dir, RedirectStandardError = true };
        using var p = Process.Start(psi)!;
        var err = p.StandardError.ReadToEnd();
        p.WaitForExit();
        Assert.True(p.ExitCode == 0, "cc failed: " + err);
        return so;
    }

    static IEnumerable<string> RequiredLibStdCxxVersions(ElfFile elf) =>
        elf.VersionNeeds().Where(n => n.File == LibStdCxxFix.LibStdCxx).Select(n => n.Name);

    [Fact]
    public void TorchSharpPinsGlibcxx3432ThroughOneUnrelocatedSymbol()
    {
        var elf = TorchSharpElf();
        var need = Assert.Single(elf.VersionNeeds(), n => n.Name == "GLIBCXX_3.4.32");
        Assert.Equal("libstdc++.so.6", need.File);
        var users = elf.DynamicSymbols().Where(s => s.VersionIndex == need.Index).ToList();
        var sym = Assert.Single(users);
        Assert.Equal("_ZSt21ios_base_library_initv", sym.Name);
        Assert.True(sym.IsUndefined);
        Assert.DoesNotContain(sym.Index, elf.RelocatedSymbols());
    }

    [Fact]
    public void FixIsSkippedWhereLibStdCxxIsNewEnough()
    {
        var elf = TorchSharpElf();
        // A "GCC 13" libstdc++: every version TorchSharp requires, 3.4.32 included.
        var fake = ElfFile.Read(FakeLibStdCxx(RequiredLibStdCxxVersions(elf).Append("GLIBCXX_3.4.31").Distinct()));
        Assert.Contains("GLIBCXX_3.4.32", fake.VersionDefinitions());
        var plan = LibStdCxxFix.MakePlan(elf, fake.VersionDefinitions());
        Assert.True(plan.NotNeeded);
        Assert.False(plan.CanPatch);
        Assert.Contains("not needed", plan.ToString());
    }

    [Fact]
    public void FixIsPlannedWhereOnly3432IsMissing()
    {
        var elf = TorchSharpElf();
        // A "GCC 12" libstdc++ (Debian 12, Ubuntu 22.04): up to 3.4.30.
        var fake = ElfFile.Read(FakeLibStdCxx(RequiredLibStdCxxVersions(elf).Where(v => v != "GLIBCXX_3.4.32")));
        var plan = LibStdCxxFix.MakePlan(elf, fake.VersionDefinitions());
        Assert.True(plan.CanPatch);
        Assert.Equal("GLIBCXX_3.4.32", Assert.Single(plan.Missing).Name);
        Assert.Equal("_ZSt21ios_base_library_initv", Assert.Single(plan.Symbols).Name);
    }

    [Fact]
    public void FixRefusesWhenAMissingVersionIsReallyUsed()
    {
        var elf = TorchSharpElf();
        // A libstdc++ lacking 3.4.30, which TorchSharp uses for real (relocated symbols): weakening would break calls.
        var provided = RequiredLibStdCxxVersions(elf).Where(v => v is not ("GLIBCXX_3.4.32" or "GLIBCXX_3.4.30")).ToHashSet();
        var plan = LibStdCxxFix.MakePlan(elf, provided);
        Assert.False(plan.CanPatch);
        Assert.Contains("GLIBCXX_3.4.30", plan.Blocker);
        Assert.Contains("newer libstdc++", plan.Blocker);
        Assert.Throws<InvalidOperationException>(() => LibStdCxxFix.Apply(elf, plan));
    }

    [Fact]
    public void PatchChangesOnlyTheNeedFlagTheVersionEntryAndTheBinding()
    {
        var path = OriginalLibTorchSharp();
        var before = File.ReadAllBytes(path);
        var elf = ElfFile.FromBytes((byte[])before.Clone(), path);
        var provided = RequiredLibStdCxxVersions(elf).Where(v => v != "GLIBCXX_3.4.32").ToHashSet();
        var plan = LibStdCxxFix.MakePlan(elf, provided);
        LibStdCxxFix.Apply(elf, plan);

        var after = elf.Bytes.ToArray();
        var changed = Enumerable.Range(0, before.Length).Where(i => before[i] != after[i]).ToList();
        Assert.InRange(changed.Count, 2, 3); // vna_flags low byte, versym low byte, st_info
        var reread = ElfFile.FromBytes(after, path);
        var need = reread.VersionNeeds().Single(n => n.Name == "GLIBCXX_3.4.32");
        Assert.Equal(ElfFile.VerFlgWeak, need.Flags & ElfFile.VerFlgWeak);
        var sym = reread.DynamicSymbols().Single(s => s.Name == "_ZSt21ios_base_library_initv");
        Assert.Equal(1, sym.VersionIndex);
        Assert.Equal(2, sym.Binding); // STB_WEAK
        Assert.Equal(before, File.ReadAllBytes(path)); // the package's file is untouched
    }

    [Fact]
    public void ThisMachineGetsTheFixExactlyWhenItsLibStdCxxLacks3432()
    {
        var report = TorchRuntime.EnsureLoaded();
        if (!RuntimeInformation.IsOSPlatform(OSPlatform.Linux)) { Assert.False(report.Patched); return; }
        var system = LibStdCxxFix.FindSystemLibStdCxx();
        Assert.NotNull(system);
        bool has3432 = ElfFile.Read(system!).VersionDefinitions().Contains("GLIBCXX_3.4.32");
        if (Environment.GetEnvironmentVariable("WORKBOOK_NATIVE_FIX") is null or "auto")
            Assert.Equal(!has3432, report.Patched);
        if (report.Patched)
        {
            Assert.StartsWith(TorchRuntime.CacheRoot(), report.Loaded);
            Assert.Equal(TorchRuntime.PatchedCopyPath(report.Original!), report.Loaded);
            var loaded = ElfFile.Read(report.Loaded!);
            Assert.NotEqual(0, loaded.VersionNeeds().Single(n => n.Name == "GLIBCXX_3.4.32").Flags & ElfFile.VerFlgWeak);
        }
        using var t = torch.ones(3).sum();
        Assert.Equal(3f, t.item<float>());
    }

    [Fact]
    public void ElfReaderRejectsNonElfAndTruncatedFiles()
    {
        var dir = Path.Combine(Path.GetTempPath(), "wb-elf-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        var notElf = Path.Combine(dir, "x.so");
        File.WriteAllText(notElf, "this is not a shared library, it is text that is long enough to have a header of 64 bytes");
        Assert.Contains("bad magic", Assert.Throws<InvalidDataException>(() => ElfFile.Read(notElf)).Message);
        var truncated = Path.Combine(dir, "t.so");
        File.WriteAllBytes(truncated, File.ReadAllBytes(OriginalLibTorchSharp())[..4096]);
        Assert.Contains("truncated", Assert.Throws<InvalidDataException>(() => ElfFile.Read(truncated)).Message, StringComparison.OrdinalIgnoreCase);
    }
}
