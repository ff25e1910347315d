using System.Globalization;
using TorchSharp;

namespace Workbook;

/// <summary>What a checked claim found; displays as one line ("✓ claim: measured 0.912 ≥ 0.88 (Full)").</summary>
/// <param name="Statement">The claim as the prose makes it.</param>
/// <param name="Relation">The check: "≥ 0.88", "≤ 0.05", "in [1, 2]", "= 0.296 ± 0.0005", or "holds".</param>
/// <param name="Measured">The measured value as shown.</param>
/// <param name="Held">The claim held.</param>
/// <param name="Checked">False when the profile has no threshold for it (Quick without a Quick threshold).</param>
/// <param name="Profile">The profile it ran in.</param>
public sealed record ClaimResult(string Statement, string Relation, string Measured, bool Held, bool Checked, RunProfile Profile)
{
    /// <summary>One line for the notebook.</summary>
    public override string ToString() => Checked
        ? $"{(Held ? "✓" : "✗")} {Statement}: measured {Measured} {Relation} ({Profile})"
        : $"– {Statement}: measured {Measured}; not checked in {Profile} (the claim is {Relation} in Full)";
}

/// <summary>A claim of the prose that did not hold. The run stops here, naming the claim, the threshold and the value.</summary>
public sealed class ClaimFailedException(ClaimResult result)
    : Exception($"Claim failed in {result.Profile}: \"{result.Statement}\" needs {result.Relation}, measured {result.Measured}.")
{
    /// <summary>The failed check.</summary>
    public ClaimResult Result { get; } = result;
}

/// <summary>
/// Checks a quantitative claim of a notebook's prose where it is computed, the same way in every chapter:
/// <c>Claim.AtLeast("the CNN beats the MLP by 3 points", cnn - mlp, full: 0.03, quick: 0.0)</c>.
/// In Full a claim that fails throws <see cref="ClaimFailedException"/>, so the run fails with the claim, the
/// threshold and the value. Quick runs (small data, few epochs) check the Quick threshold when one is given, and
/// otherwise only show the value, marked as not checked.
/// </summary>
public static class Claim
{
    /// <summary>
    /// max |a − b| over all elements, computed in float64: the measured value of an "equal up to rounding" claim,
    /// <c>Claim.AtMost("LayerNorm by hand equals nn.LayerNorm", Claim.MaxDiff(byHand, ln.forward(x)), full: 1e-5)</c>.
    /// </summary>
    /// <param name="a">A tensor.</param>
    /// <param name="b">A tensor of the same shape (no broadcasting: a shape mismatch is a bug in the comparison).</param>
    /// <exception cref="ArgumentException">The shapes differ.</exception>
    public static double MaxDiff(torch.Tensor a, torch.Tensor b)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        if (!a.shape.SequenceEqual(b.shape))
            throw new ArgumentException($"MaxDiff compares tensors of one shape: a is [{string.Join(", ", a.shape)}], b is [{string.Join(", ", b.shape)}].", nameof(b));
        if (a.numel() == 0) return 0;
        using var scope = torch.NewDisposeScope();
        return (a.to_type(torch.ScalarType.Float64) - b.to_type(torch.ScalarType.Float64)).abs().max().item<double>();
    }

    /// <summary>measured ≥ threshold.</summary>
    /// <param name="statement">The claim as the prose makes it.</param>
    /// <param name="measured">The value computed in the notebook.</param>
    /// <param name="full">The threshold in Full.</param>
    /// <param name="quick">The threshold in Quick, or null to leave the claim unchecked there.</param>
    public static ClaimResult AtLeast(string statement, double measured, double full, double? quick = null) =>
        Check(statement, measured, Pick(full, quick), full, t => $"≥ {F(t)}", (m, t) => m >= t);

    /// <summary>measured ≤ threshold.</summary>
    /// <param name="statement">The claim as the prose makes it.</param>
    /// <param name="measured">The value computed in the notebook.</param>
    /// <param name="full">The threshold in Full.</param>
    /// <param name="quick">The threshold in Quick, or null to leave the claim unchecked there.</param>
    public static ClaimResult AtMost(string statement, double measured, double full, double? quick = null) =>
        Check(statement, measured, Pick(full, quick), full, t => $"≤ {F(t)}", (m, t) => m <= t);

    /// <summary>low ≤ measured ≤ high.</summary>
    /// <param name="statement">The claim as the prose makes it.</param>
    /// <param name="measured">The value computed in the notebook.</param>
    /// <param name="low">Lower bound in Full.</param>
    /// <param name="high">Upper bound in Full.</param>
    /// <param name="quick">Bounds in Quick, or null to leave the claim unchecked there.</param>
    public static ClaimResult Between(string statement, double measured, double low, double high, (double Low, double High)? quick = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(statement);
        var profile = Notebook.Profile;
        var active = profile == RunProfile.Full ? (low, high) : quick;
        if (active is not (var lo, var hi))
            return new ClaimResult(statement, $"in [{F(low)}, {F(high)}]", F(measured), true, false, profile);
        var result = new ClaimResult(statement, $"in [{F(lo)}, {F(hi)}]", F(measured), measured >= lo && measured <= hi, true, profile);
        return result.Held ? result : throw new ClaimFailedException(result);
    }

    /// <summary>|measured − expected| ≤ tolerance, in every profile (for exact results: hand computations, identities).</summary>
    /// <param name="statement">The claim as the prose makes it.</param>
    /// <param name="measured">The value computed in the notebook.</param>
    /// <param name="expected">The value the prose states.</param>
    /// <param name="tolerance">Largest allowed difference.</param>
    public static ClaimResult Close(string statement, double measured, double expected, double tolerance) =>
        Check(statement, measured, tolerance, tolerance, t => $"= {F(expected)} ± {F(t)}", (m, t) => Math.Abs(m - expected) <= t);

    /// <summary>A claim that is true or false, in every profile: <c>Claim.That("greedy repeats itself", loops &gt; 0, $"{loops} loops")</c>.</summary>
    /// <param name="statement">The claim as the prose makes it.</param>
    /// <param name="holds">Whether it holds.</param>
    /// <param name="measured">What was measured, for the reader (and the error).</param>
    public static ClaimResult That(string statement, bool holds, string measured)
    {
        var result = new ClaimResult(statement, "holds", measured, holds, true, Notebook.Profile);
        return holds ? result : throw new ClaimFailedException(result);
    }

    static double? Pick(double full, double? quick) => Notebook.Profile == RunProfile.Full ? full : quick;

    static ClaimResult Check(string statement, double measured, double? threshold, double full, Func<double, string> relation, Func<double, double, bool> holds)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(statement);
        var profile = Notebook.Profile;
        if (threshold is not { } t)
            return new ClaimResult(statement, relation(full), F(measured), true, false, profile);
        bool held = !double.IsNaN(measured) && holds(measured, t);
        var result = new ClaimResult(statement, relation(t), F(measured), held, true, profile);
        return held ? result : throw new ClaimFailedException(result);
    }

    // Whole numbers (parameter counts, sizes) in full, so an exact count reads as one; everything else to 4 digits.
    static string F(double v) => Math.Abs(v) < 1e15 && v == Math.Floor(v)
        ? v.ToString("#,0", CultureInfo.InvariantCulture)
        : v.ToString("G4", CultureInfo.InvariantCulture);
}
