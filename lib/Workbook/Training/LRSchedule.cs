namespace Workbook.Training;

/// <summary>
/// A learning-rate schedule: the learning rate as a pure function of the optimizer step t = 0, 1, 2, ... (the number
/// of optimizer updates already done). Being a function of t alone, with no hidden state, a schedule resumes
/// exactly from a checkpoint. The <see cref="Trainer"/> sets every parameter group's rate to
/// <see cref="LearningRate"/>(t) before update t. Counted in optimizer steps, not epochs: for "decay every k
/// epochs" pass k × batches per epoch (÷ accumulation steps).
/// </summary>
public abstract class LRSchedule
{
    /// <summary>The learning rate for optimizer step <paramref name="step"/> (0-based).</summary>
    public abstract double LearningRate(long step);

    /// <summary>A short description with the parameters, e.g. "cosine(lr=0.001, total=1000, min=0)".</summary>
    public abstract string Description { get; }

    /// <summary>The rates of steps 0..steps-1, e.g. to plot the schedule.</summary>
    public double[] Values(long steps) => Enumerable.Range(0, checked((int)steps)).Select(t => LearningRate(t)).ToArray();

    /// <inheritdoc/>
    public override string ToString() => Description;

    /// <summary>The same rate at every step.</summary>
    public static LRSchedule Constant(double lr) => new FuncSchedule("constant", $"constant(lr={lr})", _ => lr);

    /// <summary>Step decay (PyTorch's <c>StepLR</c>): <c>lr · gamma^floor(t / stepSize)</c>.</summary>
    /// <param name="lr">The initial rate.</param>
    /// <param name="stepSize">Steps between decays.</param>
    /// <param name="gamma">Factor per decay, e.g. 0.1.</param>
    public static LRSchedule Step(double lr, long stepSize, double gamma = 0.1)
    {
        if (stepSize < 1) throw new ArgumentOutOfRangeException(nameof(stepSize), stepSize, "stepSize must be ≥ 1.");
        Check(lr);
        return new FuncSchedule("step", $"step(lr={lr}, every {stepSize}, gamma={gamma})", t => lr * Math.Pow(gamma, t / stepSize));
    }

    /// <summary>
    /// Cosine annealing (the closed form of PyTorch's <c>CosineAnnealingLR</c>, without restarts):
    /// <c>min + (lr − min) · (1 + cos(π · t / total)) / 2</c> for t ≤ total, <c>min</c> after.
    /// </summary>
    /// <param name="lr">The rate at t = 0.</param>
    /// <param name="totalSteps">The step where the rate reaches <paramref name="minLr"/> (PyTorch's T_max).</param>
    /// <param name="minLr">The final rate (PyTorch's eta_min).</param>
    public static LRSchedule Cosine(double lr, long totalSteps, double minLr = 0)
    {
        if (totalSteps < 1) throw new ArgumentOutOfRangeException(nameof(totalSteps), totalSteps, "totalSteps must be ≥ 1.");
        Check(lr);
        return new FuncSchedule("cosine", $"cosine(lr={lr}, total={totalSteps}, min={minLr})",
            t => t >= totalSteps ? minLr : minLr + (lr - minLr) * 0.5 * (1 + Math.Cos(Math.PI * t / totalSteps)));
    }

    /// <summary>
    /// Linear warmup, then cosine decay (the GPT recipe):
    /// <c>lr · (t + 1) / warmup</c> for t &lt; warmup (so step 0 already moves and step warmup−1 reaches lr), then
    /// <c>min + (lr − min) · (1 + cos(π · (t − warmup) / (total − warmup))) / 2</c> up to t = total, and <c>min</c> after.
    /// </summary>
    /// <param name="lr">The peak rate.</param>
    /// <param name="warmupSteps">Steps of linear warmup (≥ 1).</param>
    /// <param name="totalSteps">The step where the rate reaches <paramref name="minLr"/>; must exceed warmupSteps.</param>
    /// <param name="minLr">The final rate, often lr / 10.</param>
    public static LRSchedule WarmupCosine(double lr, long warmupSteps, long totalSteps, double minLr = 0)
    {
        if (warmupSteps < 1) throw new ArgumentOutOfRangeException(nameof(warmupSteps), warmupSteps, "warmupSteps must be ≥ 1 (use Cosine for none).");
        if (totalSteps <= warmupSteps)
            throw new ArgumentOutOfRangeException(nameof(totalSteps), totalSteps, $"totalSteps must exceed warmupSteps ({warmupSteps}).");
        Check(lr);
        return new FuncSchedule("warmup_cosine", $"warmup_cosine(lr={lr}, warmup={warmupSteps}, total={totalSteps}, min={minLr})", t =>
        {
            if (t < warmupSteps) return lr * (t + 1) / warmupSteps;
            if (t >= totalSteps) return minLr;
            double progress = (double)(t - warmupSteps) / (totalSteps - warmupSteps);
            return minLr + (lr - minLr) * 0.5 * (1 + Math.Cos(Math.PI * progress));
        });
    }

    /// <summary>Any function of the step, e.g. <c>LRSchedule.From("inverse sqrt", t => 0.01 / Math.Sqrt(t + 1))</c>.</summary>
    public static LRSchedule From(string description, Func<long, double> learningRate) =>
        new FuncSchedule("custom", description, learningRate);

    static void Check(double lr)
    {
        if (!(lr >= 0) || double.IsInfinity(lr)) throw new ArgumentOutOfRangeException(nameof(lr), lr, "lr must be a finite number ≥ 0.");
    }

    sealed class FuncSchedule(string kind, string description, Func<long, double> f) : LRSchedule
    {
        public override double LearningRate(long step)
        {
            if (step < 0) throw new ArgumentOutOfRangeException(nameof(step), step, $"{kind} schedule: step must be ≥ 0.");
            return f(step);
        }

        public override string Description => description;
    }
}
