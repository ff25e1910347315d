using System.Diagnostics;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Workbook.Gpt;

/// <summary>
/// A token stream for language-model training, split the nanoGPT way: the first <c>1 - valFraction</c> of the text
/// for training, the rest for validation (a contiguous split, so no validation passage leaks into training windows).
/// </summary>
public sealed class TokenDataset
{
    /// <summary>Splits <paramref name="tokens"/>: the first part trains, the last <paramref name="valFraction"/> validates.</summary>
    /// <exception cref="ArgumentException">The fraction is outside (0, 1) or a split would be empty.</exception>
    public TokenDataset(IReadOnlyList<int> tokens, double valFraction = 0.1)
    {
        if (valFraction is <= 0 or >= 1) throw new ArgumentException($"valFraction must be in (0, 1), got {valFraction}.", nameof(valFraction));
        int n = (int)(tokens.Count * (1 - valFraction));
        Train = tokens.Take(n).ToArray();
        Val = tokens.Skip(n).ToArray();
        if (Train.Length < 2 || Val.Length < 2) throw new ArgumentException($"{tokens.Count} tokens are too few to split into train and validation.", nameof(tokens));
    }

    /// <summary>Training tokens.</summary>
    public int[] Train { get; }

    /// <summary>Validation tokens.</summary>
    public int[] Val { get; }

    /// <summary>
    /// A batch of <paramref name="batchSize"/> random windows of <paramref name="blockSize"/> tokens: inputs
    /// <c>x = tokens[i .. i+T)</c> and targets <c>y = tokens[i+1 .. i+T]</c>, both <c>[B, T]</c> int64.
    /// </summary>
    /// <exception cref="ArgumentException">The split is shorter than one window.</exception>
    public (Tensor X, Tensor Y) Batch(bool validation, int batchSize, int blockSize, Random random, Device? device = null)
    {
        var data = validation ? Val : Train;
        if (data.Length <= blockSize)
            throw new ArgumentException($"The {(validation ? "validation" : "training")} split has {data.Length} tokens, fewer than a window of {blockSize} + 1.", nameof(blockSize));
        var x = new long[batchSize * blockSize];
        var y = new long[batchSize * blockSize];
        for (int b = 0; b < batchSize; b++)
        {
            int start = random.Next(data.Length - blockSize);
            for (int t = 0; t < blockSize; t++)
            {
                x[b * blockSize + t] = data[start + t];
                y[b * blockSize + t] = data[start + t + 1];
            }
        }
        return (tensor(x, [batchSize, blockSize], device: device), tensor(y, [batchSize, blockSize], device: device));
    }
}

/// <summary>
/// Training a GPT-2 on a small corpus cheaply and exactly. Tiny Shakespeare uses only ~11.7k of GPT-2's 50,257 tokens,
/// yet the LM head (a <c>[n_embd, 50257]</c> matmul and softmax) dominates a small model's cost. The tokens that never
/// occur get a <b>zero embedding row</b>: their logit is then exactly 0 for every input, so the full softmax's
/// normaliser is <c>Σ_used exp(logit) + (V − K)·exp(0)</c>. Training therefore runs a K-token model and adds one constant
/// column <c>log(V − K)</c> to the logits before cross-entropy, which is the full 50,257-way loss, not an approximation.
/// <see cref="Expand"/> turns the result into a standard GPT-2 with the full vocabulary.
/// </summary>
public sealed class CompactVocabulary
{
    readonly int[] _fullIds;
    readonly Dictionary<int, int> _compact;

    CompactVocabulary(int[] fullIds, int fullVocabSize)
    {
        _fullIds = fullIds;
        FullVocabSize = fullVocabSize;
        _compact = fullIds.Select((id, i) => (id, i)).ToDictionary(p => p.id, p => p.i);
    }

    /// <summary>The vocabulary of the tokens that occur in <paramref name="tokens"/>, in increasing id order.</summary>
    /// <exception cref="ArgumentException">An id is outside [0, fullVocabSize), or every token is used (nothing to compact).</exception>
    public static CompactVocabulary FromTokens(IEnumerable<int> tokens, int fullVocabSize)
    {
        var used = tokens.Distinct().Order().ToArray();
        if (used.Length == 0 || used[0] < 0 || used[^1] >= fullVocabSize)
            throw new ArgumentException($"Token ids must be in [0, {fullVocabSize}); got range [{used.FirstOrDefault()}, {used.LastOrDefault()}].", nameof(tokens));
        if (used.Length == fullVocabSize) throw new ArgumentException("Every token of the vocabulary is used; train the full model instead.", nameof(tokens));
        return new CompactVocabulary(used, fullVocabSize);
    }

