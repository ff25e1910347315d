using TorchSharp;
using Workbook.Attention;
using static TorchSharp.torch;
using MultiheadAttention = Workbook.Attention.MultiheadAttention;

namespace Workbook.Tests.Attention;

public class MultiheadAttentionTests
{
    static (MultiheadAttention Mha, Dictionary<string, Tensor> G) FromGolden()
    {
        var g = Golden.Load("mha");
        var meta = Workbook.IO.SafeTensors.ReadMetadata(TestSetup.Fixture("golden", "mha.safetensors"));
        var mha = new MultiheadAttention(long.Parse(meta["embed_dim"]), long.Parse(meta["num_heads"]));
        mha.load_state_dict(Golden.Parameters(g));
        mha.eval();
        return (mha, g);
    }

    [Theory]
    [InlineData("none")]
    [InlineData("causal")]
    public void MatchesPyTorchGolden(string variant)
    {
        var (mha, g) = FromGolden();
        var x = g["input.x"];
        var mask = variant == "causal" ? Golden.Bool(g["input.attn_mask"]) : null;
        var (output, avg) = mha.forward(x, x, x, mask);
        Golden.AssertClose(g[$"expected.{variant}.out"], output, 1e-5, "out");
        Golden.AssertClose(g[$"expected.{variant}.attn_weights"], avg!, 1e-5, "averaged weights");
        var (_, perHead) = mha.forward(x, x, x, mask, averageWeights: false);
        Golden.AssertClose(g[$"expected.{variant}.attn_weights_per_head"], perHead!, 1e-5, "per-head weights");
        // The fused path (no weights requested) gives the same output.
        var (fused, none) = mha.forward(x, x, x, mask, needWeights: false);
        Assert.Null(none);
        Golden.AssertClose(g[$"expected.{variant}.out"], fused, 1e-5, "fused out");
        // The additive form of the mask and the isCausal flag agree with the bool mask.
        if (variant == "causal")
        {
            Golden.AssertClose(g["expected.causal.out"], mha.forward(x, x, x, g["input.attn_mask_additive"]).Output, 1e-5, "additive");
            Golden.AssertClose(g["expected.causal.out"], mha.forward(x, x, x, isCausal: true).Output, 1e-5, "isCausal");
        }
    }

    [Fact]
    public void PerHeadTeachingVariantComputesTheSame()
    {
        var (mha, g) = FromGolden();
        var sep = new SeparateHeadsAttention(mha.embed_dim, mha.num_heads);
        sep.CopyFrom(mha);
        var x = g["input.x"];
        var (o, w) = sep.forward(x, x, x, Golden.Bool(g["input.attn_mask"]));
        Golden.AssertClose(g["expected.causal.out"], o, 1e-5, "out");
        Golden.AssertClose(g["expected.causal.attn_weights_per_head"], w, 1e-5, "weights");
    }

    [Fact]
    public void MatchesTorchSharpMultiheadAttentionWithCopiedWeights()
    {
        torch.manual_seed(7);
        const long E = 32, H = 4, B = 3, T = 6, S = 9;
        var ours = new MultiheadAttention(E, H);
        var theirs = nn.MultiheadAttention(E, H);
        using (no_grad())
        {
            // Give the biases non-zero values so that the comparison covers them.
            foreach (var (_, p) in ours.named_parameters()) p.copy_(randn(p.shape).mul(0.3));
            theirs.load_state_dict(ours.state_dict());
        }
        ours.eval(); theirs.eval();
        var query = randn(B, T, E);
        var memory = randn(B, S, E);
        var kpm = AttentionMask.KeyPaddingFromLengths(new long[] { 9, 5, 7 }, S);
        var bias = randn(T, S);
        // TorchSharp's module is sequence-first [T, B, E]; ours is batch-first.
        var (expectedOut, expectedW) = theirs.call(query.transpose(0, 1), memory.transpose(0, 1), memory.transpose(0, 1), kpm, true, bias);
        var (out1, w1) = ours.forward(query, memory, memory, bias, kpm);
        Golden.AssertClose(expectedOut.transpose(0, 1), out1, 1e-5, "cross-attention out");
        Golden.AssertClose(expectedW, w1!, 1e-5, "cross-attention averaged weights");
        // Self-attention with a causal mask (given to TorchSharp in additive form; see the next test).
        var (selfOut, _) = theirs.call(query.transpose(0, 1), query.transpose(0, 1), query.transpose(0, 1), null, false, AttentionMask.CausalAdditive(T));
        Golden.AssertClose(selfOut.transpose(0, 1), ours.forward(query, query, query, isCausal: true, needWeights: false).Output, 1e-5, "self causal");
    }

