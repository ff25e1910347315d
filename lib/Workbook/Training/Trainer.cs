using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using TorchSharp;
using TorchSharp.Modules;
using Workbook.Data;
using static TorchSharp.torch;

namespace Workbook.Training;

/// <summary>
/// Early stopping: stop when the monitored value has not improved by more than <see cref="MinDelta"/> for
/// <see cref="Patience"/> evaluations in a row (epochs, or <see cref="Trainer.EvalEvery"/>-step evaluations), and (by
/// default) put back the weights of the best one.
/// </summary>
/// <param name="Monitor">A history column: "val_loss" (default), "val_accuracy", "train_loss", ...</param>
/// <param name="Patience">Evaluations without improvement before stopping.</param>
/// <param name="MinDelta">The smallest change that counts as an improvement.</param>
/// <param name="RestoreBest">Load the best evaluation's weights when stopping (and at the end of the run).</param>
/// <param name="HigherIsBetter">The direction; null infers it (losses: lower, metrics: <see cref="Metric.HigherIsBetter"/>).</param>
public sealed record EarlyStopping(string Monitor = "val_loss", int Patience = 3, double MinDelta = 0, bool RestoreBest = true, bool? HigherIsBetter = null);

/// <summary>Loss and metrics of a model over a dataset (<see cref="Trainer.Evaluate"/>).</summary>
/// <param name="Loss">Mean loss per sample.</param>
/// <param name="Metrics">Metric values by name.</param>
/// <param name="Samples">Samples evaluated.</param>
public sealed record EvaluationResult(double Loss, IReadOnlyDictionary<string, double> Metrics, long Samples)
{
    /// <summary>A metric by name ("loss" gives the loss).</summary>
    public double this[string name] => name == "loss" ? Loss : Metrics.TryGetValue(name, out var v) ? v
        : throw new KeyNotFoundException($"No metric '{name}'; have: loss, {string.Join(", ", Metrics.Keys)}.");

    /// <inheritdoc/>
    public override string ToString() =>
        $"loss {Loss:F4}" + string.Concat(Metrics.Select(kv => $", {kv.Key} {kv.Value:F4}")) + $" over {Samples} samples";
}

/// <summary>
/// The training loop of the series, for any <c>Module&lt;Tensor, Tensor&gt;</c> on any <see cref="IBatchSource"/> of
/// (input, target) batches, with a pluggable loss <c>(output, target) → scalar</c> and <see cref="Metric"/>s. It runs
/// by epochs (Keras-style) or by optimizer steps (nanoGPT-style):
/// <code>
/// // By epochs: evaluate, early-stop and checkpoint after every epoch.
/// var trainer = new Trainer(model, Optimizers.AdamW(model.parameters(), lr: 1e-3), Losses.CrossEntropy)
/// {
///     Epochs = 10, Metrics = { Metric.Accuracy }, Schedule = LRSchedule.WarmupCosine(1e-3, 100, 10 * loader.BatchCount),
///     ClipGradNorm = 1.0, EarlyStopping = new EarlyStopping("val_accuracy", Patience: 3), CheckpointPath = "ckpt.safetensors",
///     OnProgress = ConsoleProgress.Bar(),
/// };
/// var history = trainer.Fit(trainLoader, valLoader);
///
/// // By steps: 5,000 optimizer steps, cycling through the source's epochs; evaluate, early-stop and checkpoint every 250.
/// var lm = new Trainer(gpt, Optimizers.AdamWMatrixDecay(gpt, lr: 1e-3), GptModel.Loss)
/// {
///     MaxSteps = 5000, EvalEvery = 250, Schedule = LRSchedule.WarmupCosine(1e-3, 100, 5000, 1e-4), ClipGradNorm = 1.0,
/// };
/// </code>
/// Per micro-batch, inside its own dispose scope (so memory stays flat): forward, loss, <c>(loss / k).backward()</c>
/// for k accumulated micro-batches. Every k micro-batches (and at the epoch's end): clip the gradient norm, set the
/// learning rate from the schedule, <c>optimizer.step()</c>, <c>zero_grad()</c>. At each evaluation (an epoch's end,
/// or every <see cref="EvalEvery"/> steps): the validation source in eval mode without gradients, a record in the
/// history, early stopping, the checkpoint, a progress report, the callbacks. The model is in train mode during
/// training (dropout on) and in eval mode during evaluation. <see cref="Callbacks"/> hook into fixed points of the
/// loop (see <see cref="TrainerCallback"/>).
/// <para>
/// Resuming is exact: <see cref="LoadCheckpoint"/> restores weights, optimizer state, epoch, step, the position inside
/// the epoch, history, early stopping and torch's RNG; the batch order of an epoch depends only on the source's seed
/// and the epoch number; the schedule depends only on the step. So a run resumed from any of its checkpoints continues
/// with exactly the losses an uninterrupted run has (on CPU; CUDA kernels may not be deterministic).
/// </para>
/// <para>
/// Parameters with <c>requires_grad = false</c> (frozen) are left out of clipping; build the optimizer over the
/// trainable ones. With several parameter groups, the <see cref="Schedule"/> scales every group alike: each group keeps
/// the ratio of its learning rate to the largest one the optimizer had when the Trainer was created (as PyTorch's
/// schedulers scale every group's initial rate by the same factor).
/// </para>
/// Batches are moved to the device of the model's first parameter. Build the optimizer after moving the model.
/// </summary>
public sealed class Trainer
{
    readonly double[] _baseRates;
    List<Parameter> _trainable = new();
    double? _bestValue;
    int _evaluationsWithoutImprovement;
    Dictionary<string, Tensor>? _bestWeights;
    int _batchInEpoch;                // micro-batches of epoch `Epoch` already trained (a checkpoint inside an epoch)
    Tally? _epochTally, _periodTally; // the epoch so far, and the steps since the last step evaluation
    Tensor? _pendingRng;              // torch's RNG from a checkpoint, applied where the interrupted run stood
    long _checkpointStep = -1;
    Stopwatch? _watch;                // the clock of the Fit in progress

