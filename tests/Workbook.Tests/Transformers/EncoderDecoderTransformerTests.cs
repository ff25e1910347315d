using TorchSharp;
using Workbook.Attention;
using Workbook.Tests.Attention;
using Workbook.Transformers;
using static TorchSharp.torch;

namespace Workbook.Tests.Transformers;

public class EncoderDecoderTransformerTests
{
    static EncoderDecoderTransformer Small(bool tie = false, bool normFirst = false, bool learned = false)
    {
        torch.manual_seed(0);
        var m = new EncoderDecoderTransformer(new TransformerConfig(13, 11, DModel: 32, NumHeads: 4, NumEncoderLayers: 2, NumDecoderLayers: 2,
            DimFeedforward: 64, Dropout: 0.0, NormFirst: normFirst, TieOutputWeights: tie, MaxLength: 32, LearnedPositions: learned));
        m.eval();
        return m;
    }

    static Tensor Ids(long vocab, params long[] shape) => randint(vocab, shape, dtype: ScalarType.Int64);

    [Theory]
    [InlineData(false, false, false)]
    [InlineData(true, false, false)]
    [InlineData(false, true, true)]
    public void LogitsHaveShapeBTVAndDecoderIsCausal(bool tie, bool normFirst, bool learned)
    {
        var m = Small(tie, normFirst, learned);
        var src = Ids(13, 3, 9);
        var tgt = Ids(11, 3, 6);
        var logits = m.forward(src, tgt);
        Assert.Equal(new long[] { 3, 6, 11 }, logits.shape);
        // Changing target token 4 must not change the predictions at positions 0..3.
        var tgt2 = tgt.clone();
        tgt2[.., 4] = (tgt[.., 4] + 1).remainder(11);
        var logits2 = m.forward(src, tgt2);
        Golden.AssertClose(logits[.., ..4], logits2[.., ..4], 1e-5, "past positions unchanged");
        Assert.True(Golden.MaxAbsDiff(logits[.., 4..], logits2[.., 4..]) > 1e-4, "later positions do change");
    }

    [Fact]
    public void EmbeddingsAreScaledBySqrtDModelAndTiedOutputUsesTheEmbedding()
    {
        var m = Small(tie: true);
        Assert.Null(m.generator);
        var untied = Small(tie: false);
        long extra = untied.parameters().Sum(p => p.numel()) - m.parameters().Sum(p => p.numel());
        Assert.Equal(11 * 32 + 11, extra);                                    // the generator's weight and bias
        var src = Ids(13, 2, 5);
        var tgt = Ids(11, 2, 4);
        // Rebuild the decoder input by hand: tgt_embed(tgt)·√32 + PE.
        var memory = m.Encode(src);
        var y = m.tgt_embed.forward(tgt).mul(Math.Sqrt(32)) + SinusoidalPositionalEncoding.Table(4, 32);
        var h = m.decoder.forward(y, memory, null, null, null, tgtIsCausal: true);
        Golden.AssertClose(matmul(h, m.tgt_embed.weight!.T), m.forward(src, tgt), 1e-5, "logits = h · E_tgtᵀ");
    }

    [Fact]
    public void PaddedSourceTokensDoNotMatter()
    {
        var m = Small();
        var src = Ids(13, 2, 8);
        var kpm = AttentionMask.KeyPaddingFromLengths(new long[] { 8, 5 }, 8);
        var tgt = Ids(11, 2, 4);
        var a = m.forward(src, tgt, kpm, null);
        var src2 = src.clone();
        src2[1, 5..] = (src[1, 5..] + 3).remainder(13);
        Golden.AssertClose(a, m.forward(src2, tgt, kpm, null), 1e-5, "padding ignored");
    }

    [Fact]
    public void GreedyDecodeAgreesWithTeacherForcedArgmax()
    {
        var m = Small();
        var src = Ids(13, 4, 7);
        m.train();
        var ys = m.GreedyDecode(src, bosId: 0, maxNewTokens: 6);
        Assert.True(m.training, "training mode restored");
        Assert.Equal(new long[] { 4, 7 }, ys.shape);
        Assert.True(ys[.., 0].eq(0).all().item<bool>());
        m.eval();
        // Each generated token is the argmax of the logits computed from the tokens before it.
        var logits = m.forward(src, ys[.., ..^1]);
        Assert.True(Golden.Same(ys[.., 1..], logits.argmax(-1)));
    }

    [Fact]
    public void GreedyDecodeStopsAtEosAndPadsFinishedRows()
    {
        var m = Small();
        var src = Ids(13, 5, 7);
        var free = m.GreedyDecode(src, bosId: 0, maxNewTokens: 8);
        long eos = free[0, 2].item<long>();                 // a token row 0 emits at step 2
        var ys = m.GreedyDecode(src, bosId: 0, maxNewTokens: 8, eosId: eos);
        for (int b = 0; b < 5; b++)
        {
            var row = ys[b, 1..].data<long>().ToArray();
            int first = Array.IndexOf(row, eos);
            if (first >= 0) Assert.All(row[first..], t => Assert.Equal(eos, t));
            var prefix = free[b, 1..].data<long>().ToArray();
            Assert.Equal(prefix[..(first >= 0 ? first : row.Length)], row[..(first >= 0 ? first : row.Length)]);
        }
    }

    [Fact]
    public void LearnsToCopyASmallBatch()
    {
        torch.manual_seed(1);
        var m = new EncoderDecoderTransformer(new TransformerConfig(10, 11, DModel: 32, NumHeads: 4, NumEncoderLayers: 1, NumDecoderLayers: 1,
            DimFeedforward: 64, Dropout: 0.0, MaxLength: 16));
        var src = randint(1, 10, new long[] { 16, 6 }, dtype: ScalarType.Int64);
        var tgtIn = cat(new[] { full(16, 1, 10L, dtype: ScalarType.Int64), src[.., ..^1] }, 1);   // BOS = 10
        var opt = optim.Adam(m.parameters(), 3e-3);
        double first = 0, last = 0;
        for (int step = 0; step < 150; step++)
        {
            using var scope = NewDisposeScope();
            opt.zero_grad();
            var loss = nn.functional.cross_entropy(m.forward(src, tgtIn).reshape(-1, 11), src.reshape(-1));
            loss.backward();
            opt.step();
            if (step == 0) first = loss.item<float>();
            last = loss.item<float>();
        }
        Assert.True(last < first / 10, $"loss {first:F3} -> {last:F3}");
        var ys = m.GreedyDecode(src, bosId: 10, maxNewTokens: 6);
        Assert.True(Golden.Same(src, ys[.., 1..]), "greedy decoding reproduces the copied batch");
    }

    [Fact]
    public void BadIdsAreRejectedClearly()
    {
        var m = Small();
        var e = Assert.Throws<ArgumentException>(() => m.forward(randn(2, 5), Ids(11, 2, 3)));
        Assert.Contains("int64 token ids [B, T]", e.Message);
        var e2 = Assert.Throws<ArgumentOutOfRangeException>(() => m.forward(full(2, 5, 13L, dtype: ScalarType.Int64), Ids(11, 2, 3)));
        Assert.Contains("outside the vocabulary 0..12", e2.Message);
    }
}
