using TorchSharp;
using Workbook.Gpt;
using Workbook.Kernels;
using static TorchSharp.torch;

namespace Workbook.Tests.Kernels;

/// <summary>A fact that needs the MatVec kernel's instruction sets; skipped, with the reason, on CPUs without them.</summary>
public sealed class MatVecFactAttribute : FactAttribute
{
    public MatVecFactAttribute() { if (!MatVec.IsSupported) Skip = "The CPU has neither AVX-512F nor AVX2 with FMA."; }
}

/// <summary>A theory that needs the MatVec kernel's instruction sets.</summary>
public sealed class MatVecTheoryAttribute : TheoryAttribute
{
    public MatVecTheoryAttribute() { if (!MatVec.IsSupported) Skip = "The CPU has neither AVX-512F nor AVX2 with FMA."; }
}

public class InferenceLinearTests
{
    /// <summary>The independent reference: the same product in float64.</summary>
    static Tensor Reference(Tensor x, Tensor w, Tensor? b)
    {
        var y = x.to(ScalarType.Float64).matmul(w.to(ScalarType.Float64).t());
        return b is null ? y : y + b.to(ScalarType.Float64);
    }

    /// <summary>Largest error relative to the largest reference value.</summary>
    static double RelErr(Tensor actual, Tensor reference)
    {
        Assert.Equal(reference.shape, actual.shape);
        return (actual.to(ScalarType.Float64) - reference).abs().max().item<double>() / reference.abs().max().item<double>();
    }

    static T WithKernels<T>(bool enabled, Func<T> f)
    {
        bool was = InferenceLinear.Enabled;
        InferenceLinear.Enabled = enabled;
        try { return f(); }
        finally { InferenceLinear.Enabled = was; }
    }

    [MatVecTheory]
    [InlineData(1, 1)]
    [InlineData(3, 7)]      // fewer rows than one block of four, K shorter than a vector
    [InlineData(5, 17)]     // a ragged row tail and a ragged feature tail
    [InlineData(33, 16)]
    [InlineData(2304, 768)] // GPT-2's c_attn
    [InlineData(768, 3077)] // split over threads, K not a multiple of 16
    [InlineData(50257, 64)]
    public void MatVecEqualsFloat64Reference(int n, int k)
    {
        manual_seed(n * 31 + k);
        var w = randn(n, k);
        var b = randn(n);
        var x = randn(1, 1, k);
        bool had512 = MatVec.UseAvx512;
        try
        {
            // Both loops: the 512-bit one where the CPU has it, and the AVX2 one every supported CPU has.
            foreach (var use512 in had512 ? new[] { true, false } : new[] { false })
            {
                MatVec.UseAvx512 = use512;
                foreach (int threads in new[] { 1, 2, 3 })
                {
                    var y = MatVec.Linear(x, w, b, threads);
                    Assert.Equal(new long[] { 1, 1, n }, y.shape);
                    Assert.True(RelErr(y, Reference(x, w, b)) < 1e-5, $"AVX-512 {use512}, threads {threads}");
                    Assert.True(RelErr(MatVec.Linear(x.view(k), w, null, threads), Reference(x.view(k), w, null)) < 1e-5);
                }
            }
        }
        finally { MatVec.UseAvx512 = had512; }
    }

    [MatVecFact]
    public void MatVecReadsStridedInputsThroughContiguousCopies()
    {
        manual_seed(3);
        var wT = randn(96, 40);           // w = wT.t() is a non-contiguous [40, 96] view
        var x = randn(96, 2).select(1, 1); // a strided row
        var y = MatVec.Linear(x, wT.t());
        Assert.True(RelErr(y, Reference(x, wT.t(), null)) < 1e-5);
    }

    [MatVecFact]
    public void MatVecRejectsBadInputWithTheShapes()
    {
        var w = zeros(8, 4);
        var e = Assert.Throws<ArgumentException>(() => MatVec.Linear(zeros(1, 5), w));
        Assert.Equal("x", e.ParamName);
        Assert.Contains("[1, 5]", e.Message);
        Assert.Contains("in_features 4", e.Message);
        e = Assert.Throws<ArgumentException>(() => MatVec.Linear(zeros(2, 4), w));
        Assert.Contains("single row", e.Message);
        Assert.Contains("2 rows", e.Message);
        e = Assert.Throws<ArgumentException>(() => MatVec.Linear(zeros(1, 4), w, zeros(7)));
        Assert.Equal("bias", e.ParamName);
        Assert.Contains("[8]", e.Message);
        e = Assert.Throws<ArgumentException>(() => MatVec.Linear(zeros(1, 4, dtype: ScalarType.Float64), w));
        Assert.Contains("float32", e.Message);
        e = Assert.Throws<ArgumentException>(() => InferenceLinear.Forward(zeros(3, 5), w));
        Assert.Equal("x", e.ParamName);
        Assert.Contains("[3, 5]", e.Message);
        Assert.Contains("[8, 4]", e.Message);
    }

    [Fact]
    public void OneDnnPathEqualsFloat64Reference()
    {
        manual_seed(11);
        var w = randn(72, 96);
        var b = randn(72);
        var x = randn(2, 40, 96);
        using var _ = no_grad();
        var y = InferenceLinear.Conv1x1(x, w, b);
        Assert.Equal(new long[] { 2, 40, 72 }, y.shape);
        Assert.True(y.is_contiguous());
        Assert.True(RelErr(y, Reference(x, w, b)) < 1e-5);
        Assert.True(RelErr(InferenceLinear.Conv1x1(x, w, null), Reference(x, w, null)) < 1e-5);
    }

