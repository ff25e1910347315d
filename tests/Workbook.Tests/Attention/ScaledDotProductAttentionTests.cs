using TorchSharp;
using Workbook.Attention;
using static TorchSharp.torch;

namespace Workbook.Tests.Attention;

public class ScaledDotProductAttentionTests
{
    static (Tensor? Mask, Tensor? Kpm) MasksFor(Dictionary<string, Tensor> g, string variant) => variant switch
    {
        "none" => (null, null),
        "causal" => (Golden.Bool(g["input.causal_mask"]), null),
        "key_padding" => (null, Golden.Bool(g["input.key_padding_mask"])),
        "causal_key_padding" => (Golden.Bool(g["input.causal_mask"]), Golden.Bool(g["input.key_padding_mask"])),
        _ => throw new ArgumentException(variant),
    };

    [Theory]
    [InlineData("none")]
    [InlineData("causal")]
    [InlineData("key_padding")]
    [InlineData("causal_key_padding")]
    public void ExplicitMatchesPyTorchGolden(string variant)
    {
        var g = Golden.Load("sdpa");
        var (mask, kpm) = MasksFor(g, variant);
        var (output, weights) = ScaledDotProductAttention.Compute(g["input.q"], g["input.k"], g["input.v"], mask, kpm);
        Golden.AssertClose(g[$"expected.{variant}.out"], output, 1e-5, $"{variant} out");
        Golden.AssertClose(g[$"expected.{variant}.weights"], weights, 1e-5, $"{variant} weights");
    }

    [Theory]
    [InlineData("none")]
    [InlineData("causal")]
    [InlineData("key_padding")]
    [InlineData("causal_key_padding")]
    public void FusedMatchesPyTorchGoldenAndExplicitPath(string variant)
    {
        var g = Golden.Load("sdpa");
        var (mask, kpm) = MasksFor(g, variant);
        var fused = ScaledDotProductAttention.Fused(g["input.q"], g["input.k"], g["input.v"], mask, kpm);
        var (explicitOut, _) = ScaledDotProductAttention.Compute(g["input.q"], g["input.k"], g["input.v"], mask, kpm);
        Golden.AssertClose(g[$"expected.{variant}.out"], fused, 1e-5, $"{variant} fused");
        Golden.AssertClose(explicitOut, fused, 1e-6, $"{variant} fused vs explicit");
    }

    [Fact]
    public void CausalFlagAdditiveMaskAndBoolMaskAgree()
    {
        var g = Golden.Load("sdpa");
        Tensor q = g["input.q"], k = g["input.k"], v = g["input.v"];
        var expected = g["expected.causal.out"];
        Golden.AssertClose(expected, ScaledDotProductAttention.Compute(q, k, v, isCausal: true).Output, 1e-5, "isCausal");
        Golden.AssertClose(expected, ScaledDotProductAttention.Compute(q, k, v, g["input.causal_mask_additive"]).Output, 1e-5, "additive");
        Golden.AssertClose(expected, ScaledDotProductAttention.Fused(q, k, v, isCausal: true), 1e-5, "fused isCausal");
        Golden.AssertClose(expected, ScaledDotProductAttention.Fused(q, k, v, g["input.causal_mask_additive"]), 1e-5, "fused additive");
        Golden.AssertClose(expected, ScaledDotProductAttention.Compute(q, k, v, AttentionMask.CausalAdditive(q.shape[2])).Output, 1e-5, "builder");
        Assert.True(Golden.Same(Golden.Bool(g["input.causal_mask"]), AttentionMask.Causal(q.shape[2])));
    }

    [Fact]
    public void WorkedExampleByHand()
    {
        // One query, two keys, d_k = 2: scores = q·k / √2 = [1/√2, 0].
        var q = tensor(new[] { 1f, 0f }).reshape(1, 2);
        var k = tensor(new[] { 1f, 0f, 0f, 1f }).reshape(2, 2);
        var v = tensor(new[] { 1f, 2f, 3f, 4f }).reshape(2, 2);
        var (output, weights) = ScaledDotProductAttention.Compute(q, k, v);
        double e = Math.Exp(1 / Math.Sqrt(2));
        double w0 = e / (e + 1), w1 = 1 / (e + 1);
        Assert.Equal(w0, weights[0, 0].item<float>(), 6);
        Assert.Equal(w1, weights[0, 1].item<float>(), 6);
        Assert.Equal(w0 * 1 + w1 * 3, output[0, 0].item<float>(), 6);
        Assert.Equal(w0 * 2 + w1 * 4, output[0, 1].item<float>(), 6);
    }

