using System.Runtime.InteropServices;

namespace Workbook.Runtime;

/// <summary>
/// Keeps the native heap flat over long training runs on Linux (glibc). libtorch allocates every tensor with
/// <c>posix_memalign</c>. glibc serves blocks above its mmap threshold with <c>mmap</c> and returns them to the system
/// when they are freed, but that threshold is dynamic: after the first such block is freed it rises to that block's size
/// (up to 32 MiB), and from then on tensors of that size are carved from the <c>brk</c> heap, where aligned blocks freed
/// in a different order than they were taken fragment it. On the bench's 784-256-128-10 MLP (Adam, batch 64; its 0.8 MB
/// gradients are freed and re-made every step) the heap grew 148 MiB over 2,000 steps, +78 % of the process's RSS, with
/// the live tensor count flat. <see cref="Tune"/> fixes the threshold (which also turns off its dynamic rise):
/// <list type="bullet">
/// <item>256 KiB: the heap grew 4 MiB over the same run, and training ran as fast as with glibc's default within the
/// bench's noise (MLP, char-GPT, CNN; 2-core Xeon, 2026-12-02);</item>
/// <item>128 KiB (glibc's starting value) also stays flat but was 30–40 % slower on the char-GPT and the CNN: every
/// activation of 128–256 KiB then pays an <c>mmap</c> and its page faults;</item>
/// <item>1 MiB keeps the 0.8 MB gradients on the heap, which then grew 452 MiB.</item>
/// </list>
/// A threshold the user set (<c>MALLOC_MMAP_THRESHOLD_</c>) is left alone; <c>WORKBOOK_MALLOC=off</c> skips the tuning.
/// Other C libraries (musl) and other systems are left as they are.
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

    /// <summary>Sets glibc's mmap threshold once per process (see the class summary); never throws.</summary>
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
        if (string.Equals(Environment.GetEnvironmentVariable("WORKBOOK_MALLOC"), "off", StringComparison.OrdinalIgnoreCase))
            return "left alone: WORKBOOK_MALLOC=off";
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
