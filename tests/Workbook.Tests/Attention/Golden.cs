using TorchSharp;
using Workbook.IO;
using static TorchSharp.torch;

namespace Workbook.Tests.Attention;

/// <summary>Access to the PyTorch golden tensors and float comparisons for the attention/Transformer tests.</summary>
static class Golden
{
    /// <summary>All tensors of Fixtures/golden/NAME.safetensors.</summary>
    public static Dictionary<string, Tensor> Load(string name) => SafeTensors.Load(TestSetup.Fixture("golden", name + ".safetensors"));

    /// <summary>The module parameters of a golden file (everything that is neither input.* nor expected.*).</summary>
    public static Dictionary<string, Tensor> Parameters(Dictionary<string, Tensor> golden) =>
        golden.Where(kv => !kv.Key.StartsWith("input.") && !kv.Key.StartsWith("expected.")).ToDictionary(kv => kv.Key, kv => kv.Value);

    /// <summary>Max |a - b| after checking the shapes agree.</summary>
    public static double MaxAbsDiff(Tensor expected, Tensor actual)
    {
        Assert.Equal(expected.shape, actual.shape);
        using var d = (expected.to_type(ScalarType.Float64) - actual.to_type(ScalarType.Float64)).abs().max();
        return d.item<double>();
    }

    /// <summary>Asserts max |expected - actual| ≤ atol and shows the difference when it fails.</summary>
    public static void AssertClose(Tensor expected, Tensor actual, double atol = 1e-5, string what = "")
    {
        Assert.False(actual.isnan().any().item<bool>(), $"{what}: result has NaNs");
        var diff = MaxAbsDiff(expected, actual);
        Assert.True(diff <= atol, $"{what}: max |diff| = {diff:E3} > {atol:E1}");
    }

    /// <summary>Same shape and all elements equal.</summary>
    public static bool Same(Tensor expected, Tensor actual) =>
        expected.shape.SequenceEqual(actual.shape) && expected.eq(actual).all().item<bool>();

    /// <summary>An I64 0/1 golden mask (1 = masked) as a bool mask (true = masked).</summary>
    public static Tensor Bool(Tensor mask) => mask.to_type(ScalarType.Bool);
}
