using TorchSharp;
using Workbook.Tests.Attention;
using Workbook.Transformers;
using static TorchSharp.torch;

namespace Workbook.Tests.Transformers;

public class PositionalEncodingTests
{
    [Theory]
    [InlineData("expected.pe_even")]
    [InlineData("expected.pe_odd")]
    public void SinusoidalTableMatchesPyTorchGolden(string name)
    {
        var expected = Golden.Load("positional_encoding")[name];
        var table = SinusoidalPositionalEncoding.Table(expected.shape[0], expected.shape[1]);
        Golden.AssertClose(expected, table, 1e-5, name);
    }

    [Fact]
    public void OddWidthEndsWithASinColumn()
    {
        var t = SinusoidalPositionalEncoding.Table(50, 7, ScalarType.Float64);
        var pos = arange(50, dtype: ScalarType.Float64);
        // Column 6 = 2i with i = 3: sin(pos / 10000^(6/7)).
        Golden.AssertClose(pos.div(Math.Pow(10000, 6.0 / 7)).sin(), t[.., 6], 1e-12, "last column");
        Assert.Equal(0.0, t[0].index(new long[] { 0, 2, 4, 6 }).abs().sum().item<double>());   // sin(0) = 0
        Assert.Equal(3.0, t[0].index(new long[] { 1, 3, 5 }).sum().item<double>());           // cos(0) = 1
    }

    [Fact]
    public void ShiftByKIsTheSameLinearMapForEveryPosition()
    {
        // PE(pos + k) = M_k PE(pos), with M_k block-diagonal: a 2×2 rotation by k·ω_i per (sin, cos) pair.
        const int d = 16, L = 60, k = 5;
        var pe = SinusoidalPositionalEncoding.Table(L, d, ScalarType.Float64);
        var M = zeros(d, d, dtype: ScalarType.Float64);
        for (int i = 0; i < d / 2; i++)
        {
            double w = Math.Pow(10000, -2.0 * i / d), c = Math.Cos(k * w), s = Math.Sin(k * w);
            // [sin(a+b), cos(a+b)] = [[cos b, sin b], [-sin b, cos b]] [sin a, cos a]
            M[2 * i, 2 * i] = c; M[2 * i, 2 * i + 1] = s;
            M[2 * i + 1, 2 * i] = -s; M[2 * i + 1, 2 * i + 1] = c;
        }
        var shifted = matmul(pe[..(L - k)], M.T);
        Golden.AssertClose(pe[k..], shifted, 1e-10, "PE(pos+k) = M_k PE(pos)");
    }

    [Fact]
    public void ModuleAddsTheRowsOfItsPositions()
    {
        var m = new SinusoidalPositionalEncoding(16, maxLength: 50);
        var x = randn(2, 7, 16);
        Golden.AssertClose(x + SinusoidalPositionalEncoding.Table(7, 16), m.forward(x), 1e-6, "offset 0");
        Golden.AssertClose(x + SinusoidalPositionalEncoding.Table(10, 16)[3..], m.forward(x, 3), 1e-6, "offset 3");
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => m.forward(randn(1, 51, 16)));
        Assert.Contains("maxLength=50", e.Message);
        var e2 = Assert.Throws<ArgumentException>(() => m.forward(randn(1, 5, 12)));
        Assert.Contains("[1, 5, 12]", e2.Message);
    }

    [Fact]
    public void LearnedEmbeddingAddsTrainableRows()
    {
        var m = new LearnedPositionalEmbedding(10, 8);
        var x = randn(3, 4, 8);
        Golden.AssertClose(x + m.weight[2..6], m.forward(x, 2), 1e-6, "rows 2..5");
        var loss = m.forward(x).sum();
        loss.backward();
        Assert.Equal(1f, m.weight.grad![0, 0].item<float>() / 3f, 5);                    // each used row gets grad = batch size
        Assert.Equal(0f, m.weight.grad![4..].abs().sum().item<float>());                  // unused rows get none
        Assert.Throws<ArgumentOutOfRangeException>(() => m.forward(randn(1, 11, 8)));
    }

    [Fact]
    public void RotaryScoresDependOnlyOnRelativePosition()
    {
        torch.manual_seed(11);
        const long d = 32;
        var q = randn(d);
        var k = randn(d);
        double Score(long m, long n) =>
            RotaryEmbedding.Apply(q.view(1, d), m).squeeze(0).dot(RotaryEmbedding.Apply(k.view(1, d), n).squeeze(0)).item<float>();
        foreach (var (m, n) in new[] { (3L, 1L), (10L, 4L), (0L, 7L) })
            foreach (var shift in new[] { 1L, 17L, 250L })
                Assert.True(Math.Abs(Score(m, n) - Score(m + shift, n + shift)) < 1e-4,
                    $"score({m},{n}) = {Score(m, n)} vs score({m + shift},{n + shift}) = {Score(m + shift, n + shift)}");
        Assert.True(Math.Abs(Score(3, 1) - Score(1, 3)) > 1e-3, "but it does depend on the offset m - n");
    }

    [Fact]
    public void RotaryIsARotationPerPair()
    {
        var x = randn(2, 3, 9, 8);
        var r = new RotaryEmbedding(8).forward(x);
        Golden.AssertClose(x[.., .., 0], r[.., .., 0], 0, "position 0 unchanged");
        Golden.AssertClose(x.norm(-1), r.norm(-1), 1e-5, "norms preserved");
        // Position 5, pair i = 1: angle 5 · 10000^(-2/8).
        double a = 5 * Math.Pow(10000, -2.0 / 8);
        float x0 = x[0, 0, 5, 2].item<float>(), x1 = x[0, 0, 5, 3].item<float>();
        Assert.Equal(x0 * Math.Cos(a) - x1 * Math.Sin(a), r[0, 0, 5, 2].item<float>(), 5);
        Assert.Equal(x0 * Math.Sin(a) + x1 * Math.Cos(a), r[0, 0, 5, 3].item<float>(), 5);
        Assert.Throws<ArgumentException>(() => new RotaryEmbedding(7));
        Assert.Throws<ArgumentException>(() => RotaryEmbedding.Apply(randn(4, 5)));
    }
}
