using TorchSharp;
using TorchSharp.Modules;
using Workbook.FineTuning;
using Workbook.Gpt;
using Workbook.Training;
using Workbook.Tests.Gpt;
using static TorchSharp.torch;

namespace Workbook.Tests.FineTuning;

[Collection(Workbook.Tests.Training.TorchGlobalStateCollection.Name)]
public class LoRATests
{
    static Tensor Ids() => Golden.Tensors["input.input_ids"];

    /// <summary>Gives every adapter random A and B, as training would, so that merging has something to merge.</summary>
    static void Perturb(nn.Module model, int seed)
    {
        using var _ = no_grad();
        var g = new Generator((ulong)seed);
        foreach (var (_, a) in LoRA.Adapters(model))
        {
            a.A.copy_(randn(a.A.shape, generator: g) * 0.1);
            a.B.copy_(randn(a.B.shape, generator: g) * 0.1);
        }
    }

    [Fact]
    public void AtInitialisationTheAdaptedModelIsExactlyTheBaseModel()
    {
        using var model = Golden.Model();
        Tensor before;
        using (no_grad()) before = model.forward(Ids());
        var report = LoRA.Apply(model, new LoRAOptions { Rank = 4, Alpha = 8 });
        Assert.Equal(2 * 4, report.Adapters); // 2 layers × (c_attn, attn.c_proj, c_fc, mlp.c_proj)
        using (no_grad())
        {
            var after = model.forward(Ids());
            Assert.Equal(0.0, (after - before).abs().max().item<float>()); // B = 0: the adapters add exact zeros
        }
        // With gradients on, the base projections may take another (equally exact up to rounding) BLAS path.
        Assert.True(Golden.MaxDiff(model.forward(Ids()).detach(), before) < 1e-5);
        Assert.True(Golden.MaxDiff(before, Golden.Tensors["expected.logits"]) < 1e-4);
    }

    [Fact]
    public void TrainableParametersAreExactlyTheAdapters()
    {
        using var model = Golden.Model();
        long total = model.ParameterCount;
        var report = LoRA.Apply(model, new LoRAOptions { Rank = 4, Alpha = 8 });
        int E = model.Config.DModel;
        long perBlock = 4L * (E + 3 * E) + 4L * (E + E) + 4L * (E + 4 * E) + 4L * (4 * E + E); // r·(in + out) per projection
        Assert.Equal(model.Config.NumLayers * perBlock, report.TrainableParameters);
        Assert.Equal(total + report.TrainableParameters, report.TotalParameters);
        Assert.All(model.named_parameters(), p => Assert.Equal(p.name.Contains(".lora_"), p.parameter.requires_grad));
        Assert.Contains(model.named_parameters(), p => p.name == "h.0.attn.c_attn.base_layer.weight");
        Assert.Contains(model.named_parameters(), p => p.name == "h.1.mlp.c_proj.lora_B.weight");
        Assert.Equal(report.TrainableParameters, LoRA.Adapters(model).Sum(a => a.Adapter.AdapterParameterCount));
    }

    [Fact]
    public void OnlyAdapterParametersReceiveGradientsAndOnlyTheyMove()
    {
        using var model = Golden.Model();
        LoRA.Apply(model, new LoRAOptions { Rank = 2, Alpha = 4 });
        var frozen = model.named_parameters().Where(p => !p.parameter.requires_grad).ToDictionary(p => p.name, p => p.parameter.detach().clone());
        var opt = Optimizers.AdamW(Freezing.Trainable(model), lr: 1e-2);
        var ids = Ids();
        var targets = ids.roll(-1, 1);
        for (int step = 0; step < 2; step++)
        {
            opt.zero_grad();
            GptModel.Loss(model.forward(ids), targets).backward();
            foreach (var (name, p) in model.named_parameters())
            {
                if (!name.Contains(".lora_")) { Assert.True(p.grad is null || p.grad.IsInvalid, $"{name} got a gradient"); continue; }
                Assert.NotNull(p.grad);
                double norm = p.grad!.norm().item<float>();
                // B starts at 0, so A's first gradient (s·Bᵀ·∂L/∂y·xᵀ) is exactly zero; after one step both have one.
                if (name.EndsWith("lora_A.weight") && step == 0) Assert.Equal(0.0, norm);
                else Assert.True(norm > 0, $"{name} at step {step}: gradient norm {norm}");
            }
            opt.step();
        }
        foreach (var (name, p) in model.named_parameters().Where(p => !p.parameter.requires_grad))
            Assert.True(p.detach().eq(frozen[name]).all().item<bool>(), $"frozen {name} changed");
        Assert.All(LoRA.Adapters(model), a => Assert.True(a.Adapter.B.abs().sum().item<float>() > 0));
    }