    static Trainer() => TrainingFormatters.Register();

    /// <summary>Creates a trainer; set the options with an object initializer.</summary>
    /// <param name="model">The model (already on its device).</param>
    /// <param name="optimizer">The optimizer over the model's trainable parameters (see <see cref="Optimizers"/>).</param>
    /// <param name="loss">The loss, e.g. <see cref="Losses.CrossEntropy(Tensor, Tensor)"/>.</param>
    public Trainer(nn.Module<Tensor, Tensor> model, torch.optim.Optimizer optimizer, Func<Tensor, Tensor, Tensor> loss)
    {
        Model = model ?? throw new ArgumentNullException(nameof(model));
        Optimizer = optimizer ?? throw new ArgumentNullException(nameof(optimizer));
        Loss = loss ?? throw new ArgumentNullException(nameof(loss));
        if (!model.parameters().Any()) throw new ArgumentException("The model has no parameters to train.", nameof(model));
        _baseRates = optimizer.ParamGroups.Select(g => g.LearningRate).ToArray();
    }

    /// <summary>The model.</summary>
    public nn.Module<Tensor, Tensor> Model { get; }

    /// <summary>The optimizer.</summary>
    public torch.optim.Optimizer Optimizer { get; }

    /// <summary>The loss function <c>(output, target) → scalar</c>.</summary>
    public Func<Tensor, Tensor, Tensor> Loss { get; }

    /// <summary>Metrics tracked on training and validation data (e.g. <see cref="Metric.Accuracy"/>).</summary>
    public List<Metric> Metrics { get; init; } = new();

    /// <summary>Code run at fixed points of the loop (see <see cref="TrainerCallback"/>), in order.</summary>
    public List<TrainerCallback> Callbacks { get; init; } = new();

    /// <summary>Total epochs of the run (a resumed run continues up to this many); ignored when <see cref="MaxSteps"/> is set.</summary>
    public int Epochs { get; set; } = 10;

    /// <summary>
    /// Train for this many optimizer steps in total instead of <see cref="Epochs"/>: the source's epochs follow one
    /// another (epoch 0, 1, ...) until the budget is reached, usually inside an epoch. Null: train by epochs.
    /// </summary>
    public long? MaxSteps { get; set; }

    /// <summary>
    /// Evaluate every this many optimizer steps (and once more at the end of the run) instead of at every epoch's
    /// end: each evaluation adds an <see cref="EvaluationRecord"/>, is what early stopping judges and where checkpoints
    /// are written. Epoch records then have the training side only. Null: evaluate by epochs.
    /// </summary>
    public int? EvalEvery { get; set; }

    /// <summary>Learning-rate schedule over optimizer steps; null keeps the optimizer's rate. With several parameter
    /// groups, the first follows the schedule and the others keep the ratio to it they were built with.</summary>
    public LRSchedule? Schedule { get; set; }

    /// <summary>Clip the total gradient L2 norm to this value before each step (null: no clipping).</summary>
    public double? ClipGradNorm { get; set; }

    /// <summary>Micro-batches per optimizer step (gradient accumulation): the effective batch is this × the loader's batch size.</summary>
    public int AccumulationSteps { get; set; } = 1;

    /// <summary>Early stopping, or null.</summary>
    public EarlyStopping? EarlyStopping { get; set; }

    /// <summary>Save a checkpoint here every <see cref="CheckpointEvery"/> evaluations and at the end of the run (null: never).</summary>
    public string? CheckpointPath { get; set; }

    /// <summary>Evaluations (epochs, or <see cref="EvalEvery"/>-step evaluations) between checkpoints.</summary>
    public int CheckpointEvery { get; set; } = 1;

    /// <summary>The run's seed, recorded in checkpoints (default: <see cref="Notebook.Seed"/>).</summary>
    public int Seed { get; set; } = Notebook.Seed;

    /// <summary>Progress callback (see <see cref="TrainingProgress"/>), called on the training thread.</summary>
    public Action<TrainingProgress>? OnProgress { get; set; }

    /// <summary>Minimum time between <see cref="TrainingPhase.Train"/> reports.</summary>
    public TimeSpan ProgressInterval { get; set; } = TimeSpan.FromSeconds(0.5);

    /// <summary>Stop when a training loss is NaN or infinite (default true).</summary>
    public bool StopOnNonFiniteLoss { get; set; } = true;

