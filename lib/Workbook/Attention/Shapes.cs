using static TorchSharp.torch;

namespace Workbook.Attention;

/// <summary>Shape formatting and checks shared by the attention and Transformer code, for clear error messages.</summary>
internal static class Shapes
{
    /// <summary>"[2, 3, 5, 8]".</summary>
    public static string Of(Tensor t) => Of(t.shape);

    /// <summary>"[2, 3, 5, 8]".</summary>
    public static string Of(long[] shape) => "[" + string.Join(", ", shape) + "]";

    /// <summary>Whether two tensors live on the same device (Device is a class: compare type and index).</summary>
    public static bool SameDevice(Tensor a, Tensor b) => a.device_type == b.device_type && a.device_index == b.device_index;

    /// <summary>Whether <paramref name="small"/> broadcasts to <paramref name="target"/> without changing it.</summary>
    public static bool BroadcastsTo(long[] small, long[] target)
    {
        if (small.Length > target.Length) return false;
        for (int i = 1; i <= small.Length; i++)
        {
            long s = small[^i], t = target[^i];
            if (s != t && s != 1) return false;
        }
        return true;
    }

    /// <summary>Whether two shapes broadcast with each other (right-aligned, each pair equal or one of them 1).</summary>
    public static bool Compatible(long[] a, long[] b)
    {
        for (int i = 1; i <= Math.Min(a.Length, b.Length); i++)
        {
            long x = a[^i], y = b[^i];
            if (x != y && x != 1 && y != 1) return false;
        }
        return true;
    }

    /// <summary>The broadcast of two compatible shapes.</summary>
    public static long[] Broadcast(long[] a, long[] b)
    {
        var n = Math.Max(a.Length, b.Length);
        var r = new long[n];
        for (int i = 1; i <= n; i++)
        {
            long x = i <= a.Length ? a[^i] : 1, y = i <= b.Length ? b[^i] : 1;
            r[^i] = x == 1 ? y : x;
        }
        return r;
    }
}