    /// <summary>K, the number of tokens kept.</summary>
    public int Size => _fullIds.Length;

    /// <summary>V, the full vocabulary size (50,257).</summary>
    public int FullVocabSize { get; }

    /// <summary>The full-vocabulary id of each compact id.</summary>
    public IReadOnlyList<int> FullIds => _fullIds;

    /// <summary>log(V − K): the logit of "any unused token" in <see cref="CrossEntropy"/>.</summary>
    public double UnusedLogMass => Math.Log(FullVocabSize - Size);

    /// <summary>Maps full ids to compact ids.</summary>
    /// <exception cref="ArgumentException">A token is not in the compact vocabulary.</exception>
    public int[] ToCompact(IEnumerable<int> fullIds) => fullIds.Select(id => _compact.TryGetValue(id, out var c) ? c
        : throw new ArgumentException($"Token {id} is not in the compact vocabulary of {Size} tokens.", nameof(fullIds))).ToArray();

    /// <summary>Maps a compact id back to the full vocabulary.</summary>
    public int ToFull(int compactId) => _fullIds[compactId];

    /// <summary>
    /// The full-vocabulary cross-entropy from compact logits <c>[..., K]</c>: one extra class with logit log(V − K)
    /// stands for the V − K unused tokens, each of logit exactly 0. Targets are compact ids.
    /// </summary>
    public Tensor CrossEntropy(Tensor logits, Tensor targets)
    {
        using var scope = NewDisposeScope();
        return F.cross_entropy(WithUnusedColumn(logits), targets.reshape(-1)).MoveToOuterDisposeScope();
    }

    /// <summary><see cref="CrossEntropy"/> without the mean: one full-vocabulary loss per position <c>[B·T]</c>.</summary>
    public Tensor TokenCrossEntropy(Tensor logits, Tensor targets)
    {
        using var scope = NewDisposeScope();
        return F.cross_entropy(WithUnusedColumn(logits), targets.reshape(-1), reduction: nn.Reduction.None).MoveToOuterDisposeScope();
    }

    /// <summary>Logits <c>[N, K + 1]</c>: the compact logits flattened, plus the constant column log(V − K).</summary>
    Tensor WithUnusedColumn(Tensor logits)
    {
        var flat = logits.reshape(-1, logits.shape[^1]);
        return cat([flat, full([flat.shape[0], 1], UnusedLogMass, dtype: flat.dtype, device: flat.device)], 1);
    }

    /// <summary>The config of the compact model for a full GPT-2 config.</summary>
    public GptConfig CompactConfig(GptConfig full) => full with { VocabSize = Size };

    /// <summary>
    /// The inverse of <see cref="Expand"/>: a K-token model equal to the full-vocabulary <paramref name="full"/> on the
    /// kept tokens (their embedding rows gathered, every other parameter copied), to fine-tune a pretrained model at the
    /// compact head's cost. Exact only if every dropped token's embedding row is zero, as in a model trained on a
    /// subset of this vocabulary (then <see cref="CrossEntropy"/> is the full loss); this is checked.
    /// </summary>
    /// <exception cref="ArgumentException">The vocabulary sizes differ, or a dropped token has a non-zero embedding (the
    /// message gives how many and the first ids).</exception>
    public GptModel Compact(GptModel full)
    {
        ArgumentNullException.ThrowIfNull(full);
        if (full.Config.VocabSize != FullVocabSize)
            throw new ArgumentException($"The model has a vocabulary of {full.Config.VocabSize}, the compact vocabulary expects {FullVocabSize}.", nameof(full));
        var keep = new bool[FullVocabSize];
        foreach (var id in _fullIds) keep[id] = true;
        using (var _ = no_grad())
        using (var scope = NewDisposeScope())
        {
            var nonZero = full.TokenEmbedding.detach().abs().sum(1).gt(0).cpu().data<bool>().ToArray();
            var dropped = Enumerable.Range(0, FullVocabSize).Where(i => nonZero[i] && !keep[i]).ToList();
            if (dropped.Count > 0)
                throw new ArgumentException($"{dropped.Count} tokens outside the compact vocabulary have non-zero embeddings (ids {string.Join(", ", dropped.Take(5))}" +
                    $"{(dropped.Count > 5 ? ", …" : "")}), so the compact loss would not be the full one; build the vocabulary from every token the model knows.", nameof(full));
        }
        var model = new GptModel(CompactConfig(full.Config), full.Device);
        using (var _ = no_grad())
        using (var scope = NewDisposeScope())
        {
            var src = full.named_parameters().ToDictionary(p => p.name, p => p.parameter);
            var ids = tensor(_fullIds.Select(i => (long)i).ToArray(), device: full.Device);
            foreach (var (name, p) in model.named_parameters())
                p.copy_(name == "wte.weight" ? src[name].detach().index_select(0, ids) : src[name].detach());
        }
        model.train(full.training);
        return model;
    }

