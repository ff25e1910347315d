using TorchSharp;
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

/// <summary>
/// Token windows as an <see cref="Data.IBatchSource"/> for <see cref="Training.Trainer"/>: inputs <c>[B, T]</c> and the
/// same windows shifted by one as targets. <see cref="Random"/> draws <c>batchesPerEpoch</c> batches of random windows
/// per epoch of the source (seeded by the epoch number, so a resumed run sees the same batches); a Trainer that trains
/// by steps (<see cref="Training.Trainer.MaxSteps"/>) runs through as many of these epochs as its budget needs.
/// <see cref="Sequential"/> cuts a split into consecutive non-overlapping windows, every token once, for evaluation.
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
