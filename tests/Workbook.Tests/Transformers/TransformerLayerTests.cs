using TorchSharp;
using Workbook.Attention;
using Workbook.IO;
using Workbook.Tests.Attention;
using Workbook.Transformers;
using static TorchSharp.torch;
using TransformerEncoderLayer = Workbook.Transformers.TransformerEncoderLayer;
using TransformerDecoderLayer = Workbook.Transformers.TransformerDecoderLayer;

namespace Workbook.Tests.Transformers;

public class TransformerLayerTests
{
    static (TransformerEncoderLayer Layer, Dictionary<string, Tensor> G) Encoder(string file)
    {
        var g = Golden.Load(file);
        var meta = SafeTensors.ReadMetadata(TestSetup.Fixture("golden", file + ".safetensors"));
        var layer = new TransformerEncoderLayer(long.Parse(meta["d_model"]), long.Parse(meta["nhead"]), long.Parse(meta["dim_feedforward"]),
            dropout: 0.0, layerNormEps: double.Parse(meta["layer_norm_eps"], System.Globalization.CultureInfo.InvariantCulture),
            normFirst: meta["norm_first"] == "true");
        layer.load_state_dict(Golden.Parameters(g));
        layer.eval();
        return (layer, g);
    }

    [Theory]
    [InlineData("transformer_encoder_layer_post_ln", "none")]
    [InlineData("transformer_encoder_layer_post_ln", "causal")]
    [InlineData("transformer_encoder_layer_post_ln", "key_padding")]
    [InlineData("transformer_encoder_layer_pre_ln", "none")]
    [InlineData("transformer_encoder_layer_pre_ln", "causal")]
    [InlineData("transformer_encoder_layer_pre_ln", "key_padding")]
    public void EncoderLayerMatchesPyTorchGolden(string file, string variant)
    {
        var (layer, g) = Encoder(file);
        var src = g["input.src"];
        var mask = variant == "causal" ? Golden.Bool(g["input.src_mask"]) : null;
        var kpm = variant == "key_padding" ? Golden.Bool(g["input.src_key_padding_mask"]) : null;
        Golden.AssertClose(g[$"expected.{variant}.out"], layer.forward(src, mask, kpm), 1e-5, $"{file} {variant}");
    }

    [Theory]
    [InlineData("none")]
    [InlineData("causal")]
    public void DecoderLayerMatchesPyTorchGolden(string variant)
    {
        var g = Golden.Load("transformer_decoder_layer");
        var meta = SafeTensors.ReadMetadata(TestSetup.Fixture("golden", "transformer_decoder_layer.safetensors"));
        var layer = new TransformerDecoderLayer(long.Parse(meta["d_model"]), long.Parse(meta["nhead"]), long.Parse(meta["dim_feedforward"]), dropout: 0.0);
        layer.load_state_dict(Golden.Parameters(g));
        layer.eval();
        Tensor tgt = g["input.tgt"], memory = g["input.memory"];
        var mask = variant == "causal" ? Golden.Bool(g["input.tgt_mask"]) : null;
        Golden.AssertClose(g[$"expected.{variant}.out"], layer.forward(tgt, memory, mask), 1e-5, variant);
        if (variant == "causal")
            Golden.AssertClose(g["expected.causal.out"], layer.forward(tgt, memory, null, tgtIsCausal: true), 1e-5, "tgtIsCausal");
    }

    [Fact]
    public void EncoderLayerMatchesTorchSharpBuiltInWithCopiedWeights()
    {
        torch.manual_seed(3);
        var ours = new TransformerEncoderLayer(32, 4, 64, dropout: 0.0);
        var theirs = nn.TransformerEncoderLayer(32, 4, 64, 0.0);
        using (no_grad())
            foreach (var (_, p) in ours.named_parameters()) p.add_(randn(p.shape).mul(0.1));       // non-trivial LN and biases
        theirs.load_state_dict(ours.state_dict());
        ours.eval(); theirs.eval();
        var src = randn(3, 10, 32);
        var expected = theirs.call(src.transpose(0, 1), AttentionMask.CausalAdditive(10)).transpose(0, 1);  // TorchSharp is [T, B, E]
        Golden.AssertClose(expected, ours.forward(src, null, null, isCausal: true), 1e-5, "post-LN vs nn.TransformerEncoderLayer");
    }

    [Fact]
    public void LayerFeedForwardIsThePositionwiseFeedForward()
    {
        var (layer, g) = Encoder("transformer_encoder_layer_post_ln");
        var ffn = new PositionwiseFeedForward(16, 32);
        ffn.load_state_dict(new Dictionary<string, Tensor>
        {
            ["linear1.weight"] = g["linear1.weight"], ["linear1.bias"] = g["linear1.bias"],
            ["linear2.weight"] = g["linear2.weight"], ["linear2.bias"] = g["linear2.bias"],
        });
        var x = g["input.src"];
        var byHand = matmul(nn.functional.relu(matmul(x, g["linear1.weight"].T) + g["linear1.bias"]), g["linear2.weight"].T) + g["linear2.bias"];
        Golden.AssertClose(byHand, ffn.forward(x), 1e-5, "FFN by hand");
        Golden.AssertClose(byHand, layer.FeedForward(x), 1e-5, "layer FFN");
        // Position-wise: permuting positions permutes the outputs the same way.
        var perm = tensor(new long[] { 6, 0, 5, 1, 4, 2, 3 });
        Golden.AssertClose(ffn.forward(x).index_select(1, perm), ffn.forward(x.index_select(1, perm)), 1e-6, "position-wise");
    }

    [Fact]
    public void DecoderRejectsMemoryOfTheWrongShape()
    {
        var layer = new TransformerDecoderLayer(16, 4, 32, 0.0);
        var e = Assert.Throws<ArgumentException>(() => layer.forward(randn(2, 5, 16), randn(3, 7, 16)));
        Assert.Contains("memory [3, 7, 16]", e.Message);
        Assert.Contains("tgt [2, 5, 16]", e.Message);
    }

    [Fact]
    public void ReadOnlyModuleFieldsFollowTheModuleToAnotherDtype()
    {
        // The modules' fields are readonly; TorchSharp's to(dtype/device) replaces parameters and buffers through
        // reflection, so the fields must still see the converted tensors (a readonly field that kept the old tensor
        // would compute in float32 and silently disagree with state_dict()).
        var layer = new TransformerDecoderLayer(16, 4, 32, 0.0);
        var pe = new SinusoidalPositionalEncoding(16, maxLength: 8);
        layer.to(ScalarType.Float64);
        pe.to(ScalarType.Float64);
        Assert.Equal(ScalarType.Float64, layer.self_attn.in_proj_weight.dtype);
        Assert.Equal(ScalarType.Float64, layer.multihead_attn.out_proj.weight!.dtype);
        Assert.Equal(ScalarType.Float64, layer.norm3.weight!.dtype);
        Assert.Equal(ScalarType.Float64, pe.pe.dtype);
        Assert.Same(layer.self_attn.in_proj_weight, layer.state_dict()["self_attn.in_proj_weight"]);
        var x = randn(2, 5, 16, dtype: ScalarType.Float64);
        Assert.Equal(ScalarType.Float64, layer.forward(x, pe.forward(x)).dtype);
    }
}