    /// <summary>Everything recorded so far (continued after <see cref="LoadCheckpoint"/>).</summary>
    public TrainingHistory History { get; private set; } = new();

    /// <summary>Completed epochs.</summary>
    public int Epoch => History.Epochs.Count;

    /// <summary>Optimizer steps done.</summary>
    public long Step { get; private set; }

    /// <summary>
    /// Trains from where the run stands (nothing done, or where a loaded checkpoint left off) up to
    /// <see cref="Epochs"/> epochs, or <see cref="MaxSteps"/> steps when set.
    /// </summary>
    /// <param name="train">Training batches (shuffled, usually).</param>
    /// <param name="validation">Validation batches, evaluated at each evaluation (optional).</param>
    /// <param name="cancellationToken">Stops after the current micro-batch; the history's StopReason says so and
    /// the last checkpoint is the one to resume from.</param>
    /// <returns>The history (also in <see cref="History"/>).</returns>
    public TrainingHistory Fit(IBatchSource train, IBatchSource? validation = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(train);
        if (AccumulationSteps < 1) throw new InvalidOperationException($"AccumulationSteps must be ≥ 1, got {AccumulationSteps}.");
        if (ClipGradNorm is { } c && !(c > 0)) throw new InvalidOperationException($"ClipGradNorm must be > 0, got {c}.");
        if (EarlyStopping is { Patience: < 1 } es) throw new InvalidOperationException($"EarlyStopping.Patience must be ≥ 1, got {es.Patience}.");
        if (MaxSteps is < 1) throw new InvalidOperationException($"MaxSteps must be ≥ 1 (or null to train by epochs), got {MaxSteps}.");
        if (EvalEvery is < 1) throw new InvalidOperationException($"EvalEvery must be ≥ 1 (or null to evaluate by epochs), got {EvalEvery}.");
        if (CheckpointEvery < 1) throw new InvalidOperationException($"CheckpointEvery must be ≥ 1, got {CheckpointEvery}.");
        _trainable = Model.parameters().Where(p => p.requires_grad).ToList();
        if (_trainable.Count == 0) throw new InvalidOperationException("Every parameter of the model is frozen (requires_grad = false): nothing to train.");
        History.StopReason = null;
        History.StopDetail = null;
        var run = new Run(train, validation, Model.parameters().First().device, _watch = Stopwatch.StartNew());
        _epochTally ??= new Tally(Metrics.Count);
        _periodTally ??= new Tally(Metrics.Count);
        _epochTally.Start(run.Clock);
        _periodTally.Start(run.Clock);
        Optimizer.zero_grad();
        foreach (var cb in Callbacks) cb.OnFitStart(this);

        (StopReason Reason, string Detail)? stop = BudgetDone() ? Completed() : null;
        while (stop is null) stop = TrainEpoch(run, cancellationToken);
        var (reason, detail) = stop.Value;
        if (reason is StopReason.Cancelled or StopReason.NonFiniteLoss) Optimizer.zero_grad(); // drop a half-accumulated step
        if (reason == StopReason.Completed && EvalEvery is not null && History.Steps.Count > 0 && History.Evaluations.LastOrDefault()?.Steps != Step
            && EvaluateBySteps(run, History.Steps[^1].Epoch, final: true))
            (reason, detail) = (StopReason.EarlyStopping, History.StopDetail!);
        History.StopReason = reason;
        History.StopDetail = detail;
        _epochTally.Pause(run.Clock);
        _periodTally.Pause(run.Clock);
        if (CheckpointPath is not null && reason is StopReason.Completed or StopReason.EarlyStopping && _checkpointStep != Step)
            SaveCheckpoint(CheckpointPath);
        if (EarlyStopping is { RestoreBest: true } && _bestWeights is not null && reason != StopReason.Cancelled) RestoreBestWeights();

        var last = History.Last;
        OnProgress?.Invoke(new TrainingProgress(TrainingPhase.Done, Math.Max(0, Epoch - 1), Epochs, train.BatchCount, train.BatchCount, Step,
            last?.TrainLoss ?? double.NaN, Optimizers.GetLearningRate(Optimizer), last?.SamplesPerSecond ?? 0,
            TimeSpan.FromSeconds(last?.Seconds ?? 0), History) { MaxSteps = MaxSteps });
        foreach (var cb in Callbacks) cb.OnFitEnd(this, History);
        return History;
    }

    /// <summary>What one call of <see cref="Fit"/> works with.</summary>
    sealed record Run(IBatchSource Train, IBatchSource? Validation, Device Device, Stopwatch Watch)
    {
        public TimeSpan Clock => Watch.Elapsed;
    }

    bool BudgetDone() => MaxSteps is { } max ? Step >= max : Epoch >= Epochs;

    (StopReason, string) Completed() => MaxSteps is { } max
        ? (StopReason.Completed, $"reached MaxSteps = {max}")
        : (StopReason.Completed, $"ran all {Epochs} epochs ({Step} steps)");