    [Fact]
    public void TorchSharpAddsABoolAttnMaskAsZeroOneInsteadOfMasking()
    {
        // Notebook 01 warns about this: TorchSharp 0.107's nn.MultiheadAttention (libtorch's C++ module) adds a bool
        // attn_mask to the scores as 0/1 instead of masking. If this test fails, TorchSharp fixed it: update notebook 01.
        torch.manual_seed(5);
        var theirs = nn.MultiheadAttention(8, 2);
        theirs.eval();
        var x = randn(5, 2, 8);
        var future = AttentionMask.Causal(5);
        var (asBool, _) = theirs.call(x, x, x, null, false, future);
        var (asZeroOne, _) = theirs.call(x, x, x, null, false, future.to_type(ScalarType.Float32));
        var (asMask, _) = theirs.call(x, x, x, null, false, AttentionMask.CausalAdditive(5));
        Golden.AssertClose(asZeroOne, asBool, 1e-6, "bool mask == +1 on masked scores");
        Assert.True(Golden.MaxAbsDiff(asMask, asBool) > 1e-3, "bool mask is not a mask");
    }

    [Fact]
    public void UnbatchedInputAndPyTorchStyleMaskLayoutsAgree()
    {
        var (mha, g) = FromGolden();
        var x = g["input.x"];
        var mask = Golden.Bool(g["input.attn_mask"]);
        var (batched, _) = mha.forward(x, x, x, mask);
        var x1 = x[1];
        Golden.AssertClose(batched[1], mha.forward(x1, x1, x1, mask).Output, 1e-6, "unbatched [T, E]");
        long B = x.shape[0], T = x.shape[1];
        var flat = mask.expand(B * mha.num_heads, T, T);                       // PyTorch's [B*h, T, T]
        var full4 = mask.expand(B, mha.num_heads, T, T);                       // [B, h, T, T]
        Golden.AssertClose(batched, mha.forward(x, x, x, flat).Output, 1e-6, "[B*h, T, T]");
        Golden.AssertClose(batched, mha.forward(x, x, x, full4).Output, 1e-6, "[B, h, T, T]");
    }

    [Fact]
    public void RecordWeightsKeepsPerHeadWeightsOfTheLastCall()
    {
        var (mha, g) = FromGolden();
        var x = g["input.x"];
        mha.RecordWeights = true;
        mha.forward(x, x, x, needWeights: false);
        Golden.AssertClose(g["expected.none.attn_weights_per_head"], mha.LastWeights!, 1e-5, "recorded");
    }

    [Fact]
    public void DropoutOnlyInTrainingMode()
    {
        var (mha, g) = FromGolden();
        var withDropout = new MultiheadAttention(mha.embed_dim, mha.num_heads, dropout: 0.5);
        withDropout.load_state_dict(mha.state_dict());
        var x = g["input.x"];
        withDropout.eval();
        Golden.AssertClose(g["expected.none.out"], withDropout.forward(x, x, x).Output, 1e-5, "eval: no dropout");
        withDropout.train();
        var (_, w) = withDropout.forward(x, x, x, averageWeights: false);
        Assert.True(w!.eq(0).any().item<bool>(), "training: some weights dropped");
    }

    [Fact]
    public void ShapeErrorsNameTheTensors()
    {
        var mha = new MultiheadAttention(16, 4);
        var e = Assert.Throws<ArgumentException>(() => mha.forward(randn(2, 5, 16), randn(2, 7, 12), randn(2, 7, 12)));
        Assert.Contains("key [2, 7, 12]", e.Message);
        Assert.Contains("embed_dim=16", e.Message);
        e = Assert.Throws<ArgumentException>(() => mha.forward(randn(2, 5, 16), randn(2, 7, 16), randn(2, 6, 16)));
        Assert.Contains("value [2, 6, 16]", e.Message);
        e = Assert.Throws<ArgumentException>(() => mha.forward(randn(2, 5, 16), randn(2, 5, 16), randn(2, 5, 16), ones(5, 4, dtype: ScalarType.Bool)));
        Assert.Contains("attn_mask [5, 4]", e.Message);
        Assert.Contains("[T_q, T_k] = [5, 5]", e.Message);
        e = Assert.Throws<ArgumentException>(() => mha.forward(randn(2, 5, 16), randn(2, 7, 16), randn(2, 7, 16), keyPaddingMask: zeros(2, 5, dtype: ScalarType.Bool)));
        Assert.Contains("key_padding_mask [2, 5]", e.Message);
        Assert.Contains("expected [batch, key_len] = [2, 7]", e.Message);
        Assert.Throws<ArgumentException>(() => new MultiheadAttention(10, 4));
    }
}
