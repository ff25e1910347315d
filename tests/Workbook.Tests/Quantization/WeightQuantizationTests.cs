using TorchSharp;
using Workbook.Data;
using Workbook.Gpt;
using Workbook.Runtime.Kernels;
using Workbook.Quantization;
using Workbook.Tests.Kernels;
using static TorchSharp.torch;

namespace Workbook.Tests.Quantization;

public class WeightQuantizationTests
{
    static double MaxAbs(Tensor t) => t.abs().max().to(ScalarType.Float64).item<double>();

    [Fact]
    public void Int8IsSymmetricPerRowAndWithinHalfAStepOfEveryWeight()
    {
        manual_seed(1);
        var w = randn(37, 53) * torch.linspace(0.01, 3, 37).unsqueeze(1); // rows of very different sizes
        w[5] = zeros(53);                                                   // an all-zero row
        var (q, s) = WeightQuantization.QuantizeInt8(w);
        Assert.Equal(ScalarType.Int8, q.dtype);
        Assert.Equal(new long[] { 37 }, s.shape);
        // The largest weight of each row maps to ±127 exactly: scale = max |w| / 127.
        var rowMax = w.abs().amax([1]);
        for (int n = 0; n < 37; n++)
        {
            if (n == 5) { Assert.Equal(0, MaxAbs(q[n].to(ScalarType.Float32))); continue; }
            Assert.Equal(rowMax[n].item<float>() / 127, s[n].item<float>(), 6);
            Assert.Equal(127, MaxAbs(q[n].to(ScalarType.Float32)));
        }
        // |W − Ŵ| ≤ s_n / 2 (plus float32 rounding of the product s_n · q).
        var err = (w - WeightQuantization.DequantizeInt8(q, s)).abs();
        Assert.True((err - s.unsqueeze(1) * (0.5 + 1e-5)).max().item<float>() <= 0, "an element moved by more than half a step");
        Assert.Throws<ArgumentException>(() => WeightQuantization.QuantizeInt8(randn(3)));
    }

    [Fact]
    public void BFloat16KeepsEightSignificantBits()
    {
        manual_seed(2);
        var w = randn(64, 64) * 1e-3;
        var b = WeightQuantization.ToBFloat16(w);
        Assert.Equal(ScalarType.BFloat16, b.dtype);
        var rel = ((b.to(ScalarType.Float32) - w).abs() / w.abs()).max().item<float>();
        Assert.True(rel <= Math.Pow(2, -8), $"relative error {rel}");
        Assert.True(rel > Math.Pow(2, -10)); // it did round
    }

    [MatVecTheory]
    [InlineData(1, 1)]
    [InlineData(5, 17)]      // a ragged row tail and a ragged feature tail
    [InlineData(2304, 768)]  // GPT-2's c_attn, split over threads
    [InlineData(50257, 128)] // the shipped model's LM head
    public void QuantizedKernelsEqualTheDequantizedProduct(int n, int k)
    {
        manual_seed(n + k);
        var w = randn(n, k) * 0.05;
        var bias = randn(n);
        var x = randn(1, k);
        var (q, s) = WeightQuantization.QuantizeInt8(w);
        var w16 = WeightQuantization.ToBFloat16(w);
        var refInt8 = x.to(ScalarType.Float64).matmul(WeightQuantization.DequantizeInt8(q, s).to(ScalarType.Float64).t()) + bias.to(ScalarType.Float64);
        var refBf16 = x.to(ScalarType.Float64).matmul(w16.to(ScalarType.Float64).t()) + bias.to(ScalarType.Float64);
        bool had512 = MatVec.UseAvx512;
        try
        {
            foreach (var use512 in had512 ? new[] { true, false } : new[] { false })
            {
                MatVec.UseAvx512 = use512;
                foreach (int threads in new[] { 1, 2, 3 })
                {
                    Assert.True(MaxAbs(MatVec.LinearInt8(x, q, s, bias, threads) - refInt8) <= 1e-5 * MaxAbs(refInt8), $"int8, AVX-512 {use512}, threads {threads}");
                    Assert.True(MaxAbs(MatVec.LinearBFloat16(x, w16, bias, threads) - refBf16) <= 1e-5 * MaxAbs(refBf16), $"bf16, AVX-512 {use512}, threads {threads}");
                }
            }
        }
        finally { MatVec.UseAvx512 = had512; }
        var e = Assert.Throws<ArgumentException>(() => MatVec.LinearInt8(x, q, s.narrow(0, 0, n - 1), bias));
        Assert.Equal("scale", e.ParamName);
    }