    /// <summary>Trains epoch <see cref="Epoch"/> from where it stands; returns why the run stops, or null to go on.</summary>
    (StopReason Reason, string Detail)? TrainEpoch(Run run, CancellationToken cancellationToken)
    {
        int epoch = Epoch, batches = run.Train.BatchCount, skip = _batchInEpoch;
        var tally = _epochTally!;
        Model.train();
        double groupLoss = 0; int groupCount = 0;
        double lr = Optimizers.GetLearningRate(Optimizer);
        var lastReport = run.Clock;
        int b = 0;
        using (var batchEnumerator = run.Train.Batches(epoch).GetEnumerator())
        {
            for (; ; b++)
            {
                if (cancellationToken.IsCancellationRequested)
                    return (StopReason.Cancelled, $"cancelled at step {Step} (epoch {epoch + 1}, batch {b}/{batches})");
                using var scope = torch.NewDisposeScope(); // the batch, activations, loss and gradients' temporaries die here
                if (b == skip) ApplyPendingRng();          // after re-drawing the batches a resumed run had already trained on
                if (!batchEnumerator.MoveNext()) break;
                if (b < skip) continue;
                var (input, target) = batchEnumerator.Current;
                if (!SameDevice(input, run.Device)) input = input.to(run.Device);
                if (!SameDevice(target, run.Device)) target = target.to(run.Device);

                // Gradient accumulation: the k micro-batches of a step each contribute loss / k, so the summed gradient
                // is the gradient of their mean loss. The last group of an epoch may be shorter.
                int groupStart = b - b % AccumulationSteps;
                int groupSize = Math.Max(1, Math.Min(AccumulationSteps, batches - groupStart));
                var output = Model.call(input);
                var loss = Loss(output, target);
                (loss / groupSize).backward();

                double lossValue = ToDouble(loss);
                double[]? metricValues = null;
                if (Metrics.Count > 0)
                    using (torch.no_grad())
                        metricValues = EvaluateMetrics(output.detach(), target);
                tally.Add(lossValue, input.shape[0], metricValues);
                _periodTally!.Add(lossValue, input.shape[0], metricValues);
                groupLoss += lossValue; groupCount++;

                (StopReason Reason, string Detail)? after = null;
                if (groupCount == groupSize)
                {
                    lr = OptimizerStep(epoch, ref groupLoss, ref groupCount);
                    _batchInEpoch = b + 1;
                    after = AfterStep(run, epoch);
                }

                if (StopOnNonFiniteLoss && !double.IsFinite(lossValue))
                    return (StopReason.NonFiniteLoss, $"the training loss became {lossValue} at step {Step} (epoch {epoch + 1}, batch {b + 1}): " +
                        "lower the learning rate or clip gradients");
                if (after is { } stop)
                {
                    if (stop.Reason != StopReason.Completed || b + 1 < batches) return stop;
                    break; // the budget ends with the epoch's last batch: the epoch is complete
                }
                if (OnProgress is not null && run.Clock - lastReport >= ProgressInterval)
                {
                    lastReport = run.Clock;
                    OnProgress(new TrainingProgress(TrainingPhase.Train, epoch, Epochs, b + 1, batches, Step, tally.MeanLoss, lr,
                        tally.SamplesPerSecond(run.Clock), tally.Elapsed(run.Clock), History) { MaxSteps = MaxSteps });
                }
            }
        }
        if (groupCount > 0)
        {
            // The source yielded fewer batches than its BatchCount said: step on what was accumulated, so no
            // gradient leaks into the next epoch.
            using var scope = torch.NewDisposeScope();
            lr = OptimizerStep(epoch, ref groupLoss, ref groupCount);
            if (AfterStep(run, epoch) is { Reason: not StopReason.Completed } stop) return stop;
        }
        if (tally.Samples == 0)
            throw new InvalidOperationException(skip > 0
                ? $"Resuming inside epoch {epoch + 1} at batch {skip}, but the training source has only {b} batches in that epoch."
                : $"The training source produced no batches in epoch {epoch + 1}.");
        return EndEpoch(run, epoch, lr);
    }

    /// <summary>After an optimizer step: a step evaluation when one is due, and the step budget.</summary>
    (StopReason Reason, string Detail)? AfterStep(Run run, int epoch)
    {
        if (EvalEvery is { } every && Step % every == 0 && EvaluateBySteps(run, epoch, final: false))
            return (StopReason.EarlyStopping, History.StopDetail!);
        if (MaxSteps is { } max && Step >= max)
        {
            // By epochs, the step budget ends the run inside an epoch: that partial epoch is its last evaluation.
            if (EvalEvery is null && _batchInEpoch < run.Train.BatchCount) return EndEpoch(run, epoch, Optimizers.GetLearningRate(Optimizer)) ?? Completed();
            return Completed();
        }
        return null;
    }

