using TorchSharp;
using Workbook.IO;
using Workbook.Training;
using static TorchSharp.torch;

namespace Workbook.Tests.Training;

[Collection(TorchGlobalStateCollection.Name)]
public class CheckpointTests
{
    static string Temp(string name) => Path.Combine(Path.GetTempPath(), "wb-ckpt-" + Guid.NewGuid().ToString("N"), name);

    /// <summary>A model and AdamW after a few real steps, so every optimizer buffer is non-trivial.</summary>
    static (DropoutMlp Model, torch.optim.Optimizer Opt) Trained(int hidden = 8, int seed = 1)
    {
        torch.manual_seed(seed);
        var model = new DropoutMlp(6, hidden, 3);
        var opt = Optimizers.AdamW(model.parameters(), lr: 1e-2);
        var x = torch.randn(16, 6); var y = torch.randint(0, 3, 16);
        for (int i = 0; i < 3; i++)
        {
            opt.zero_grad();
            Losses.CrossEntropy(model.call(x), y).backward();
            opt.step();
        }
        return (model, opt);
    }

    [Fact]
    public void RoundTripIsBitExact()
    {
        var (model, opt) = Trained();
        var path = Temp("a.safetensors");
        var history = new TrainingHistory();
        history.Steps.Add(new StepRecord(0, 0, 1.2345678901234567, 1e-3, null));
        Checkpoint.Save(path, model, opt, epoch: 2, step: 3, seed: 7, history: history);
        var r1 = torch.rand(5);  // the numbers after the save ...

        torch.manual_seed(99);
        var (model2, opt2) = Trained(seed: 2); // different weights and optimizer state
        var info = Checkpoint.Load(path, model2, opt2);
        var r2 = torch.rand(5);  // ... are drawn again after the load: the RNG state was restored
        Assert.True(r1.bytes.SequenceEqual(r2.bytes));

        Assert.Equal((2, 3L, 7), (info.Epoch, info.Step, info.Seed));
        Assert.Equal(1.2345678901234567, info.History.Steps[0].Loss);
        var a = TrainingData.Bytes(model); var b = TrainingData.Bytes(model2);
        for (int i = 0; i < a.Length; i++) Assert.True(a[i].SequenceEqual(b[i]), $"parameter {i} differs");
        var s1 = Optimizers.ExportState(opt, model).Tensors; var s2 = Optimizers.ExportState(opt2, model2).Tensors;
        Assert.Equal(s1.Keys.OrderBy(k => k), s2.Keys.OrderBy(k => k));
        Assert.Contains("optimizer.fc1.weight.exp_avg_sq", s1.Keys);
        Assert.Equal(3L, s2["optimizer.fc1.weight.step"].item<long>());
        foreach (var k in s1.Keys) Assert.True(s1[k].bytes.SequenceEqual(s2[k].bytes), k);
        Assert.Empty(Directory.GetFiles(Path.GetDirectoryName(path)!, "*.tmp")); // the atomic save cleaned up
    }

    [Fact]
    public void SgdMomentumStateRoundTrips()
    {
        torch.manual_seed(3);
        var model = new TinyMlp();
        var opt = Optimizers.Sgd(model.parameters(), lr: 0.1, momentum: 0.9);
        var x = torch.randn(8, 4); var y = torch.randn(8, 2);
        Losses.Mse(model.call(x), y).backward();
        opt.step();
        var path = Temp("sgd.safetensors");
        Checkpoint.Save(path, model, opt);
        var model2 = new TinyMlp();
        var opt2 = Optimizers.Sgd(model2.parameters(), lr: 0.1, momentum: 0.9); // no momentum buffers yet
        Checkpoint.Load(path, model2, opt2);
        // One more identical step on both gives identical weights only if the momentum buffers were restored.
        foreach (var (m, o) in new[] { (model, opt), (model2, opt2) })
        {
            o.zero_grad();
            Losses.Mse(m.call(x), y).backward();
            o.step();
        }
        var a = TrainingData.Bytes(model); var b = TrainingData.Bytes(model2);
        for (int i = 0; i < a.Length; i++) Assert.True(a[i].SequenceEqual(b[i]));
    }