    [Fact]
    public void AQuantizedLayerStaysWithinTheBoundDerivedFromItsScales()
    {
        manual_seed(3);
        using var layer = nn.Linear(96, 40);
        using var _ = no_grad();
        var q = QuantizedLinear.FromLinear(layer, WeightFormat.Int8);
        foreach (var x in new[] { randn(1, 96), randn(3, 7, 96) }) // one row (the kernel) and many (dequantized per call)
        {
            var exact = layer.forward(x);
            var bound = WeightQuantization.Int8OutputBound(x, q.Scale!);
            var err = (q.forward(x) - exact).abs();
            Assert.True((err - bound - 1e-5).max().item<float>() <= 0, "an output left the bound (s_n / 2)·‖x‖₁");
            Assert.True(err.max().item<float>() > 0); // and it is a real quantization
        }
    }

    static GptModel Tiny(int seed)
    {
        manual_seed(seed);
        var m = new GptModel(new GptConfig { VocabSize = 200, MaxLength = 32, NumLayers = 2, NumHeads = 2, DModel = 32 });
        m.eval();
        return m;
    }

    [Theory]
    [InlineData(WeightFormat.Int8)]
    [InlineData(WeightFormat.BFloat16)]
    public void AQuantizedGptComputesTheFloatGptWithTheDequantizedWeights(WeightFormat format)
    {
        using var quantized = Tiny(4);
        using var reference = Tiny(4);
        Assert.Equal(2 * 4 + 1, quantized.QuantizeWeights(format)); // every linear layer, the tied LM head included
        Assert.Empty(quantized.modules().OfType<TorchSharp.Modules.Linear>());
        Assert.Equal(reference.TokenEmbedding.data<float>().ToArray(), quantized.TokenEmbedding.data<float>().ToArray()); // the lookup keeps float32
        using var _ = no_grad();
        // The reference: the float GPT whose linear weights are replaced by the dequantized ones.
        var dequantized = quantized.named_modules().Where(m => m.module is QuantizedLinear).ToDictionary(m => m.name, m => ((QuantizedLinear)m.module).Dequantize());
        foreach (var (name, p) in reference.named_parameters())
            if (name.EndsWith(".weight", StringComparison.Ordinal) && dequantized.TryGetValue(name[..^".weight".Length], out var w)) p.copy_(w);
        var headQ = dequantized["lm_head"]; // the head's own quantized copy; the reference's head stays tied to the float embedding
        var ids = randint(200, [2, 20]);
        var hiddenR = new List<Tensor>();
        reference.Forward(ids, hiddenStates: hiddenR);
        var expected = hiddenR[^1].to(ScalarType.Float64).matmul(headQ.to(ScalarType.Float64).t());
        var hidden = new List<Tensor>();
        var actual = quantized.Forward(ids, hiddenStates: hidden); // many rows: dequantized per call
        Assert.True(MaxAbs(actual - expected) <= 1e-5 * MaxAbs(expected));
        // Token by token through the cache: one row, the in-kernel dequantization; the same logits as the whole sequence.
        using var cache = new KvCache(quantized.Config, 1, 32);
        quantized.Forward(ids[..1, ..5], cache);
        var step = quantized.Forward(ids[..1, 5..6], cache);
        var whole = actual[..1, 5..6];
        Assert.True(MaxAbs(step - whole) <= 1e-5 * MaxAbs(whole));
        if (format == WeightFormat.Int8)
        {
            // The LM head alone, against the float32 head on the same hidden state: within (s_n / 2)·‖h‖₁ per logit.
            var h = hidden[^1];
            var fp32 = h.matmul(quantized.TokenEmbedding.t());
            var scale = ((QuantizedLinear)quantized.named_modules().First(m => m.name == "lm_head").module).Scale!;
            Assert.True(((actual - fp32).abs() - WeightQuantization.Int8OutputBound(h, scale) - 1e-5).max().item<float>() <= 0);
            Assert.True((actual - fp32).abs().max().item<float>() > 0); // the head's copy is quantized, the embedding is not
        }
    }

    [Fact]
    public void TheShippedModelInBFloat16PicksTheSameGreedyTokens()
    {
        var folder = Path.GetDirectoryName(DataPaths.File("gpt2-shakespeare", "model.safetensors"))!;
        using var fp32 = GptCheckpoint.Load(folder);
        using var bf16 = GptCheckpoint.Load(folder);
        Assert.Equal(25, bf16.QuantizeWeights(WeightFormat.BFloat16));
        var prompt = Gpt2Tokenizer().Encode("ROMEO:\nO, she doth teach the torches to burn");
        var options = GenerationOptions.Greedy with { MaxNewTokens = 40, StopAtEndOfText = false };
        long[] Tokens(GptModel m) => TextGenerator.GenerateIds(m, [prompt], options).Select(s => s.Tokens[0]).ToArray();
        Assert.Equal(Tokens(fp32), Tokens(bf16));
        Assert.All(bf16.modules().OfType<QuantizedLinear>(), q => Assert.Equal(ScalarType.BFloat16, q.Weight.dtype));
    }

    static Workbook.Text.Gpt2Tokenizer Gpt2Tokenizer() => Workbook.Text.Gpt2Tokenizer.Default;
}
