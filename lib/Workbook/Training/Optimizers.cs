using System.Globalization;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Workbook.Training;

/// <summary>
/// TorchSharp's optimizers with PyTorch's defaults spelled out. (TorchSharp's <c>torch.optim.Adam(...)</c> factory
/// has defaulted β₂ to 0.99 in some versions, where PyTorch uses 0.999; constructing through here avoids such
/// surprises.) Create optimizers outside any dispose scope: their state tensors live as long as the optimizer.
/// The update rules, with g the gradient and t the step count from 1:
/// <list type="bullet">
/// <item>SGD: <c>p ← p − lr·g</c>; with momentum μ: <c>b ← μ·b + g</c> (b = g at t = 1), <c>p ← p − lr·b</c>; weight decay λ adds λ·p to g.</item>
/// <item>Adam: <c>m ← β₁m + (1−β₁)g</c>, <c>v ← β₂v + (1−β₂)g²</c>, <c>p ← p − lr · (m/(1−β₁ᵗ)) / (√(v/(1−β₂ᵗ)) + ε)</c>; weight decay λ adds λ·p to g (L2, coupled).</item>
/// <item>AdamW: <c>p ← p·(1 − lr·λ)</c> first (decoupled weight decay, Loshchilov &amp; Hutter), then the Adam update.</item>
/// </list>
/// Verified step for step against PyTorch (<c>optim_mlp.safetensors</c>, <c>optim_quadratic.safetensors</c>).
/// </summary>
public static class Optimizers
{
    /// <summary>Stochastic gradient descent, optionally with (Nesterov) momentum and L2 weight decay.</summary>
    public static torch.optim.Optimizer Sgd(IEnumerable<Parameter> parameters, double lr, double momentum = 0, double weightDecay = 0,
        bool nesterov = false, double dampening = 0) =>
        new SGD(parameters, lr, momentum: momentum, dampening: dampening, weight_decay: weightDecay, nesterov: nesterov);

    /// <summary>Adam (Kingma &amp; Ba, 2015) with bias correction; <paramref name="weightDecay"/> is the coupled L2 penalty.</summary>
    public static torch.optim.Optimizer Adam(IEnumerable<Parameter> parameters, double lr = 1e-3, double beta1 = 0.9, double beta2 = 0.999,
        double eps = 1e-8, double weightDecay = 0) =>
        new TorchSharp.Modules.Adam(parameters, lr, beta1, beta2, eps, weightDecay);

    /// <summary>AdamW: Adam with decoupled weight decay (PyTorch's default λ = 0.01).</summary>
    public static torch.optim.Optimizer AdamW(IEnumerable<Parameter> parameters, double lr = 1e-3, double beta1 = 0.9, double beta2 = 0.999,
        double eps = 1e-8, double weightDecay = 0.01) =>
        new TorchSharp.Modules.AdamW(parameters, lr, beta1, beta2, eps, weightDecay);

    /// <summary>
    /// AdamW with weight decay on the matrices only, as GPT-2 and nanoGPT train: two parameter groups, the trainable
    /// parameters with two or more dimensions (linear and embedding weights) decayed by <paramref name="weightDecay"/>,
    /// the others (biases, LayerNorm gains and shifts) not. Frozen parameters (<c>requires_grad = false</c>) are left out.
    /// </summary>
    /// <param name="module">The model.</param>
    /// <param name="lr">Peak learning rate (a <see cref="LRSchedule"/> usually sets the rate of every step).</param>
    /// <param name="weightDecay">Decoupled weight decay λ of the matrices.</param>
    /// <param name="beta1">β₁.</param>
    /// <param name="beta2">β₂ (nanoGPT: 0.95; 0.99 for small data such as tiny Shakespeare).</param>
    /// <param name="eps">ε.</param>
    public static torch.optim.Optimizer AdamWMatrixDecay(torch.nn.Module module, double lr = 1e-3, double weightDecay = 0.1,
        double beta1 = 0.9, double beta2 = 0.95, double eps = 1e-8)
    {
        var trainable = module.parameters().Where(p => p.requires_grad).ToList();
        return torch.optim.AdamW(
            [
                new TorchSharp.Modules.AdamW.ParamGroup(trainable.Where(p => p.dim() >= 2), new TorchSharp.Modules.AdamW.Options { weight_decay = weightDecay }),
                new TorchSharp.Modules.AdamW.ParamGroup(trainable.Where(p => p.dim() < 2), new TorchSharp.Modules.AdamW.Options { weight_decay = 0.0 }),
            ],
            lr: lr, beta1: beta1, beta2: beta2, eps: eps);
    }

    /// <summary>The learning rate of the first parameter group.</summary>
    public static double GetLearningRate(torch.optim.Optimizer optimizer) => optimizer.ParamGroups.First().LearningRate;

