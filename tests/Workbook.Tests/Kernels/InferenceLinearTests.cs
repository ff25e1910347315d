using TorchSharp;
using Workbook.Gpt;
using Workbook.Runtime.Kernels;
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
        var y = MatVec.Linear(x, wT.t(), null, 1);
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
    public void ChoosesPlainLinearForGradientsOtherDtypesAndSmallOrHugeManyRowProducts()
    {
        var w = randn(64, 32, requires_grad: true);
        var one = randn(1, 32);
        // With gradients the product must stay on autograd's path.
        Assert.False(InferenceLinear.Applies(one, w, null));
        var y = InferenceLinear.Forward(one, w);
        Assert.True(y.requires_grad);
        y.sum().backward();
        Assert.True(RelErr(w.grad!, one.expand(64, 32).to(ScalarType.Float64)) < 1e-7); // d(sum xWᵀ)/dW = x in every row

        using var _ = no_grad();
        Assert.True(InferenceLinear.Applies(one, w, null));
        Assert.False(InferenceLinear.Applies(one.to(ScalarType.Float64), w.to(ScalarType.Float64), null));
        Assert.Equal(LinearPath.Blas, InferenceLinear.Choose(randn(8, 32), w).Path);                 // too few rows for oneDNN
        Assert.Equal(LinearPath.Blas, InferenceLinear.Choose(randn(64, 768), randn(50257, 768)).Path); // LM-head-sized weight
        foreach (var x in new[] { one, randn(4, 16, 32) })
            Assert.True(RelErr(InferenceLinear.Forward(x, w), Reference(x, w, null)) < 1e-5);
    }

    [MatVecFact]
    public void OneRowChoiceIsTheFastestMeasuredCandidateAndIsCached()
    {
        using var _ = no_grad();
        var w = randn(1024, 512); // large enough for the thread split to be a candidate
        var choice = InferenceLinear.Choose(randn(1, 512), w);
        Assert.Equal(1, choice.Rows);
        Assert.Contains("blas", choice.Candidates.Keys);
        Assert.Contains("matvec×1", choice.Candidates.Keys);
        Assert.All(choice.Candidates.Values, ms => Assert.True(ms > 0));
        // The kernel is used only when it beat F.linear's median by the margin; otherwise F.linear.
        if (choice.Path == LinearPath.MatVec)
            Assert.True(choice.Candidates[$"matvec×{choice.Threads}"] * InferenceLinear.MinSpeedup <= choice.Candidates["blas"]);
        else
            Assert.All(choice.Candidates.Where(c => c.Key != "blas"), c => Assert.True(c.Value * InferenceLinear.MinSpeedup > choice.Candidates["blas"]));
        Assert.Same(choice, InferenceLinear.Choose(randn(1, 1, 512), randn(1024, 512))); // same shape: measured once
    }

    [Fact]
    public void MeasuringLeavesTheGlobalGeneratorAlone()
    {
        manual_seed(5);
        var expected = randn(4);
        manual_seed(5);
        using (no_grad())
        {
            InferenceLinear.Choose(zeros(1, 48), zeros(40, 48));
            InferenceLinear.Choose(zeros(48, 96), zeros(72, 96));
        }
        Assert.Equal(expected.data<float>().ToArray(), randn(4).data<float>().ToArray());
    }

    static GptModel TinyGpt()
    {
        manual_seed(7);
        var model = new GptModel(new GptConfig { VocabSize = 300, MaxLength = 64, NumLayers = 2, NumHeads = 4, DModel = 64 });
        model.eval();
        return model;
    }

    [Fact]
    public void TheAcceleratorSwapsLayersInAndOutKeepingParametersAndStateDict()
    {
        using var model = TinyGpt();
        var keys = model.state_dict().Keys.ToList();
        var handles = model.parameters().Select(p => p.Handle).ToList();
        Assert.Empty(model.modules().OfType<CpuLinear>());
        using (var session = model.ForCpuInference())
        {
            Assert.Equal(2 * 4 + 1, session.Layers); // four linear layers per block, and the tied LM head
            Assert.Empty(session.Skipped);
            Assert.Equal(session.Layers, model.modules().OfType<CpuLinear>().Count());
            Assert.Equal(keys, model.state_dict().Keys.ToList());           // same names, same order
            Assert.Equal(handles, model.parameters().Select(p => p.Handle).ToList()); // the very same parameters
            using var nested = model.ForCpuInference();                     // an inner session swaps nothing more
            Assert.Equal(session.Layers, nested.Layers);
        }
        Assert.Empty(model.modules().OfType<CpuLinear>());
        Assert.Equal(keys, model.state_dict().Keys.ToList());
        Assert.Equal(handles, model.parameters().Select(p => p.Handle).ToList());
        var ids = randint(300, [1, 5]);
        using var _ = no_grad();
        Assert.Equal(new long[] { 1, 5, 300 }, model.forward(ids).shape); // the restored model still works
    }

    [Fact]
    public void DecodeStepRunsLibtorchOnOneThreadAndRestoresTheCount()
    {
        int before = get_num_threads();
        using var model = TinyGpt();
        try
        {
            set_num_threads(2);
            using var session = model.ForCpuInference();
            using (var step = session.DecodeStep())
            {
                if (MatVec.IsSupported && CpuInference.Allowed)
                {
                    Assert.NotNull(step);
                    Assert.Equal(1, get_num_threads());
                    Assert.Null(session.DecodeStep()); // nested: the outer step already holds the count
                }
            }
            Assert.Equal(2, get_num_threads());
        }
        finally { set_num_threads(before); }
    }

    [Fact]
    public void GptLogitsAndGreedyTokensAgreeWithTheAcceleratorOnAndOff()
    {
        // 40 positions: the prompt goes through the many-row path (oneDNN where it measured faster), decoding through
        // MatVec or F.linear, whichever measured faster per shape.
        using var model = TinyGpt();
        var ids = randint(300, [1, 40]);
        using var _ = no_grad();
        var off = model.forward(ids);
        Tensor on;
        using (model.ForCpuInference()) on = model.forward(ids);
        Assert.True(RelErr(on, off.to(ScalarType.Float64)) < 1e-5);
        var prompt = ids[0].data<long>().Select(v => (int)v).ToArray();
        var options = GenerationOptions.Greedy with { MaxNewTokens = 12, UseKvCache = true, StopAtEndOfText = false };
        long[] Tokens(bool kernels) => TextGenerator.GenerateIds(model, [prompt], options with { CpuKernels = kernels }, eosId: null).Select(s => s.Tokens[0]).ToArray();
        Assert.Equal(Tokens(false), Tokens(true));
        Assert.Empty(model.modules().OfType<CpuLinear>()); // the generator swapped the accelerator out again
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
