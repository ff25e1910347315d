using TorchSharp;
using Workbook.Vision;
using static TorchSharp.torch;

namespace Workbook.Tests.Vision;

public class ConvArithmeticTests
{
    [Theory]
    [InlineData(28, 3, 1, 1, 1, 28)]    // 3×3, padding 1: "same"
    [InlineData(28, 2, 2, 0, 1, 14)]    // 2×2 max-pool halves
    [InlineData(7, 2, 2, 0, 1, 3)]      // odd size: floor
    [InlineData(224, 3, 1, 0, 1, 222)]  // valid convolution loses k-1
    [InlineData(5, 3, 2, 1, 1, 3)]      // (5+2-3)/2+1
    [InlineData(10, 3, 1, 0, 2, 6)]     // dilation 2 spans 5: 10-5+1
    public void OutputSizeMatchesHandComputation(int n, int k, int s, int p, int d, int expected) =>
        Assert.Equal(expected, ConvArithmetic.OutputSize(n, k, s, p, d));

    [Fact]
    public void OutputSizeMatchesConv2dAndMaxPool2dForEveryCombination()
    {
        using var scope = torch.NewDisposeScope();
        foreach (var n in new[] { 5, 8, 13 })
            foreach (var k in new[] { 1, 2, 3, 5 })
                foreach (var s in new[] { 1, 2, 3 })
                    foreach (var p in new[] { 0, 1, 2 })
                        foreach (var d in new[] { 1, 2 })
                        {
                            if (d * (k - 1) + 1 > n + 2 * p) continue;
                            var x = torch.zeros(1, 1, n, n + 1);
                            var w = torch.zeros(1, 1, k, k);
                            var y = nn.functional.conv2d(x, w, strides: new long[] { s, s }, padding: new long[] { p, p }, dilation: new long[] { d, d });
                            Assert.Equal(ConvArithmetic.OutputSize(n, k, s, p, d), (int)y.shape[2]);
                            Assert.Equal(ConvArithmetic.OutputSize(n + 1, k, s, p, d), (int)y.shape[3]);
                            if (p <= k / 2 && d == 1)   // max-pool requires padding <= kernel/2
                            {
                                var m = nn.functional.max_pool2d(x, new long[] { k, k }, new long[] { s, s }, new long[] { p, p });
                                Assert.Equal(ConvArithmetic.OutputSize(n, k, s, p), (int)m.shape[2]);
                            }
                        }
    }

    [Fact]
    public void KernelLargerThanPaddedInputIsRejected()
    {
        var e = Assert.Throws<ArgumentException>(() => ConvArithmetic.OutputSize(4, 7, padding: 1));
        Assert.Contains("padded length 6", e.Message);
        Assert.Throws<ArgumentException>(() => ConvArithmetic.OutputSize(4, 3, stride: 0));
        Assert.Equal(2, ConvArithmetic.SamePadding(5));
        Assert.Throws<ArgumentException>(() => ConvArithmetic.SamePadding(4));
    }
}