    [Fact]
    public void TruncatedCheckpointNamesTheFile()
    {
        var (model, opt) = Trained();
        var path = Temp("t.safetensors");
        Checkpoint.Save(path, model, opt);
        var bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes[..(bytes.Length - 100)]);
        var e = Assert.Throws<CheckpointException>(() => Checkpoint.Load(path, model, opt));
        Assert.Contains("truncated", e.Message);
        Assert.Contains(path, e.Message);
    }

    [Fact]
    public void CorruptHeaderIsReported()
    {
        var (model, opt) = Trained();
        var path = Temp("c.safetensors");
        Checkpoint.Save(path, model, opt);
        var bytes = File.ReadAllBytes(path);
        bytes[8] = (byte)'#'; // the JSON header's first character
        File.WriteAllBytes(path, bytes);
        var e = Assert.Throws<CheckpointException>(() => Checkpoint.Load(path, model, opt));
        Assert.Contains("corrupt", e.Message);
    }

    [Fact]
    public void PlainSafetensorsIsNotACheckpoint()
    {
        var (model, _) = Trained();
        var path = Temp("w.safetensors");
        SafeTensors.Save(path, model.state_dict());
        Assert.Contains("not a Workbook checkpoint", Assert.Throws<CheckpointException>(() => Checkpoint.Load(path, model)).Message);
    }

    [Fact]
    public void MismatchedModelListsEveryTensorAndChangesNothing()
    {
        var (model, opt) = Trained(hidden: 8);
        var path = Temp("m.safetensors");
        Checkpoint.Save(path, model, opt);

        var (wider, wideOpt) = Trained(hidden: 16, seed: 5);
        var before = TrainingData.Bytes(wider);
        var e = Assert.Throws<CheckpointException>(() => Checkpoint.Load(path, wider, wideOpt));
        Assert.Contains("model.fc1.weight is [8, 6] F32 in the checkpoint but [16, 6] F32 in the model", e.Message);
        Assert.Contains("model.fc1.bias is [8] F32 in the checkpoint but [16] F32 in the model", e.Message);
        Assert.Contains("model.fc2.weight is [3, 8] F32 in the checkpoint but [3, 16] F32 in the model", e.Message);
        Assert.Equal(3, e.Problems.Count);
        var after = TrainingData.Bytes(wider);
        for (int i = 0; i < before.Length; i++) Assert.True(before[i].SequenceEqual(after[i]), "a failed load must not change the model");

        // A different architecture: tensors missing from the file and tensors the model does not have.
        var other = new TinyMlp(6, 8, 3); // fc1, fc2 but no dropout; same shapes: loads
        Checkpoint.Load(path, other);
        var deeper = new Deeper();
        var e2 = Assert.Throws<CheckpointException>(() => Checkpoint.Load(path, deeper));
        Assert.Contains("missing model.fc3.weight [3, 3]", e2.Message);
        Assert.Contains("missing model.fc3.bias [3]", e2.Message);
    }

    [Fact]
    public void UnexpectedTensorsAndOptimizerTypeAreReported()
    {
        var (model, opt) = Trained();
        var path = Temp("u.safetensors");
        Checkpoint.Save(path, model, opt);
        var shallow = new OneLayer();
        var e = Assert.Throws<CheckpointException>(() => Checkpoint.Load(path, shallow));
        Assert.Contains("unexpected model.fc2.weight [3, 8]", e.Message);

        var model2 = new DropoutMlp(6, 8, 3);
        var sgd = Optimizers.Sgd(model2.parameters(), lr: 0.1);
        var e2 = Assert.Throws<CheckpointException>(() => Checkpoint.Load(path, model2, sgd));
        Assert.Contains("holds AdamW state but the optimizer is SGD", e2.Message);
    }

    sealed class Deeper : nn.Module<Tensor, Tensor>
    {
        readonly TorchSharp.Modules.Linear fc1 = nn.Linear(6, 8), fc2 = nn.Linear(8, 3), fc3 = nn.Linear(3, 3);
        public Deeper() : base(nameof(Deeper)) => RegisterComponents();
        public override Tensor forward(Tensor x) => fc3.call(fc2.call(fc1.call(x)));
    }

    sealed class OneLayer : nn.Module<Tensor, Tensor>
    {
        readonly TorchSharp.Modules.Linear fc1 = nn.Linear(6, 8);
        public OneLayer() : base(nameof(OneLayer)) => RegisterComponents();
        public override Tensor forward(Tensor x) => fc1.call(x);
    }
}
