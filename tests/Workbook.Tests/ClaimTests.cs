namespace Workbook.Tests;

/// <summary>The claim guard every chapter uses: fails the run in Full, uses the Quick threshold or reports "not checked".</summary>
public sealed class ClaimTests : IDisposable
{
    readonly string? _saved = Environment.GetEnvironmentVariable("WORKBOOK_PROFILE");
    public void Dispose() => Environment.SetEnvironmentVariable("WORKBOOK_PROFILE", _saved);
    static void Profile(string p) => Environment.SetEnvironmentVariable("WORKBOOK_PROFILE", p);

    [Fact]
    public void FullFailsWithTheClaimTheThresholdAndTheValue()
    {
        Profile("Full");
        var ok = Claim.AtLeast("the CNN reaches 88 % test accuracy", 0.912, full: 0.88, quick: 0.5);
        Assert.True(ok.Held && ok.Checked);
        Assert.Equal("✓ the CNN reaches 88 % test accuracy: measured 0.912 ≥ 0.88 (Full)", ok.ToString());
        var e = Assert.Throws<ClaimFailedException>(() => Claim.AtLeast("the CNN reaches 88 % test accuracy", 0.871, full: 0.88, quick: 0.5));
        Assert.Equal("Claim failed in Full: \"the CNN reaches 88 % test accuracy\" needs ≥ 0.88, measured 0.871.", e.Message);
        Assert.Throws<ClaimFailedException>(() => Claim.AtMost("loss below 0.05", 0.06, full: 0.05));
        Assert.Throws<ClaimFailedException>(() => Claim.Between("ratio near 1", 1.3, 0.9, 1.1));
        Assert.Throws<ClaimFailedException>(() => Claim.AtLeast("NaN never passes", double.NaN, full: 0));
        Assert.Equal("in [0.9, 1.1]", Claim.Between("ratio near 1", 1.05, 0.9, 1.1).Relation);
        // Whole numbers show in full, so an exact count is visibly exact; others keep 4 significant digits.
        Assert.Equal("✓ fc1 holds 205,520,896 weights: measured 205,520,896 = 205,520,896 ± 0 (Full)",
            Claim.Close("fc1 holds 205,520,896 weights", 205_520_896, 205_520_896, 0).ToString());
        Assert.Equal("✓ share: measured 0.9996 ≥ 0.999 (Full)", Claim.AtLeast("share", 0.99960123, full: 0.999).ToString());
    }

    [Fact]
    public void QuickUsesItsOwnThresholdOrLeavesTheClaimUnchecked()
    {
        Profile("Quick");
        Assert.True(Claim.AtLeast("accuracy", 0.6, full: 0.88, quick: 0.5).Checked);
        Assert.Throws<ClaimFailedException>(() => Claim.AtLeast("accuracy", 0.4, full: 0.88, quick: 0.5));
        var skipped = Claim.AtLeast("accuracy", 0.4, full: 0.88);
        Assert.False(skipped.Checked);
        Assert.Equal("– accuracy: measured 0.4; not checked in Quick (the claim is ≥ 0.88 in Full)", skipped.ToString());
        Assert.False(Claim.Between("ratio", 5, 0.9, 1.1).Checked);
        Assert.Throws<ClaimFailedException>(() => Claim.Between("ratio", 5, 0.9, 1.1, quick: (0, 2)));
    }

    [Fact]
    public void ExactClaimsAreCheckedInEveryProfile()
    {
        foreach (var p in new[] { "Quick", "Full" })
        {
            Profile(p);
            Assert.True(Claim.Close("CE of [0.8, 0.2] against [1, 0]", -Math.Log(0.8), 0.2231, 5e-5).Held);
            Assert.Throws<ClaimFailedException>(() => Claim.Close("the article's −0.223", -Math.Log(0.8), -0.223, 5e-4));
            Assert.Throws<ClaimFailedException>(() => Claim.That("greedy repeats itself", false, "0 loops"));
        }
    }

    [Fact]
    public void MaxDiffIsTheLargestAbsoluteDifferenceInFloat64AndRefusesMismatchedShapes()
    {
        // By hand: |1 − 1.5| = 0.5, |−2 − 2| = 4, |3 − 3| = 0 → 4.
        var a = TorchSharp.torch.tensor(new float[] { 1, -2, 3 });
        var b = TorchSharp.torch.tensor(new float[] { 1.5f, 2, 3 });
        Assert.Equal(4.0, Claim.MaxDiff(a, b));
        Assert.Equal(4.0, Claim.MaxDiff(b, a));
        Assert.Equal(0.0, Claim.MaxDiff(a, a.clone()));
        // float64: a float32 difference below float32's resolution at 1e8 is not lost.
        var big = TorchSharp.torch.tensor(new double[] { 1e8 + 0.25 });
        Assert.Equal(0.25, Claim.MaxDiff(big, TorchSharp.torch.tensor(new double[] { 1e8 })));
        // Mixed dtypes compare by value.
        Assert.Equal(0.5, Claim.MaxDiff(TorchSharp.torch.tensor(new double[] { 2.5 }), TorchSharp.torch.tensor(new float[] { 2 })));
        var e = Assert.Throws<ArgumentException>(() => Claim.MaxDiff(TorchSharp.torch.zeros(2, 3), TorchSharp.torch.zeros(3)));
        Assert.Equal("b", e.ParamName);
        Assert.Contains("a is [2, 3], b is [3]", e.Message);
        Assert.Equal(0.0, Claim.MaxDiff(TorchSharp.torch.zeros(0), TorchSharp.torch.zeros(0)));
    }
}

