using Workbook.Runtime;

namespace Workbook.Tests.Runtime;

public class NativeHeapTests
{
    /// <summary>
    /// The fixed mmap threshold doubled the CNN chapters' time (see NativeHeap): it must stay opt-in. The opt-in itself is
    /// checked in a fresh process (BenchSmokeTests), since mallopt would change this one for every later test.
    /// </summary>
    [Fact]
    public void EnsureLoadedLeavesGlibcsDefaultUnlessAskedTo()
    {
        TorchRuntime.EnsureLoaded();
        if (Environment.GetEnvironmentVariable("WORKBOOK_MALLOC") is { Length: > 0 }) return; // a run that chose
        Assert.NotNull(NativeHeap.State);
        Assert.StartsWith("left alone", NativeHeap.State);
    }

    [Fact]
    public void InfoReadsGlibcsCountersOnLinux()
    {
        var info = NativeHeap.Info();
        if (!OperatingSystem.IsLinux()) { Assert.Null(info); return; }
        Assert.NotNull(info);
        Assert.True(info!.Value.HeapBytes > 0, $"mallinfo2().arena = {info.Value.HeapBytes}, expected the heap's size in bytes");
    }
}