    /// <summary>Records a finished epoch; when evaluating by epochs, also validation, early stopping, checkpoint, callbacks.</summary>
    (StopReason Reason, string Detail)? EndEpoch(Run run, int epoch, double lr)
    {
        var tally = _epochTally!;
        bool evaluate = EvalEvery is null;
        var (val, evalSeconds) = evaluate ? Validate(run) : (null, 0);
        tally.EvalSeconds += evalSeconds;
        var record = new EpochRecord(epoch, Step, lr, tally.MeanLoss, MetricMeans(tally.MetricSums, tally.MetricCounts), val?.Loss,
            val?.Metrics ?? new Dictionary<string, double>(), tally.Elapsed(run.Clock).TotalSeconds, tally.SamplesPerSecond(run.Clock));
        History.Epochs.Add(record);
        _batchInEpoch = 0;
        tally.Reset(run.Clock);
        if (evaluate) _periodTally!.Reset(run.Clock);
        bool stop = evaluate && EarlyStopping is not null && UpdateEarlyStopping(record);
        if (evaluate) CheckpointIfDue(stop);
        OnProgress?.Invoke(new TrainingProgress(TrainingPhase.EpochEnd, epoch, Epochs, run.Train.BatchCount, run.Train.BatchCount, Step,
            record.TrainLoss, lr, record.SamplesPerSecond, TimeSpan.FromSeconds(record.Seconds), History) { MaxSteps = MaxSteps });
        if (evaluate) foreach (var cb in Callbacks) cb.OnEvaluation(this, record);
        if (stop) return (StopReason.EarlyStopping, History.StopDetail!);
        return BudgetDone() ? Completed() : null;
    }

    /// <summary>A step evaluation: validation, the record, early stopping, checkpoint, progress, callbacks. True: stop early.</summary>
    bool EvaluateBySteps(Run run, int epoch, bool final)
    {
        var period = _periodTally!;
        var (val, evalSeconds) = Validate(run);
        period.EvalSeconds += evalSeconds;
        _epochTally!.EvalSeconds += evalSeconds;
        double lr = History.Steps.Count > 0 ? History.Steps[^1].LearningRate : Optimizers.GetLearningRate(Optimizer);
        var record = new EvaluationRecord(epoch, Step, lr, period.Samples > 0 ? period.MeanLoss : double.NaN,
            MetricMeans(period.MetricSums, period.MetricCounts), val?.Loss, val?.Metrics ?? new Dictionary<string, double>(),
            period.Elapsed(run.Clock).TotalSeconds, period.SamplesPerSecond(run.Clock));
        History.Evaluations.Add(record);
        period.Reset(run.Clock);
        bool stop = EarlyStopping is not null && UpdateEarlyStopping(record);
        if (!final) CheckpointIfDue(stop);
        OnProgress?.Invoke(new TrainingProgress(TrainingPhase.Evaluation, epoch, Epochs, _batchInEpoch, run.Train.BatchCount, Step,
            record.TrainLoss, lr, record.SamplesPerSecond, TimeSpan.FromSeconds(record.Seconds), History) { MaxSteps = MaxSteps });
        foreach (var cb in Callbacks) cb.OnEvaluation(this, record);
        return stop;
    }

    (EvaluationResult? Result, double Seconds) Validate(Run run)
    {
        if (run.Validation is null) return (null, 0);
        var t0 = run.Clock;
        var result = Evaluate(run.Validation);
        Model.train();
        return (result, (run.Clock - t0).TotalSeconds);
    }

    void CheckpointIfDue(bool stopping)
    {
        if (CheckpointPath is not null && (History.Records.Count % CheckpointEvery == 0 || stopping)) SaveCheckpoint(CheckpointPath);
    }

    /// <summary>Clip, set the scheduled rate, step, zero the gradients and record the step; returns the rate used.</summary>
    double OptimizerStep(int epoch, ref double groupLoss, ref int groupCount)
    {
        double stepLoss = groupLoss / groupCount;
        if (Callbacks.Count > 0)
        {
            var before = new TrainingStepContext(this, Step, epoch, Optimizers.GetLearningRate(Optimizer), stepLoss);
            foreach (var cb in Callbacks) cb.OnGradients(before);
        }
        double? gradNorm = ClipGradNorm is { } maxNorm ? nn.utils.clip_grad_norm_(_trainable, maxNorm) : null;
        double lr = Schedule is null ? Optimizers.GetLearningRate(Optimizer) : SetScheduledRates(Schedule.LearningRate(Step));
        var context = Callbacks.Count > 0 ? new TrainingStepContext(this, Step, epoch, lr, stepLoss) : null;
        if (context is not null) foreach (var cb in Callbacks) cb.OnBeforeStep(context);
        Optimizer.step();
        if (context is not null) foreach (var c in Callbacks) c.OnAfterStep(context);
        Optimizer.zero_grad();
        var record = new StepRecord(Step, epoch, stepLoss, lr, gradNorm);
        History.Steps.Add(record);
        Step++;
        groupLoss = 0; groupCount = 0;
        foreach (var cb in Callbacks) cb.OnStepEnd(this, record);
        return lr;
    }

    /// <summary>
    /// Sets the scheduled rate: the first parameter group gets <paramref name="lr"/>, every other group keeps the ratio
    /// to the first group's rate it was built with (discriminative fine-tuning: a new head built at 10× the backbone's
    /// rate stays at 10× through warm-up and decay). Groups built with one rate all get <paramref name="lr"/>.
    /// </summary>
    double SetScheduledRates(double lr)
    {
        double first = _baseRates.Length == 0 ? 0 : _baseRates[0];
        int i = 0;
        foreach (var g in Optimizer.ParamGroups)
        {
            double initial = _baseRates[Math.Min(i++, _baseRates.Length - 1)];
            g.LearningRate = first > 0 && initial != first ? lr * (initial / first) : lr;
        }
        return lr;
    }

