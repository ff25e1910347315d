using System.Runtime.InteropServices;
using TorchSharp;
using Workbook.Runtime;
using Workbook.Tests.Training;

namespace Workbook.Tests.Runtime;

/// <summary>
/// glibc's heap counters are process-wide: these tests run alone (the collection of the tests that measure global state).
/// </summary>
[Collection(TorchGlobalStateCollection.Name)]
public class NativeHeapTests
{
    static bool Glibc => RuntimeInformation.IsOSPlatform(OSPlatform.Linux) && NativeHeap.Info() is not null;

    [Fact]
    public void EnsureLoadedFixesTheMmapThreshold()
    {
        TorchRuntime.EnsureLoaded();
        if (!Glibc || Environment.GetEnvironmentVariable("MALLOC_MMAP_THRESHOLD_") is { Length: > 0 }) return; // nothing to tune
        Assert.StartsWith($"M_MMAP_THRESHOLD = {NativeHeap.MmapThreshold}", NativeHeap.State);
    }

    /// <summary>
    /// With glibc's dynamic threshold, the second 0.8 MB tensor would come from the brk heap (the first one's free raised
    /// the threshold past its size); with the fixed threshold every such tensor is its own mapping, returned at free,
    /// and the heap does not grow however often a training step frees and re-makes its gradients.
    /// </summary>
    [Fact]
    public void TensorsAboveTheThresholdAreMappedAndReturned()
    {
        TorchRuntime.EnsureLoaded();
        if (!Glibc || !(NativeHeap.State ?? "").StartsWith("M_MMAP_THRESHOLD", StringComparison.Ordinal)) return;
        long bytes = 784 * 256 * sizeof(float); // the bench MLP's first gradient
        var heapBefore = NativeHeap.Info()!.Value.HeapBytes;
        for (int i = 0; i < 200; i++)
        {
            var before = NativeHeap.Info()!.Value;
            using (var g = torch.empty(784, 256))
            {
                var during = NativeHeap.Info()!.Value;
                Assert.True(during.MmappedBytes - before.MmappedBytes >= bytes,
                    $"allocation {i}: mmapped bytes grew by {during.MmappedBytes - before.MmappedBytes}, expected at least {bytes} (the tensor's own mapping)");
            }
            Assert.True(NativeHeap.Info()!.Value.MmappedBytes <= before.MmappedBytes,
                $"allocation {i}: the mapping was not returned at dispose ({NativeHeap.Info()!.Value.MmappedBytes} > {before.MmappedBytes} bytes)");
        }
        long grown = NativeHeap.Info()!.Value.HeapBytes - heapBefore;
        Assert.True(grown < bytes, $"the brk heap grew by {grown} bytes over 200 allocations of {bytes}, expected less than one tensor");
    }
}