    /// <summary>Sets the learning rate of every parameter group.</summary>
    public static void SetLearningRate(torch.optim.Optimizer optimizer, double lr)
    {
        foreach (var g in optimizer.ParamGroups) g.LearningRate = lr;
    }

    /// <summary>
    /// The optimizer's per-parameter state as named tensors for a checkpoint:
    /// <c>{prefix}{param}.momentum_buffer</c> (SGD with momentum, after the first step),
    /// <c>{prefix}{param}.exp_avg</c>, <c>.exp_avg_sq</c>, <c>.max_exp_avg_sq</c> (amsgrad) and <c>.step</c> (int64 scalar) for Adam/AdamW.
    /// The tensors are copies on the CPU. Also returns the metadata (type, per-group learning rates).
    /// </summary>
    /// <exception cref="NotSupportedException">An optimizer other than SGD, Adam or AdamW.</exception>
    /// <exception cref="ArgumentException">The optimizer holds a parameter the module does not have.</exception>
    public static (Dictionary<string, Tensor> Tensors, Dictionary<string, string> Metadata) ExportState(torch.optim.Optimizer optimizer,
        torch.nn.Module module, string prefix = "optimizer.")
    {
        var tensors = new Dictionary<string, Tensor>();
        foreach (var (name, state) in NamedStates(optimizer, module))
        {
            foreach (var (field, t) in Fields(state))
                if (t is not null) tensors[prefix + name + "." + field] = t.detach().cpu().clone();
            if (StepOf(state) is { } step) tensors[prefix + name + ".step"] = torch.tensor(step);
        }
        var meta = new Dictionary<string, string>
        {
            ["optimizer.type"] = optimizer.GetType().Name,
            ["optimizer.lr"] = string.Join(",", optimizer.ParamGroups.Select(g => g.LearningRate.ToString("R", CultureInfo.InvariantCulture))),
        };
        return (tensors, meta);
    }

    /// <summary>
    /// What is wrong with loading <paramref name="tensors"/> into the optimizer's state (empty when it fits): missing,
    /// unexpected and mis-shaped entries, by name.
    /// </summary>
    public static List<string> CheckState(torch.optim.Optimizer optimizer, torch.nn.Module module, IReadOnlyDictionary<string, Tensor> tensors,
        IReadOnlyDictionary<string, string> metadata, string prefix = "optimizer.")
    {
        var problems = new List<string>();
        var type = optimizer.GetType().Name;
        if (metadata.TryGetValue("optimizer.type", out var saved) && saved != type)
        {
            problems.Add($"the checkpoint holds {saved} state but the optimizer is {type}");
            return problems;
        }
        var expected = new HashSet<string>();
        foreach (var (name, state) in NamedStates(optimizer, module))
        {
            var p = module.named_parameters().First(np => np.name == name).parameter;
            foreach (var (field, t) in Fields(state))
            {
                var key = prefix + name + "." + field;
                expected.Add(key);
                bool optional = state is SGD.State; // momentum buffers exist only after the first step
                if (!tensors.TryGetValue(key, out var have))
                {
                    if (!optional && !(field == "max_exp_avg_sq" && t is null)) problems.Add($"missing {key} {Shape(p.shape)}");
                    continue;
                }
                if (!have.shape.SequenceEqual(p.shape) || have.dtype != p.dtype)
                    problems.Add($"{key} is {Shape(have.shape)} {have.dtype} in the checkpoint but the parameter is {Shape(p.shape)} {p.dtype}");
            }
            if (StepOf(state) is not null)
            {
                var key = prefix + name + ".step";
                expected.Add(key);
                if (!tensors.TryGetValue(key, out var step)) problems.Add($"missing {key} []");
                else if (step.dtype != ScalarType.Int64 || step.dim() != 0)
                    problems.Add($"{key} is {Shape(step.shape)} {step.dtype} in the checkpoint but must be an Int64 scalar []");
                else if (step.item<long>() is var n && n < 0) problems.Add($"{key} is {n}, expected a step count ≥ 0");
            }
        }
        foreach (var key in tensors.Keys.Where(k => k.StartsWith(prefix, StringComparison.Ordinal) && !expected.Contains(k)).OrderBy(k => k))
            problems.Add($"unexpected {key} {Shape(tensors[key].shape)} (no such parameter in the optimizer)");
        if (metadata.TryGetValue("optimizer.lr", out var lrs) && LearningRateProblem(lrs, optimizer.ParamGroups.Count()) is { } lrProblem)
            problems.Add(lrProblem);
        return problems;
    }