    double[] EvaluateMetrics(Tensor output, Tensor target)
    {
        var values = new double[2 * Metrics.Count];
        for (int m = 0; m < Metrics.Count; m++) (values[2 * m], values[2 * m + 1]) = Metrics[m].Evaluate(output, target);
        return values;
    }

    Dictionary<string, double> MetricMeans(double[] sums, double[] counts)
    {
        var means = new Dictionary<string, double>();
        for (int m = 0; m < Metrics.Count; m++) means[Metrics[m].Name] = sums[m] / counts[m];
        return means;
    }

    /// <summary>
    /// Loss and metrics over a whole source in eval mode without gradients (dropout off); restores the model's
    /// previous train/eval mode afterwards. Batches of epoch 0 of the source are used.
    /// </summary>
    public EvaluationResult Evaluate(IBatchSource data)
    {
        ArgumentNullException.ThrowIfNull(data);
        bool wasTraining = Model.training;
        Model.eval();
        var device = Model.parameters().First().device;
        double lossSum = 0; long samples = 0;
        var sums = new double[Metrics.Count]; var counts = new double[Metrics.Count];
        try
        {
            using var noGrad = torch.no_grad();
            using var e = data.Batches(0).GetEnumerator();
            while (true)
            {
                using var scope = torch.NewDisposeScope();
                if (!e.MoveNext()) break;
                var (input, target) = e.Current;
                if (!SameDevice(input, device)) input = input.to(device);
                if (!SameDevice(target, device)) target = target.to(device);
                var output = Model.call(input);
                long n = input.shape[0];
                lossSum += ToDouble(Loss(output, target)) * n; samples += n;
                for (int m = 0; m < Metrics.Count; m++)
                {
                    var (s, c) = Metrics[m].Evaluate(output, target);
                    sums[m] += s; counts[m] += c;
                }
            }
        }
        finally
        {
            Model.train(wasTraining);
        }
        if (samples == 0) throw new InvalidOperationException("The evaluation source produced no batches.");
        return new EvaluationResult(lossSum / samples, MetricMeans(sums, counts), samples);
    }

    /// <summary>
    /// Saves model, optimizer state, epoch, step, the position inside the epoch, seed, RNG state, history and
    /// early-stopping state (atomically).
    /// </summary>
    public void SaveCheckpoint(string path)
    {
        var meta = new Dictionary<string, string>
        {
            ["trainer.early_stopping"] = JsonSerializer.Serialize(new EarlyStoppingState(_bestValue, _evaluationsWithoutImprovement), StateJson),
            ["trainer.schedule"] = Schedule?.Description ?? "none",
            ["trainer.accumulation_steps"] = AccumulationSteps.ToString(CultureInfo.InvariantCulture),
            ["trainer.best_weights"] = (_bestWeights?.Count ?? 0).ToString(CultureInfo.InvariantCulture),
            ["trainer.batch_in_epoch"] = _batchInEpoch.ToString(CultureInfo.InvariantCulture),
            ["trainer.tallies"] = JsonSerializer.Serialize(new[] { _epochTally ?? new Tally(Metrics.Count), _periodTally ?? new Tally(Metrics.Count) }
                .Select(t => t.State(_watch?.Elapsed ?? TimeSpan.Zero)).ToArray(), StateJson),
        };
        var extra = _bestWeights?.ToDictionary(kv => "best." + kv.Key, kv => kv.Value);
        Checkpoint.Save(path, Model, Optimizer, Epoch, Step, Seed, History, meta, extra);
        _checkpointStep = Step;
    }