    [Fact]
    public void WeightsAreDistributionsAndMaskedEntriesAreExactlyZero()
    {
        var g = Golden.Load("sdpa");
        var (mask, kpm) = MasksFor(g, "causal_key_padding");
        var (_, w) = ScaledDotProductAttention.Compute(g["input.q"], g["input.k"], g["input.v"], mask, kpm);
        Golden.AssertClose(ones(w.shape[..^1]), w.sum(-1), 1e-6, "rows sum to 1");
        var masked = mask!.logical_or(kpm!.view(2, 1, 1, 5)).expand(w.shape);
        Assert.Equal(0f, w.masked_select(masked).abs().max().item<float>());
        Assert.True(w.masked_select(masked.logical_not()).gt(0).all().item<bool>());
    }

    public static IEnumerable<object[]> Layouts() => new[]
    {
        new object[] { new long[] { 7, 16 }, new long[] { 7, 16 }, new long[] { 7, 16 } },                  // unbatched [T, d]
        new object[] { new long[] { 3, 5, 8 }, new long[] { 3, 9, 8 }, new long[] { 3, 9, 4 } },           // [B, T, d], T_q != T_k, d_v != d_k
        new object[] { new long[] { 2, 3, 4, 6, 8 }, new long[] { 2, 3, 4, 6, 8 }, new long[] { 2, 3, 4, 6, 8 } }, // 5-D
        new object[] { new long[] { 2, 4, 5, 8 }, new long[] { 2, 1, 7, 8 }, new long[] { 2, 1, 7, 8 } },  // keys broadcast over heads
    };

    [Theory]
    [MemberData(nameof(Layouts))]
    public void FusedEqualsExplicitForAnyLayoutAndMask(long[] qShape, long[] kShape, long[] vShape)
    {
        torch.manual_seed(1);
        Tensor q = randn(qShape), k = randn(kShape), v = randn(vShape);
        long tq = qShape[^2], tk = kShape[^2];
        var bias = randn(tq, tk);                                          // an additive float mask (a learned bias, say)
        var boolMask = rand(tq, tk).lt(0.3).logical_and(AttentionMask.Causal(tq, tk).logical_not()); // keeps the diagonal free
        var kpm = qShape.Length >= 3 ? AttentionMask.KeyPaddingFromLengths(Enumerable.Range(0, (int)qShape[0]).Select(b => tk - b).ToList(), tk) : null;
        foreach (var (name, mask, pad, causal, scale) in new (string, Tensor?, Tensor?, bool, double?)[]
                 {
                     ("none", null, null, false, null), ("causal", null, null, true, null), ("bool", boolMask, null, false, null),
                     ("float", bias, null, false, null), ("bool+causal+pad", boolMask, kpm, true, null),
                     ("float+pad", bias, kpm, false, null), ("scale", null, null, false, 0.05),
                 })
        {
            var (expected, _) = ScaledDotProductAttention.Compute(q, k, v, mask, pad, causal, scale: scale);
            var fused = ScaledDotProductAttention.Fused(q, k, v, mask, pad, causal, scale: scale);
            Assert.Equal(expected.shape, fused.shape);
            Golden.AssertClose(expected, fused, 1e-5, name);
        }
    }

    [Fact]
    public void FullyMaskedRowGivesZeroWeightsAndOutputInBothPaths()
    {
        var q = randn(1, 3, 4);
        var mask = tensor(new[] { false, false, false, true, true, true, false, true, false }).reshape(3, 3);
        var (o, w) = ScaledDotProductAttention.Compute(q, q, q, mask);
        Assert.Equal(0f, w[0, 1].abs().sum().item<float>());
        Assert.Equal(0f, o[0, 1].abs().sum().item<float>());
        Assert.False(o.isnan().any().item<bool>());
        Golden.AssertClose(o, ScaledDotProductAttention.Fused(q, q, q, mask), 1e-6, "fused");
    }

