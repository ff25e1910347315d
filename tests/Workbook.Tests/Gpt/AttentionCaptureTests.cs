using TorchSharp;
using Workbook.Gpt;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Workbook.Tests.Gpt;

public class AttentionCaptureTests
{
    [Fact]
    public void LogitsAreUnchangedAndWeightsAreCausalDistributions()
    {
        using var model = Golden.Model();
        model.eval();
        using var _ = no_grad();
        var ids = Golden.Tensors["input.input_ids"];
        var plain = model.Forward(ids);
        var (logits, attention) = model.ForwardWithAttention(ids);
        Assert.Equal(plain.data<float>().ToArray(), logits.data<float>().ToArray()); // bit for bit
        long B = ids.shape[0], T = ids.shape[1];
        Assert.Equal(model.Config.NumLayers, attention.Length);
        foreach (var a in attention)
        {
            Assert.Equal(new[] { B, model.Config.NumHeads, T, T }, a.shape);
            Assert.True((a.sum(-1) - 1).abs().max().item<float>() < 1e-6);
            Assert.Equal(0f, a.triu(1).abs().max().item<float>());
            Assert.False(a.requires_grad);
        }
        // The capture is switched off again: a second call returns one tensor per layer, not twice as many.
        Assert.Equal(model.Config.NumLayers, model.ForwardWithAttention(ids).Attention.Length);
    }

    [Fact]
    public void WeightsAreTheOnesTheForwardUses()
    {
        using var model = Golden.Model();
        model.eval();
        using var _ = no_grad();
        var ids = Golden.Tensors["input.input_ids"];
        var hidden = new List<Tensor>();
        model.Forward(ids, hiddenStates: hidden);
        var (_, attention) = model.ForwardWithAttention(ids);
        var p = model.named_parameters().ToDictionary(n => n.name, n => (Tensor)n.parameter);
        int L = model.Config.NumLayers, H = model.Config.NumHeads, E = model.Config.DModel, hd = E / H;
        long B = ids.shape[0], T = ids.shape[1];
        double eps = model.Config.LayerNormEps;
        for (int l = 0; l < L; l++)
        {
            // From the block's own parameters: ln_1, c_attn → q, k, v; softmax(q kᵀ/√hd) under the causal mask.
            var x = hidden[l];
            var ln1 = F.layer_norm(x, [E], p[$"h.{l}.ln_1.weight"], p[$"h.{l}.ln_1.bias"], eps);
            var qkv = F.linear(ln1, p[$"h.{l}.attn.c_attn.weight"], p[$"h.{l}.attn.c_attn.bias"]);
            Tensor Heads(int part) => qkv.narrow(2, part * E, E).view(B, T, H, hd).transpose(1, 2);
            var scores = Heads(0).matmul(Heads(1).transpose(2, 3)) / Math.Sqrt(hd);
            var expected = scores.masked_fill(ones(T, T, dtype: ScalarType.Bool).tril().logical_not(), double.NegativeInfinity).softmax(-1);
            Assert.True(Golden.MaxDiff(attention[l], expected) < 1e-6, $"layer {l}");

            // And they reproduce the block: weights · v → c_proj → residual → MLP gives the next hidden state.
            var y = attention[l].matmul(Heads(2)).transpose(1, 2).reshape(B, T, E);
            var mid = x + F.linear(y, p[$"h.{l}.attn.c_proj.weight"], p[$"h.{l}.attn.c_proj.bias"]);
            var ln2 = F.layer_norm(mid, [E], p[$"h.{l}.ln_2.weight"], p[$"h.{l}.ln_2.bias"], eps);
            var mlp = F.linear(F.gelu(F.linear(ln2, p[$"h.{l}.mlp.c_fc.weight"], p[$"h.{l}.mlp.c_fc.bias"]), approximate: TorchSharp.Modules.GELU.Approximate.tanh),
                p[$"h.{l}.mlp.c_proj.weight"], p[$"h.{l}.mlp.c_proj.bias"]);
            var next = mid + mlp;
            if (l < L - 1) Assert.True(Golden.MaxDiff(next, hidden[l + 1]) < 1e-5, $"block {l}");
            else Assert.True(Golden.MaxDiff(F.layer_norm(next, [E], p["ln_f.weight"], p["ln_f.bias"], eps), hidden[^1]) < 1e-5);
        }
    }

    [Fact]
    public void PaddedRowsGetTheWeightsOfTheUnpaddedSequence()
    {
        using var model = Golden.Model();
        model.eval();
        using var _ = no_grad();
        var row = Golden.Tensors["input.input_ids"][0];
        long T = row.shape[0];
        const int pad = 3;
        // Left padding, as batched generation does: position ids start at 0 on the first real token, padded keys are masked.
        var padded = cat([zeros(pad, dtype: ScalarType.Int64), row]).unsqueeze(0);
        var padding = cat([ones(pad, dtype: ScalarType.Bool), zeros(T, dtype: ScalarType.Bool)]).unsqueeze(0);
        var positions = cat([zeros(pad, dtype: ScalarType.Int64), arange(T, dtype: ScalarType.Int64)]).unsqueeze(0);
        var alone = model.ForwardWithAttention(row.unsqueeze(0)).Attention;
        var withPadding = model.ForwardWithAttention(padded, positions, padding).Attention;
        for (int l = 0; l < alone.Length; l++)
        {
            Assert.Equal(0f, withPadding[l][.., .., pad.., ..pad].abs().max().item<float>()); // no weight on the padding
            Assert.True(Golden.MaxDiff(withPadding[l][.., .., pad.., pad..], alone[l]) < 1e-6, $"layer {l}");
        }
    }
}