    /// <summary>
    /// A full-vocabulary GPT-2 equal to <paramref name="compact"/>: every parameter copied, the used tokens' embedding
    /// rows placed at their GPT-2 ids and all other rows zero. Its logits over the used tokens equal the compact
    /// model's and are 0 elsewhere.
    /// </summary>
    public GptModel Expand(GptModel compact)
    {
        if (compact.Config.VocabSize != Size)
            throw new ArgumentException($"The model has a vocabulary of {compact.Config.VocabSize}, the compact vocabulary has {Size}.", nameof(compact));
        var model = new GptModel(compact.Config with { VocabSize = FullVocabSize });
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var src = compact.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        foreach (var (name, p) in model.named_parameters())
        {
            if (name == "wte.weight")
            {
                p.zero_();
                p.index_copy_(0, tensor(_fullIds.Select(i => (long)i).ToArray()), src[name].detach().cpu());
            }
            else p.copy_(src[name].detach().cpu());
        }
        return model;
    }
}

/// <summary>The knobs of a pretraining run (nanoGPT's names in the docs).</summary>
public sealed record PretrainingOptions
{
    /// <summary>Sequences per step (batch_size).</summary>
    public int BatchSize { get; init; } = 16;
    /// <summary>Tokens per sequence (block_size); at most the model's context.</summary>
    public int BlockSize { get; init; } = 128;
    /// <summary>Optimizer steps (max_iters).</summary>
    public int MaxSteps { get; init; } = 1000;
    /// <summary>Peak learning rate.</summary>
    public double LearningRate { get; init; } = 1e-3;
    /// <summary>Learning rate at the end of the cosine decay.</summary>
    public double MinLearningRate { get; init; } = 1e-4;
    /// <summary>Linear warm-up steps.</summary>
    public int WarmupSteps { get; init; } = 100;
    /// <summary>AdamW decoupled weight decay on matrices (not on biases, LayerNorms).</summary>
    public double WeightDecay { get; init; } = 0.1;
    /// <summary>AdamW β2 (0.99 for small data, as nanoGPT's Shakespeare config).</summary>
    public double Beta2 { get; init; } = 0.99;
    /// <summary>Global gradient-norm clip.</summary>
    public double GradClip { get; init; } = 1.0;
    /// <summary>Evaluate every this many steps (and at the last step).</summary>
    public int EvalInterval { get; init; } = 100;
    /// <summary>Batches averaged per evaluation.</summary>
    public int EvalBatches { get; init; } = 20;
    /// <summary>Seed of the batch sampler (the model's init uses torch's global seed).</summary>
    public int Seed { get; init; } = 1337;

    /// <summary>The learning rate at <paramref name="step"/>: linear warm-up, then cosine decay to the minimum.</summary>
    public double LearningRateAt(int step)
    {
        if (step < WarmupSteps) return LearningRate * (step + 1) / WarmupSteps;
        if (step >= MaxSteps) return MinLearningRate;
        double progress = (double)(step - WarmupSteps) / Math.Max(1, MaxSteps - WarmupSteps);
        return MinLearningRate + 0.5 * (1 + Math.Cos(Math.PI * progress)) * (LearningRate - MinLearningRate);
    }
}

