using System.Runtime.InteropServices;

namespace Workbook.Runtime;

/// <summary>
/// An opt-in fix for native heap growth over long training runs on Linux (glibc); off unless <c>WORKBOOK_MALLOC=on</c>.
/// libtorch allocates every tensor with <c>posix_memalign</c>. glibc serves blocks above its mmap threshold with
/// <c>mmap</c> and returns them when they are freed, but that threshold is dynamic: after the first such block is freed
/// it rises to that block's size (up to 32 MiB), and from then on tensors of that size are carved from the <c>brk</c>
/// heap, which fragments. On the bench's 784-256-128-10 MLP (Adam, batch 64; its 0.8 MB gradients are freed and re-made
/// every step) the heap grew 148 MiB over 2,000 steps, with the live tensor count flat. <see cref="Tune"/> fixes the
/// threshold at 256 KiB (which also turns off its dynamic rise), and the heap then grew 4 MiB over the same run.
/// Why it is not on by default: every tensor of 256 KiB or more then pays an <c>mmap</c>, its page faults and a
/// <c>munmap</c>. The bench's small training loops hardly noticed, but the workbook's CNN chapters did: on the same quiet
/// 2-core Xeon (2026-12-02) chapter 06 took 236 s in Full against 144 s, solutions/06 531 s against 261 s, chapter 07 226 s
/// against 170 s. 128 KiB was slower still; 1 MiB kept the 0.8 MB gradients on the heap, which then grew 452 MiB.
/// A threshold the user set (<c>MALLOC_MMAP_THRESHOLD_</c>) is left alone; other C libraries and systems too.
/// </summary>
public static class NativeHeap
{
    /// <summary>The mmap threshold <see cref="Tune"/> sets, in bytes.</summary>
    public const int MmapThreshold = 256 * 1024;

    const int M_MMAP_THRESHOLD = -3; // glibc's malloc.h

    static readonly object Gate = new();
    static string? _state;

    /// <summary>What <see cref="Tune"/> did ("M_MMAP_THRESHOLD = 262144 (glibc 2.36)", "left alone: …"), or null before it ran.</summary>
    public static string? State => _state;

    /// <summary>With <c>WORKBOOK_MALLOC=on</c>, sets glibc's mmap threshold once per process (see the class summary); never throws.</summary>
    public static string Tune()
    {
        lock (Gate)
        {
            if (_state is not null) return _state;
            return _state = TuneOnce();
        }
    }

    static string TuneOnce()
    {
        if (!RuntimeInformation.IsOSPlatform(OSPlatform.Linux)) return "left alone: not Linux";
        if (!string.Equals(Environment.GetEnvironmentVariable("WORKBOOK_MALLOC"), "on", StringComparison.OrdinalIgnoreCase))
            return "left alone: glibc's default (WORKBOOK_MALLOC=on fixes the threshold)";
        if (Environment.GetEnvironmentVariable("MALLOC_MMAP_THRESHOLD_") is { Length: > 0 } user)
            return $"left alone: MALLOC_MMAP_THRESHOLD_={user} set by the user";
        try
        {
            var version = Marshal.PtrToStringAnsi(gnu_get_libc_version()) ?? "?";
            return mallopt(M_MMAP_THRESHOLD, MmapThreshold) == 1
                ? $"M_MMAP_THRESHOLD = {MmapThreshold} (glibc {version})"
                : $"left alone: glibc {version} refused M_MMAP_THRESHOLD = {MmapThreshold}";
        }
        catch (Exception e) when (e is EntryPointNotFoundException or DllNotFoundException)
        {
            return "left alone: not glibc";
        }
    }

    /// <summary>glibc's <c>mallinfo2</c> (2.33 and later): bytes in the <c>brk</c> heap and in mmapped blocks.</summary>
    /// <returns>Null where the C library has no <c>mallinfo2</c>.</returns>
    public static (long HeapBytes, long MmappedBytes, long MmappedBlocks)? Info()
    {
        if (!RuntimeInformation.IsOSPlatform(OSPlatform.Linux)) return null;
        try
        {
            var m = mallinfo2();
            return ((long)m.arena, (long)m.hblkhd, (long)m.hblks);
        }
        catch (Exception e) when (e is EntryPointNotFoundException or DllNotFoundException) { return null; }
    }

    [StructLayout(LayoutKind.Sequential)]
    struct MallInfo2
    {
        public nuint arena, ordblks, smblks, hblks, hblkhd, usmblks, fsmblks, uordblks, fordblks, keepcost;
    }

    [DllImport("libc", EntryPoint = "mallopt")] static extern int mallopt(int param, int value);
    [DllImport("libc", EntryPoint = "gnu_get_libc_version")] static extern IntPtr gnu_get_libc_version();
    [DllImport("libc", EntryPoint = "mallinfo2")] static extern MallInfo2 mallinfo2();
}