    /// <summary>Loads state exported by <see cref="ExportState"/>; call <see cref="CheckState"/> first (this assumes it fits).</summary>
    public static void ImportState(torch.optim.Optimizer optimizer, torch.nn.Module module, IReadOnlyDictionary<string, Tensor> tensors,
        IReadOnlyDictionary<string, string> metadata, string prefix = "optimizer.")
    {
        using var noGrad = torch.no_grad();
        foreach (var (name, state) in NamedStates(optimizer, module))
        {
            var p = module.named_parameters().First(np => np.name == name).parameter;
            switch (state)
            {
                case SGD.State s:
                    if (tensors.TryGetValue(prefix + name + ".momentum_buffer", out var mb))
                    {
                        s.momentum_buffer ??= torch.zeros_like(p).DetachFromDisposeScope();
                        s.momentum_buffer.copy_(mb);
                    }
                    else
                    {
                        s.momentum_buffer?.Dispose();
                        s.momentum_buffer = null!;
                    }
                    break;
                // Adam's and AdamW's states are distinct TorchSharp types with the same fields.
                case Adam.State a:
                    a.step = ImportMoments(name, a.exp_avg, a.exp_avg_sq, a.max_exp_avg_sq);
                    break;
                case AdamW.State w:
                    w.step = ImportMoments(name, w.exp_avg, w.exp_avg_sq, w.max_exp_avg_sq);
                    break;
            }
        }

        long ImportMoments(string name, Tensor expAvg, Tensor expAvgSq, Tensor? maxExpAvgSq)
        {
            expAvg.copy_(tensors[prefix + name + ".exp_avg"]);
            expAvgSq.copy_(tensors[prefix + name + ".exp_avg_sq"]);
            maxExpAvgSq?.copy_(tensors[prefix + name + ".max_exp_avg_sq"]);
            return tensors[prefix + name + ".step"].item<long>();
        }
        if (metadata.TryGetValue("optimizer.lr", out var lrs))
        {
            if (LearningRateProblem(lrs, optimizer.ParamGroups.Count()) is { } problem) throw new ArgumentException(problem + "; call CheckState first.", nameof(metadata));
            var values = ParseRates(lrs);
            int i = 0;
            foreach (var g in optimizer.ParamGroups) g.LearningRate = values[i++];
        }
    }

    static double[] ParseRates(string lrs) =>
        lrs.Split(',').Select(v => double.TryParse(v, NumberStyles.Float, CultureInfo.InvariantCulture, out var x) ? x : double.NaN).ToArray();

    /// <summary>What is wrong with the saved learning rates (null if nothing): one finite rate ≥ 0 per parameter group.</summary>
    static string? LearningRateProblem(string lrs, int groups)
    {
        var values = ParseRates(lrs);
        if (values.Length != groups) return $"metadata 'optimizer.lr' is '{lrs}': {values.Length} rate(s), but the optimizer has {groups} parameter group(s)";
        return values.Any(v => !double.IsFinite(v) || v < 0) ? $"metadata 'optimizer.lr' is '{lrs}', expected {groups} comma-separated finite rate(s) ≥ 0" : null;
    }

    static string Shape(long[] shape) => "[" + string.Join(", ", shape) + "]";

    /// <summary>Each optimized parameter's name in the module, with its optimizer state, in the optimizer's order.</summary>
    static IEnumerable<(string Name, OptimizerState State)> NamedStates(torch.optim.Optimizer optimizer, torch.nn.Module module)
    {
        if (optimizer is not OptimizerHelper helper || optimizer is not (SGD or TorchSharp.Modules.Adam or TorchSharp.Modules.AdamW))
            throw new NotSupportedException($"Checkpointing supports the SGD, Adam and AdamW optimizers; got {optimizer.GetType().Name}.");
        var names = module.named_parameters().ToDictionary(np => np.parameter.Handle, np => np.name);
        var states = helper.state_dict().State;
        int i = 0;
        foreach (var group in optimizer.ParamGroups.Cast<ParamGroup>())
            foreach (var p in group.Parameters)
            {
                if (!names.TryGetValue(p.Handle, out var name))
                    throw new ArgumentException($"The optimizer holds a parameter of shape {Shape(p.shape)} that is not in the module's named_parameters(); " +
                        "build the optimizer from this module's parameters.", nameof(module));
                yield return (name, states[i++]);
            }
    }

    static IEnumerable<(string Field, Tensor? Value)> Fields(OptimizerState state) => state switch
    {
        SGD.State s => new[] { ("momentum_buffer", (Tensor?)s.momentum_buffer) },
        Adam.State a => new[] { ("exp_avg", (Tensor?)a.exp_avg), ("exp_avg_sq", a.exp_avg_sq), ("max_exp_avg_sq", a.max_exp_avg_sq) },
        AdamW.State w => new[] { ("exp_avg", (Tensor?)w.exp_avg), ("exp_avg_sq", w.exp_avg_sq), ("max_exp_avg_sq", w.max_exp_avg_sq) },
        _ => throw new NotSupportedException($"Unsupported optimizer state {state.GetType().FullName}."),
    };

    static long? StepOf(OptimizerState state) => state switch
    {
        Adam.State a => a.step,
        AdamW.State w => w.step,
        _ => null,
    };
}