/// <summary>One logged step of <see cref="GptPretraining.Run"/>.</summary>
/// <param name="Step">Steps done (1-based).</param>
/// <param name="TrainLoss">This step's training loss.</param>
/// <param name="ValLoss">Validation loss when evaluated at this step, else null.</param>
/// <param name="EvalTrainLoss">Training loss averaged over evaluation batches (same time as <paramref name="ValLoss"/>).</param>
/// <param name="LearningRate">The learning rate used.</param>
/// <param name="TokensPerSecond">Training throughput since the previous log entry.</param>
/// <param name="Elapsed">Wall time since the start of training, excluding evaluation.</param>
public sealed record PretrainingStep(int Step, double TrainLoss, double? ValLoss, double? EvalTrainLoss, double LearningRate, double TokensPerSecond, TimeSpan Elapsed);

/// <summary>
/// A minimal GPT pretraining loop (AdamW, warm-up + cosine schedule, gradient clipping, periodic evaluation) as an
/// iterator: each <c>MoveNext</c> does one optimizer step, so a notebook can plot the loss live, sample from the model
/// between steps, or stop early.
/// </summary>
public static class GptPretraining
{
    /// <summary>Runs <paramref name="options"/>.MaxSteps steps, yielding one entry per step.</summary>
    /// <param name="model">The model to train (put in training mode).</param>
    /// <param name="data">Token ids in the model's vocabulary.</param>
    /// <param name="options">The recipe.</param>
    /// <param name="loss">Loss of logits <c>[B, T, V]</c> against targets <c>[B, T]</c>; default <see cref="GptModel.Loss"/>.</param>
    /// <param name="startStep">Resume at this step (the schedule continues from it).</param>
    /// <param name="optimizer">An optimizer to continue with; by default a new AdamW with weight decay on matrices only.</param>
    public static IEnumerable<PretrainingStep> Run(GptModel model, TokenDataset data, PretrainingOptions options,
        Func<Tensor, Tensor, Tensor>? loss = null, int startStep = 0, optim.Optimizer? optimizer = null)
    {
        if (options.BlockSize > model.Config.MaxLength)
            throw new ArgumentException($"BlockSize {options.BlockSize} exceeds the model's context of {model.Config.MaxLength}.", nameof(options));
        loss ??= GptModel.Loss;
        optimizer ??= CreateOptimizer(model, options);
        var random = new Random(options.Seed + startStep);
        var evalRandom = new Random(options.Seed ^ 0x5eed);
        var device = model.Device;
        var clock = Stopwatch.StartNew();
        var paused = TimeSpan.Zero;
        long tokensSinceLog = 0;
        var lastLog = TimeSpan.Zero;
        for (int step = startStep; step < options.MaxSteps; step++)
        {
            model.train();
            double lr = options.LearningRateAt(step);
            foreach (var g in optimizer.ParamGroups) g.LearningRate = lr;
            double trainLoss;
            using (var scope = NewDisposeScope())
            {
                var (x, y) = data.Batch(false, options.BatchSize, options.BlockSize, random, device);
                optimizer.zero_grad();
                var l = loss(model.forward(x), y);
                l.backward();
                nn.utils.clip_grad_norm_(model.parameters(), options.GradClip);
                optimizer.step();
                trainLoss = l.item<float>();
            }
            tokensSinceLog += (long)options.BatchSize * options.BlockSize;
            var elapsed = clock.Elapsed - paused;
            double tps = tokensSinceLog / Math.Max(1e-9, (elapsed - lastLog).TotalSeconds);
            tokensSinceLog = 0;
            lastLog = elapsed;

            double? val = null, evalTrain = null;
            if ((step + 1) % options.EvalInterval == 0 || step + 1 == options.MaxSteps)
            {
                var t0 = clock.Elapsed;
                evalTrain = Evaluate(model, data, false, options.EvalBatches, options.BatchSize, options.BlockSize, loss, evalRandom);
                val = Evaluate(model, data, true, options.EvalBatches, options.BatchSize, options.BlockSize, loss, evalRandom);
                paused += clock.Elapsed - t0;
            }
            yield return new PretrainingStep(step + 1, trainLoss, val, evalTrain, lr, tps, elapsed);
        }
    }

    /// <summary>AdamW (β1 0.9, β2 from the options) with weight decay on the 2-D weights only, as in GPT-2/nanoGPT.</summary>
    public static optim.Optimizer CreateOptimizer(GptModel model, PretrainingOptions options)
    {
        var decay = model.named_parameters().Where(p => p.parameter.dim() >= 2).Select(p => p.parameter).ToList();
        var noDecay = model.named_parameters().Where(p => p.parameter.dim() < 2).Select(p => p.parameter).ToList();
        return optim.AdamW(
            [
                new AdamW.ParamGroup(decay, new AdamW.Options { weight_decay = options.WeightDecay }),
                new AdamW.ParamGroup(noDecay, new AdamW.Options { weight_decay = 0.0 }),
            ],
            lr: options.LearningRate, beta1: 0.9, beta2: options.Beta2);
    }