    /// <summary>
    /// Restores a checkpoint written by <see cref="SaveCheckpoint"/> (or <see cref="CheckpointPath"/>): weights,
    /// optimizer state, epoch, step, the position inside the epoch, history, early-stopping state (with the best
    /// weights) and torch's RNG. <see cref="Fit"/> then continues; it re-applies the RNG state where the saved run
    /// stood, so drawing random numbers between loading and fitting does not change the resumed run. The whole file is
    /// checked first, the trainer's own parts included (the history agrees with the epoch and step, the early-stopping
    /// and position state parse, the best weights match the model), so a failed load changes nothing: not the model,
    /// the optimizer, the RNG nor this trainer.
    /// </summary>
    /// <exception cref="CheckpointException">The file is corrupt, truncated or does not match the model or optimizer; the message lists every problem.</exception>
    public CheckpointInfo LoadCheckpoint(string path)
    {
        var extra = new Dictionary<string, Tensor>();
        EarlyStoppingState? state = null;
        int batchInEpoch = 0;
        TallyState[]? tallies = null;
        IEnumerable<string> Validate(CheckpointInfo info, IReadOnlyDictionary<string, Tensor> extras)
        {
            var history = info.History;
            if (history.Epochs.Count != info.Epoch)
                yield return $"metadata says epoch {info.Epoch} but the history has {history.Epochs.Count} epochs";
            for (int i = 0; i < history.Epochs.Count; i++)
                if (history.Epochs[i].Epoch != i) { yield return $"the history's epoch record {i} says it is epoch {history.Epochs[i].Epoch}"; break; }
            if (history.Steps.Count != info.Step)
                yield return $"metadata says step {info.Step} but the history records {history.Steps.Count} steps";
            if (history.BestStep is { } bestStep && (bestStep < 0 || bestStep > info.Step))
                yield return $"the history's best step is {bestStep}, outside its {info.Step} steps";
            if (info.Metadata.TryGetValue("trainer.batch_in_epoch", out var bie)
                && (!int.TryParse(bie, NumberStyles.None, CultureInfo.InvariantCulture, out batchInEpoch)))
                yield return $"metadata 'trainer.batch_in_epoch' is '{bie}', not an integer ≥ 0";
            if (info.Metadata.TryGetValue("trainer.tallies", out var talliesText))
            {
                string? problem = null;
                try
                {
                    tallies = JsonSerializer.Deserialize<TallyState[]>(talliesText, StateJson);
                    if (tallies is not { Length: 2 } || tallies.Any(x => x is null || x.MetricSums is null || x.MetricCounts is null || x.Samples < 0
                        || x.MetricSums.Length != x.MetricCounts.Length))
                        problem = "expected two running sums (the epoch's, and the steps' since the last evaluation)";
                }
                catch (JsonException e) { problem = e.Message; }
                if (problem is not null) yield return $"metadata 'trainer.tallies' is '{talliesText}': {problem}";
            }
            if (history.BestEpoch is { } best && (best < 0 || best >= history.Epochs.Count))
                yield return $"the history's best epoch is {best}, outside its {history.Epochs.Count} epochs";
            if (info.Metadata.TryGetValue("trainer.early_stopping", out var es))
            {
                string? problem = null;
                try
                {
                    state = JsonSerializer.Deserialize<EarlyStoppingState>(es, StateJson);
                    if (state is null || state.EpochsWithoutImprovement < 0) problem = "expected {\"BestValue\": number|null, \"EpochsWithoutImprovement\": integer ≥ 0}";
                }
                catch (JsonException e) { problem = e.Message; }
                if (problem is not null) yield return $"metadata 'trainer.early_stopping' is '{es}': {problem}";
            }
            var bestWeights = extras.Where(kv => kv.Key.StartsWith("best.", StringComparison.Ordinal)).ToDictionary(kv => kv.Key[5..], kv => kv.Value);
            if (info.Metadata.TryGetValue("trainer.best_weights", out var countText)
                && (!int.TryParse(countText, NumberStyles.None, CultureInfo.InvariantCulture, out int count) || count != bestWeights.Count))
                yield return $"metadata 'trainer.best_weights' says '{countText}' tensors but the file has {bestWeights.Count} extra.best.* tensors";
            if (bestWeights.Count > 0)
            {
                // Early stopping copies these into the model at the end of Fit: check them now, not after the epochs.
                var modelState = Model.state_dict();
                foreach (var (name, t) in modelState)
                {
                    if (!bestWeights.TryGetValue(name, out var b)) yield return $"missing extra.best.{name} {Shape(t.shape)} (early stopping's best weights)";
                    else if (!b.shape.SequenceEqual(t.shape) || b.dtype != t.dtype)
                        yield return $"extra.best.{name} is {Shape(b.shape)} {b.dtype} in the checkpoint but {Shape(t.shape)} {t.dtype} in the model";
                }
                foreach (var name in bestWeights.Keys.Where(k => !modelState.ContainsKey(k)).Order(StringComparer.Ordinal))
                    yield return $"unexpected extra.best.{name} {Shape(bestWeights[name].shape)} (the model has no such tensor)";
            }
        }

        var info = Checkpoint.LoadValidated(path, Model, Optimizer, restoreRng: true, extraTensors: extra, validate: Validate);
        // Everything was checked before Checkpoint.Load changed anything; this part cannot fail.
        History = info.History;
        Step = info.Step;
        _checkpointStep = Step;
        _pendingRng?.Dispose();
        _pendingRng = torch.get_rng_state().DetachFromDisposeScope();
        if (state is not null)
        {
            _bestValue = state.BestValue;
            _evaluationsWithoutImprovement = state.EpochsWithoutImprovement;
        }
        _batchInEpoch = batchInEpoch;
        _epochTally = tallies is { Length: 2 } ? Tally.From(tallies[0]) : null;
        _periodTally = tallies is { Length: 2 } ? Tally.From(tallies[1]) : null;
        DisposeBest();
        var bestLoaded = extra.Where(kv => kv.Key.StartsWith("best.", StringComparison.Ordinal)).ToDictionary(kv => kv.Key[5..], kv => kv.Value);
        _bestWeights = bestLoaded.Count > 0 ? bestLoaded : null;
        foreach (var (k, v) in extra) if (!k.StartsWith("best.", StringComparison.Ordinal)) v.Dispose();
        return info;
    }

    void ApplyPendingRng()
    {
        if (_pendingRng is null) return;
        torch.set_rng_state(_pendingRng);
        _pendingRng.Dispose();
        _pendingRng = null;
    }

    static readonly JsonSerializerOptions StateJson = new() { NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals };

    static string Shape(long[] shape) => "[" + string.Join(", ", shape) + "]";