    [Fact]
    public void ChoosesByGradientsDeviceDtypeAndRows()
    {
        var w = randn(64, 32, requires_grad: true);
        var one = randn(1, 32);
        var many = randn(4, 16, 32); // 64 rows
        // With gradients the layer must stay on autograd's path.
        Assert.Equal(LinearPath.Blas, InferenceLinear.Choose(one, w));
        var y = InferenceLinear.Forward(one, w);
        Assert.True(y.requires_grad);
        y.sum().backward();
        Assert.True(RelErr(w.grad!, one.expand(64, 32).to(ScalarType.Float64)) < 1e-7); // d(sum xWᵀ)/dW = x in every row

        using var _ = no_grad();
        Assert.Equal(MatVec.IsSupported ? LinearPath.MatVec : LinearPath.Blas, InferenceLinear.Choose(one, w));
        Assert.Equal(InferenceLinear.Calibration.UseOneDnn ? LinearPath.OneDnn : LinearPath.Blas, InferenceLinear.Choose(many, w));
        Assert.Equal(LinearPath.Blas, InferenceLinear.Choose(randn(8, 32), w)); // too few rows for oneDNN
        Assert.Equal(LinearPath.Blas, InferenceLinear.Choose(one.to(ScalarType.Float64), w.to(ScalarType.Float64)));
        Assert.Equal(LinearPath.Blas, InferenceLinear.Choose(randn(64, 768), randn(50257, 768))); // LM-head-sized weight
        Assert.Equal(LinearPath.Blas, WithKernels(false, () => InferenceLinear.Choose(one, w)));
        foreach (var x in new[] { one, many })
            Assert.True(RelErr(InferenceLinear.Forward(x, w), Reference(x, w, null)) < 1e-5);
    }

    [Fact]
    public void CalibrationLeavesTheGlobalGeneratorAlone()
    {
        manual_seed(5);
        var expected = randn(4);
        manual_seed(5);
        _ = InferenceLinear.Calibration; // measured once per process; constant inputs
        Assert.Equal(expected.data<float>().ToArray(), randn(4).data<float>().ToArray());
        Assert.True(InferenceLinear.Calibration.BlasMs > 0 && InferenceLinear.Calibration.OneDnnMs > 0);
    }

    [Fact]
    public void DecodeScopeRunsLibtorchOnOneThreadAndRestoresTheCount()
    {
        int before = get_num_threads();
        try
        {
            set_num_threads(2);
            using (var scope = InferenceLinear.DecodeScope())
            {
                if (MatVec.IsSupported && InferenceLinear.Enabled)
                {
                    Assert.NotNull(scope);
                    Assert.Equal(1, get_num_threads());
                    Assert.Null(InferenceLinear.DecodeScope()); // nested: the outer scope already holds the count
                }
            }
            Assert.Equal(2, get_num_threads());
            Assert.Null(WithKernels(false, InferenceLinear.DecodeScope));
        }
        finally { set_num_threads(before); }
    }

    [Fact]
    public void GptLogitsAndGreedyTokensAgreeWithKernelsOnAndOff()
    {
        // 40 positions: the prompt goes through the many-row path (oneDNN where calibrated), decoding through MatVec.
        manual_seed(7);
        using var model = new GptModel(new GptConfig { VocabSize = 300, MaxLength = 64, NumLayers = 2, NumHeads = 4, DModel = 64 });
        model.eval();
        var ids = randint(300, [1, 40]);
        using var _ = no_grad();
        var on = WithKernels(true, () => model.forward(ids));
        var off = WithKernels(false, () => model.forward(ids));
        Assert.True(RelErr(on, off.to(ScalarType.Float64)) < 1e-5);
        var prompt = ids[0].data<long>().Select(v => (int)v).ToArray();
        var options = GenerationOptions.Greedy with { MaxNewTokens = 12, UseKvCache = true, StopAtEndOfText = false };
        long[] Tokens() => TextGenerator.GenerateIds(model, [prompt], options, eosId: null).Select(s => s.Tokens[0]).ToArray();
        Assert.Equal(WithKernels(false, Tokens), WithKernels(true, Tokens));
    }
}

public class SpinTeamTests
{
    [Fact]
    public void RunsEveryPartOnceForManyJobsInARow()
    {
        var team = new SpinTeam(2); // a private team: the shared one stays sized for this machine's cores
        var hits = new int[3];
        for (int job = 0; job < 2000; job++)
            team.Run(3, (part, parts) => { Assert.Equal(3, parts); Interlocked.Increment(ref hits[part]); });
        Assert.Equal(new[] { 2000, 2000, 2000 }, hits);
    }

    [Fact]
    public void RethrowsAWorkersFailureAndKeepsWorking()
    {
        var team = new SpinTeam(1);
        var e = Assert.Throws<AggregateException>(() => team.Run(2, (part, _) => { if (part == 1) throw new InvalidOperationException("part 1 failed"); }));
        Assert.Equal("part 1 failed", e.InnerException!.Message);
        int sum = 0;
        team.Run(2, (part, _) => Interlocked.Add(ref sum, part + 1));
        Assert.Equal(3, sum);
        Assert.Throws<ArgumentOutOfRangeException>(() => team.Run(team.Threads + 1, (_, _) => { }));
    }
}