    /// <summary>Mean loss over <paramref name="batches"/> random batches of a split, in eval mode without gradients.</summary>
    public static double Evaluate(GptModel model, TokenDataset data, bool validation, int batches, int batchSize, int blockSize,
        Func<Tensor, Tensor, Tensor>? loss = null, Random? random = null)
    {
        loss ??= GptModel.Loss;
        random ??= new Random(0);
        bool wasTraining = model.training;
        model.eval();
        double sum = 0;
        using (no_grad())
            for (int i = 0; i < batches; i++)
            {
                using var scope = NewDisposeScope();
                var (x, y) = data.Batch(validation, batchSize, blockSize, random, model.Device);
                sum += loss(model.forward(x), y).item<float>();
            }
        if (wasTraining) model.train();
        return sum / batches;
    }
}

/// <summary>
/// Token windows as an <see cref="Data.IBatchSource"/> for <see cref="Training.Trainer"/>: inputs <c>[B, T]</c> and the
/// same windows shifted by one as targets. <see cref="Random"/> draws <c>batchesPerEpoch</c> batches of random windows
/// per "epoch" (seeded by the epoch number, so a resumed run sees the same batches); <see cref="Sequential"/> cuts a
/// split into consecutive non-overlapping windows, every token once, for evaluation.
/// </summary>
public sealed class TokenWindows : Data.IBatchSource
{
    readonly int[] _tokens;
    readonly int _batchSize, _blockSize, _batches, _seed;
    readonly bool _random;

    TokenWindows(int[] tokens, int batchSize, int blockSize, int batches, int seed, bool random)
    {
        if (tokens.Length <= blockSize) throw new ArgumentException($"{tokens.Length} tokens are fewer than one window of {blockSize} + 1.", nameof(tokens));
        if (batchSize <= 0 || blockSize <= 0) throw new ArgumentException($"batchSize and blockSize must be positive, got {batchSize} and {blockSize}.");
        (_tokens, _batchSize, _blockSize, _batches, _seed, _random) = (tokens, batchSize, blockSize, batches, seed, random);
    }

    /// <summary><paramref name="batchesPerEpoch"/> batches of random windows per epoch.</summary>
    public static TokenWindows Random(int[] tokens, int batchSize, int blockSize, int batchesPerEpoch, int seed = 1337) =>
        new(tokens, batchSize, blockSize, batchesPerEpoch, seed, random: true);

    /// <summary>Consecutive windows <c>[i·T, (i+1)·T)</c> covering the split (the last, partial window is left out).</summary>
    public static TokenWindows Sequential(int[] tokens, int batchSize, int blockSize)
    {
        int windows = (tokens.Length - 1) / blockSize;
        return new(tokens, batchSize, blockSize, (windows + batchSize - 1) / batchSize, 0, random: false);
    }

    /// <inheritdoc/>
    public int BatchCount => _batches;

    /// <inheritdoc/>
    public long SampleCount => _random ? (long)_batches * _batchSize : (_tokens.Length - 1) / _blockSize;

    /// <inheritdoc/>
    public IEnumerable<Data.Batch> Batches(int epoch)
    {
        var random = new Random(unchecked(_seed * 1_000_003 + epoch));
        long windows = (_tokens.Length - 1) / _blockSize;
        for (int b = 0; b < _batches; b++)
        {
            int rows = _random ? _batchSize : (int)Math.Min(_batchSize, windows - (long)b * _batchSize);
            var x = new long[rows * _blockSize];
            var y = new long[rows * _blockSize];
            for (int r = 0; r < rows; r++)
            {
                int start = _random ? random.Next(_tokens.Length - _blockSize) : (b * _batchSize + r) * _blockSize;
                for (int t = 0; t < _blockSize; t++) { x[r * _blockSize + t] = _tokens[start + t]; y[r * _blockSize + t] = _tokens[start + t + 1]; }
            }
            yield return new Data.Batch(tensor(x, [rows, _blockSize]), tensor(y, [rows, _blockSize]));
        }
    }
}
