using Microsoft.DotNet.Interactive.Formatting;
using TorchSharp;
using Workbook.Runtime;

namespace Workbook.Tests.Runtime;

public class NotebookSetupTests
{
    [Fact]
    public void SetupSeedsEveryGeneratorReproducibly()
    {
        var s = Notebook.Setup(seed: 7, threads: 1);
        Assert.Equal(7, s.Seed);
        Assert.Equal(1, s.Threads);
        Assert.Equal("cpu", s.Device);
        var a = torch.randn(5).data<float>().ToArray();
        var r1 = Notebook.Random.Next();
        Notebook.Setup(seed: 7, threads: 1);
        Assert.Equal(a, torch.randn(5).data<float>().ToArray());
        Assert.Equal(r1, Notebook.Random.Next());
        Notebook.Setup(seed: 8, threads: 1);
        Assert.NotEqual(a, torch.randn(5).data<float>().ToArray());
        Notebook.Setup(seed: 42, threads: Environment.ProcessorCount);
    }

    [Fact]
    public void ProfileParsesAndRejectsUnknownNames()
    {
        Assert.Equal(RunProfile.Full, Notebook.ParseProfile(null));
        Assert.Equal(RunProfile.Quick, Notebook.ParseProfile("quick"));
        var e = Assert.Throws<ArgumentException>(() => Notebook.ParseProfile("Fast"));
        Assert.Contains("'Fast'", e.Message);
        Assert.Contains("Quick", e.Message);
    }

    [Fact]
    public void AskingForCudaWithoutItExplainsWhatToReference()
    {
        if (torch.cuda.is_available()) return; // only meaningful on a CPU-only build
        var e = Assert.Throws<InvalidOperationException>(() => Notebook.Setup(device: "cuda"));
        Assert.Contains("TorchSharp-cuda-linux", e.Message);
    }

    [Fact]
    public void SetupSummaryDisplaysAsATable()
    {
        var s = Notebook.Setup();
        var html = s.ToDisplayString("text/html");
        Assert.Contains("<table", html);
        Assert.Contains("Native fix", html);
        Assert.Contains(torch.__version__, html);
    }

    [Fact]
    public void LoadedLibraryMatchesTheCheckoutSources()
    {
        var lib = StaleBuild.FindLibSources(TestSetup.RepoRoot);
        Assert.NotNull(lib);
        Assert.Equal(StaleBuild.CompiledStamp, StaleBuild.ComputeStamp(lib!));
        StaleBuild.ThrowIfStale(TestSetup.RepoRoot);
    }

    [Fact]
    public void StaleBuildIsDetectedWithTheRebuildCommand()
    {
        var dir = Path.Combine(Path.GetTempPath(), "wb-stale-" + Guid.NewGuid().ToString("N"));
        var lib = Path.Combine(dir, "lib", "Workbook");
        Directory.CreateDirectory(lib);
        File.WriteAllText(Path.Combine(lib, "Workbook.csproj"), "<Project />");
        File.WriteAllText(Path.Combine(lib, "Changed.cs"), "class Changed { }");
        var e = Assert.Throws<InvalidOperationException>(() => StaleBuild.ThrowIfStale(dir));
        Assert.Contains("dotnet build", e.Message);
        Assert.Contains("restart the kernel", e.Message);
    }
}