    [Fact]
    public void DropoutZeroesAndRescalesWeightsAndOutputUsesThem()
    {
        torch.manual_seed(3);
        Tensor q = randn(2, 4, 16, 8), k = randn(2, 4, 16, 8), v = randn(2, 4, 16, 8);
        var (_, clean) = ScaledDotProductAttention.Compute(q, k, v);
        var (o, w) = ScaledDotProductAttention.Compute(q, k, v, dropout: 0.5);
        var dropped = w.eq(0);
        double fraction = dropped.to_type(ScalarType.Float64).mean().item<double>();
        Assert.InRange(fraction, 0.45, 0.55);                                   // 2048 Bernoulli(0.5) draws
        Golden.AssertClose(clean.mul(2).masked_fill(dropped, 0), w, 1e-6, "kept weights scaled by 1/(1-p)");
        Golden.AssertClose(matmul(w, v), o, 1e-5, "output = dropped weights @ V");
        var fusedTrain = ScaledDotProductAttention.Fused(q, k, v, dropout: 0.5);
        Assert.True((fusedTrain - ScaledDotProductAttention.Fused(q, k, v)).abs().max().item<float>() > 1e-3, "fused dropout changes the output");
    }

    [Fact]
    public void MismatchedFeatureSizesNameBothTensors()
    {
        var e = Assert.Throws<ArgumentException>(() => ScaledDotProductAttention.Compute(randn(2, 5, 8), randn(2, 5, 7), randn(2, 5, 7)));
        Assert.Contains("query [2, 5, 8]", e.Message);
        Assert.Contains("key [2, 5, 7]", e.Message);
        e = Assert.Throws<ArgumentException>(() => ScaledDotProductAttention.Compute(randn(2, 5, 8), randn(2, 5, 8), randn(2, 6, 8)));
        Assert.Contains("value [2, 6, 8]", e.Message);
        e = Assert.Throws<ArgumentException>(() => ScaledDotProductAttention.Compute(randn(8), randn(5, 8), randn(5, 8)));
        Assert.Contains("[..., seq, d]", e.Message);
    }

    [Fact]
    public void WrongMaskShapeOrDTypeIsRejectedWithTheExpectedForm()
    {
        Tensor q = randn(2, 3, 5, 8);
        var e = Assert.Throws<ArgumentException>(() => ScaledDotProductAttention.Compute(q, q, q, ones(4, 4, dtype: ScalarType.Bool)));
        Assert.Contains("attn_mask [4, 4]", e.Message);
        Assert.Contains("expected [5, 5]", e.Message);
        Assert.Contains("[2, 3, 5, 5]", e.Message);
        e = Assert.Throws<ArgumentException>(() => ScaledDotProductAttention.Fused(q, q, q, zeros(5, 5, dtype: ScalarType.Int64)));
        Assert.Contains("Int64", e.Message);
        Assert.Contains("Bool (true = masked out)", e.Message);
        e = Assert.Throws<ArgumentException>(() => ScaledDotProductAttention.Compute(q, q, q, keyPaddingMask: zeros(3, 5, dtype: ScalarType.Bool)));
        Assert.Contains("key_padding_mask [3, 5]", e.Message);
        Assert.Contains("expected [batch, key_len] = [2, 5]", e.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => ScaledDotProductAttention.Compute(q, q, q, dropout: 1.0));
    }

    [Fact]
    public void KeyPaddingFromLengthsMarksTheTail()
    {
        var m = AttentionMask.KeyPaddingFromLengths(new long[] { 5, 3 }, 5);
        var g = Golden.Load("sdpa");
        Assert.True(Golden.Same(Golden.Bool(g["input.key_padding_mask"]), m));
        Assert.Throws<ArgumentOutOfRangeException>(() => AttentionMask.KeyPaddingFromLengths(new long[] { 6 }, 5));
    }
}