    [Fact]
    public void MergedOutputsEqualTheUnmergedOnesAndMergeAndUnloadGivesAPlainGpt2()
    {
        using var model = Golden.Model();
        LoRA.Apply(model, new LoRAOptions { Rank = 4, Alpha = 16 });
        Perturb(model, 3);
        using var _ = no_grad();
        var unmerged = model.forward(Ids());
        Assert.True(Golden.MaxDiff(unmerged, Golden.Tensors["expected.logits"]) > 1e-2); // the adapters do change the model
        Assert.Equal(8, LoRA.Merge(model));
        var merged = model.forward(Ids());
        Assert.True(Golden.MaxDiff(merged, unmerged) < 1e-5);
        // Merging adds ΔW = (α/r)·BA to the base weight: check one layer against the formula.
        var (_, first) = LoRA.Adapters(model)[0];
        var expectedDelta = first.B.matmul(first.A) * (16.0 / 4);
        var original = Golden.Model().named_parameters().First(p => p.name == "h.0.attn.c_attn.weight").parameter;
        Assert.True((first.BaseLayer.weight! - original - expectedDelta).abs().max().item<float>() < 1e-6);
        foreach (var (_, a) in LoRA.Adapters(model)) a.Unmerge();
        Assert.True(Golden.MaxDiff(model.forward(Ids()), unmerged) < 1e-5);

        Assert.Equal(8, LoRA.MergeAndUnload(model));
        Assert.Empty(LoRA.Adapters(model));
        Assert.True(Golden.MaxDiff(model.forward(Ids()), unmerged) < 1e-5);
        Assert.Equal(Golden.Model().named_parameters().Select(p => p.name).Order(), model.named_parameters().Select(p => p.name).Order());
        var folder = Path.Combine(Path.GetTempPath(), "workbook-lora-" + Guid.NewGuid().ToString("N"));
        try
        {
            GptCheckpoint.Save(model, folder);
            using var reloaded = GptCheckpoint.Load(folder);
            Assert.True(Golden.MaxDiff(reloaded.forward(Ids()), unmerged) < 1e-5);
        }
        finally { Directory.Delete(folder, recursive: true); }
    }

    [Fact]
    public void TheUpdateHasRankAtMostR()
    {
        using var baseLayer = nn.Linear(32, 24);
        using var lora = new LoRALinear(baseLayer, rank: 3, alpha: 6);
        using var _ = no_grad();
        lora.A.normal_();
        lora.B.normal_();
        using var delta = lora.DeltaWeight();
        var singular = linalg.svdvals(delta);
        Assert.True(singular[2].item<float>() > 1e-3);
        Assert.True(singular[3].item<float>() < 1e-4 * singular[0].item<float>());
        Assert.Equal(3L * (32 + 24), lora.AdapterParameterCount);
        Assert.Equal(2.0, lora.Scaling);
        // y = W₀x + b + (α/r)·B·A·x, computed by hand.
        var x = randn(5, 32);
        var expected = x.matmul(baseLayer.weight!.t()) + baseLayer.bias! + x.matmul(lora.A.t()).matmul(lora.B.t()) * 2.0;
        Assert.True((lora.forward(x) - expected).abs().max().item<float>() < 1e-4);
    }

    [Fact]
    public void BadArgumentsAreRejectedWithTheirValues()
    {
        using var linear = nn.Linear(8, 4);
        Assert.Contains("rank must be in [1, min(in 8, out 4)], got 5", Assert.Throws<ArgumentException>(() => new LoRALinear(linear, 5, 1)).Message);
        Assert.Contains("got 0", Assert.Throws<ArgumentException>(() => new LoRALinear(linear, 0, 1)).Message);
        Assert.Contains("alpha must be positive", Assert.Throws<ArgumentException>(() => new LoRALinear(linear, 2, 0)).Message);
        using var model = Golden.Model();
        Assert.Contains("No projection matches", Assert.Throws<ArgumentException>(() => LoRA.Apply(model, new LoRAOptions { Targets = ["attn.c_q"] })).Message);
        LoRA.Apply(model);
        Assert.Contains("already has a LoRA adapter", Assert.Throws<ArgumentException>(() => LoRA.Apply(model)).Message);
        using var lora = new LoRALinear(linear, 2, 4);
        Assert.Throws<InvalidOperationException>(() => lora.Unmerge());
        lora.Merge();
        Assert.Throws<InvalidOperationException>(() => lora.Merge());
    }
}