    bool UpdateEarlyStopping(TrainingRecord record)
    {
        var es = EarlyStopping!;
        double value = record.Get(es.Monitor) ?? throw new InvalidOperationException(
            $"EarlyStopping monitors '{es.Monitor}', but the history has: {string.Join(", ", History.ColumnNames)}" +
            (es.Monitor.StartsWith("val_", StringComparison.Ordinal) ? " (pass a validation source to Fit)." : "."));
        bool higher = es.HigherIsBetter ?? (es.Monitor.EndsWith("loss", StringComparison.Ordinal) ? false
            : Metrics.FirstOrDefault(m => es.Monitor.EndsWith("_" + m.Name, StringComparison.Ordinal))?.HigherIsBetter ?? false);
        bool improved = _bestValue is not { } best || (higher ? value > best + es.MinDelta : value < best - es.MinDelta);
        if (improved)
        {
            _bestValue = value;
            _evaluationsWithoutImprovement = 0;
            History.BestStep = record.Steps;
            History.BestEpoch = record is EpochRecord ? record.Epoch : null;
            if (es.RestoreBest) SnapshotBest();
            return false;
        }
        _evaluationsWithoutImprovement++;
        if (_evaluationsWithoutImprovement < es.Patience) return false;
        History.StopReason = StopReason.EarlyStopping; // before the checkpoint of this evaluation is written
        History.StopDetail = record is EpochRecord
            ? $"early stopping: {es.Monitor} did not improve for {es.Patience} epochs (best {_bestValue:G5} at epoch {History.BestEpoch + 1})"
            : $"early stopping: {es.Monitor} did not improve for {es.Patience} evaluations (best {_bestValue:G5} at step {History.BestStep})";
        return true;
    }

    void SnapshotBest()
    {
        DisposeBest();
        using var noGrad = torch.no_grad();
        _bestWeights = Model.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.detach().cpu().clone().DetachFromDisposeScope());
    }

    void RestoreBestWeights()
    {
        using var noGrad = torch.no_grad();
        foreach (var (k, t) in Model.state_dict()) t.copy_(_bestWeights![k]);
    }

    void DisposeBest()
    {
        if (_bestWeights is null) return;
        foreach (var t in _bestWeights.Values) t.Dispose();
        _bestWeights = null;
    }

    static bool SameDevice(Tensor t, Device d) => t.device_type == d.type && t.device_index == d.index;

    static double ToDouble(Tensor scalar) => scalar.dtype switch
    {
        ScalarType.Float64 => scalar.item<double>(),
        ScalarType.Float32 => scalar.item<float>(),
        _ => scalar.to_type(ScalarType.Float64).item<double>(),
    };

    /// <summary>Early stopping's state in a checkpoint; <c>EpochsWithoutImprovement</c> counts evaluations (epochs when
    /// evaluating by epochs; the name is the one checkpoint files have always had).</summary>
    sealed record EarlyStoppingState(double? BestValue, int EpochsWithoutImprovement);

    /// <summary>The saved form of a <see cref="Tally"/>.</summary>
    sealed record TallyState(double LossSum, long Samples, double[] MetricSums, double[] MetricCounts, double Seconds, double EvalSeconds);

    /// <summary>Running sums of a stretch of training (an epoch, or the steps since the last evaluation).</summary>
    sealed class Tally(int metrics)
    {
        TimeSpan _start;
        bool _running;
        double _priorSeconds;
        public double LossSum { get; private set; }
        public long Samples { get; private set; }
        public double[] MetricSums { get; private set; } = new double[metrics];
        public double[] MetricCounts { get; private set; } = new double[metrics];
        /// <summary>Time spent validating inside this stretch (left out of its throughput).</summary>
        public double EvalSeconds { get; set; }
        public double MeanLoss => LossSum / Samples;

        public void Start(TimeSpan now) => (_start, _running) = (now, true);

        public void Pause(TimeSpan now) => (_priorSeconds, _running) = (Elapsed(now).TotalSeconds, false);

        public void Reset(TimeSpan now)
        {
            (LossSum, Samples, EvalSeconds, _priorSeconds) = (0, 0, 0, 0);
            MetricSums = new double[MetricSums.Length];
            MetricCounts = new double[MetricCounts.Length];
            Start(now);
        }

        /// <param name="loss">The micro-batch's mean loss.</param>
        /// <param name="n">Its samples.</param>
        /// <param name="metricValues">(sum, count) of each metric, interleaved.</param>
        public void Add(double loss, long n, double[]? metricValues)
        {
            LossSum += loss * n;
            Samples += n;
            if (metricValues is null) return;
            for (int m = 0; m < MetricSums.Length; m++) { MetricSums[m] += metricValues[2 * m]; MetricCounts[m] += metricValues[2 * m + 1]; }
        }

        public TimeSpan Elapsed(TimeSpan now) => TimeSpan.FromSeconds(_priorSeconds) + (_running ? now - _start : TimeSpan.Zero);

        public double SamplesPerSecond(TimeSpan now) => Samples / Math.Max(1e-9, Elapsed(now).TotalSeconds - EvalSeconds);

        public TallyState State(TimeSpan now) => new(LossSum, Samples, MetricSums, MetricCounts, Elapsed(now).TotalSeconds, EvalSeconds);

        public static Tally From(TallyState s) => new(s.MetricSums.Length)
        {
            LossSum = s.LossSum, Samples = s.Samples, MetricSums = s.MetricSums, MetricCounts = s.MetricCounts, EvalSeconds = s.EvalSeconds,
            _priorSeconds = s.Seconds,
        };
    }
}
