using static TorchSharp.torch;

namespace Workbook.Gpt;

/// <summary>Deterministic evaluation of a language model on a whole token split.</summary>
public static class GptEvaluation
{
    /// <summary>
    /// Mean next-token cross-entropy over every token of <paramref name="tokens"/>, cut into consecutive,
    /// non-overlapping windows of <paramref name="blockSize"/> (the last partial window included), without dropout.
    /// Perplexity is <c>exp</c> of it.
    /// </summary>
    /// <param name="model">The model (evaluated in eval mode, restored afterwards).</param>
    /// <param name="tokens">Token ids in the model's vocabulary.</param>
    /// <param name="blockSize">Window length, at most the context.</param>
    /// <param name="batchSize">Windows per forward pass.</param>
    /// <param name="loss">Mean loss of logits against targets; default <see cref="GptModel.Loss"/> (e.g. pass
    /// <see cref="CompactVocabulary.CrossEntropy"/> for a compact model).</param>
    /// <exception cref="ArgumentException">Fewer than two tokens, or a window longer than the context.</exception>
    public static double SplitLoss(GptModel model, IReadOnlyList<int> tokens, int blockSize, int batchSize = 16, Func<Tensor, Tensor, Tensor>? loss = null)
    {
        loss ??= GptModel.Loss;
        double sum = 0;
        long count = 0;
        foreach (var (x, y, _) in Windows(model, tokens, blockSize, batchSize))
        {
            sum += loss(model.forward(x), y).item<float>() * y.numel();
            count += y.numel();
        }
        return sum / count;
    }

    /// <summary>
    /// The next-token loss of every position of <paramref name="tokens"/>: entry i is the loss of predicting token i+1
    /// (consecutive windows of <paramref name="blockSize"/>, as <see cref="SplitLoss"/>, whose value is their mean), so
    /// a notebook can split the loss by kind of token.
    /// </summary>
    /// <param name="model">The model (evaluated in eval mode, restored afterwards).</param>
    /// <param name="tokens">Token ids in the model's vocabulary.</param>
    /// <param name="blockSize">Window length, at most the context.</param>
    /// <param name="batchSize">Windows per forward pass.</param>
    /// <param name="tokenLoss">Per-position loss of logits <c>[B, T, V]</c> against targets <c>[B, T]</c>, returning
    /// <c>[B·T]</c>; default: cross-entropy without reduction (pass <see cref="CompactVocabulary.TokenCrossEntropy"/> for a compact model).</param>
    /// <exception cref="ArgumentException">Fewer than two tokens, or a window longer than the context.</exception>
    public static float[] TokenLosses(GptModel model, IReadOnlyList<int> tokens, int blockSize, int batchSize = 16, Func<Tensor, Tensor, Tensor>? tokenLoss = null)
    {
        tokenLoss ??= (logits, targets) => nn.functional.cross_entropy(logits.reshape(-1, logits.shape[^1]), targets.reshape(-1), reduction: nn.Reduction.None);
        var result = new float[Math.Max(0, tokens.Count - 1)];
        foreach (var (x, y, starts) in Windows(model, tokens, blockSize, batchSize))
        {
            var losses = tokenLoss(model.forward(x), y).to(ScalarType.Float32).cpu().data<float>().ToArray();
            int T = (int)y.shape[1];
            for (int b = 0; b < starts.Length; b++) Array.Copy(losses, b * T, result, starts[b], T);
        }
        return result;
    }

    /// <summary>
    /// Consecutive windows of the split (the last partial window included), batched by length: inputs, targets and
    /// each row's start. Runs in eval mode without gradients, inside a dispose scope per batch; restores the mode.
    /// </summary>
    static IEnumerable<(Tensor X, Tensor Y, int[] Starts)> Windows(GptModel model, IReadOnlyList<int> tokens, int blockSize, int batchSize)
    {
        if (tokens.Count < 2) throw new ArgumentException("Need at least two tokens to evaluate next-token loss.", nameof(tokens));
        if (blockSize > model.Config.MaxLength) throw new ArgumentException($"blockSize {blockSize} exceeds the context of {model.Config.MaxLength}.", nameof(blockSize));
        return Iterate();

        IEnumerable<(Tensor, Tensor, int[])> Iterate()
        {
            bool wasTraining = model.training;
            model.eval();
            try
            {
                var starts = new List<int>();
                for (int s = 0; s < tokens.Count - 1; s += blockSize) starts.Add(s);
                using var _ = no_grad();
                foreach (var group in starts.GroupBy(s => Math.Min(blockSize, tokens.Count - 1 - s)))
                    foreach (var chunk in group.Chunk(batchSize))
                    {
                        using var scope = NewDisposeScope();
                        int T = group.Key;
                        var x = new long[chunk.Length * T];
                        var y = new long[chunk.Length * T];
                        for (int b = 0; b < chunk.Length; b++)
                            for (int t = 0; t < T; t++) { x[b * T + t] = tokens[chunk[b] + t]; y[b * T + t] = tokens[chunk[b] + t + 1]; }
                        yield return (tensor(x, [chunk.Length, T], device: model.Device), tensor(y, [chunk.Length, T], device: model.Device), chunk);
                    }
            }
            finally
            {
                if (wasTraining) model.train();
            }
        }
    }
}
