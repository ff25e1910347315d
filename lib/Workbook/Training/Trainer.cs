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
/// <see cref="Patience"/> epochs in a row, and (by default) put back the weights of the best epoch.
/// </summary>
/// <param name="Monitor">A history column: "val_loss" (default), "val_accuracy", "train_loss", ...</param>
/// <param name="Patience">Epochs without improvement before stopping.</param>
/// <param name="MinDelta">The smallest change that counts as an improvement.</param>
/// <param name="RestoreBest">Load the best epoch's weights when stopping (and at the end of the run).</param>
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
/// A reusable training loop for any <c>Module&lt;Tensor, Tensor&gt;</c> on any <see cref="IBatchSource"/> of
/// (input, target) batches, with a pluggable loss <c>(output, target) → scalar</c> and <see cref="Metric"/>s.
/// <code>
/// var trainer = new Trainer(model, Optimizers.AdamW(model.parameters(), lr: 1e-3), Losses.CrossEntropy)
/// {
///     Epochs = 10, Metrics = { Metric.Accuracy }, Schedule = LRSchedule.WarmupCosine(1e-3, 100, 10 * loader.BatchCount),
///     ClipGradNorm = 1.0, EarlyStopping = new EarlyStopping("val_accuracy", Patience: 3), CheckpointPath = "ckpt.safetensors",
///     OnProgress = ConsoleProgress.Bar(),
/// };
/// var history = trainer.Fit(trainLoader, valLoader);
/// </code>
/// Per micro-batch, inside its own dispose scope (so memory stays flat): forward, loss, <c>(loss / k).backward()</c>
/// for k accumulated micro-batches. Every k micro-batches (and at the epoch's end): clip the gradient norm, set the
/// learning rate from the schedule, <c>optimizer.step()</c>, <c>zero_grad()</c>. After each epoch: evaluation on the
/// validation source (<c>model.eval()</c>, no grad), the history record, early stopping, the checkpoint, a progress
/// report. The model is in train mode during training epochs (dropout on) and in eval mode during evaluation.
/// <para>
/// Resuming is exact: <see cref="LoadCheckpoint"/> restores weights, optimizer state, epoch, step, history, early
/// stopping and torch's RNG; the batch order of an epoch depends only on the loader's seed and the epoch number; the
/// schedule depends only on the step. So a run resumed from the checkpoint of epoch e continues with exactly the
/// losses an uninterrupted run has (on CPU; CUDA kernels may not be deterministic).
/// </para>
/// Batches are moved to the device of the model's first parameter. Build the optimizer after moving the model.
/// </summary>
public sealed class Trainer
{
    readonly List<Parameter> _parameters;
    double? _bestValue;
    int _epochsWithoutImprovement;
    Dictionary<string, Tensor>? _bestWeights;

    static Trainer() => TrainingFormatters.Register();

    /// <summary>Creates a trainer; set the options with an object initializer.</summary>
    /// <param name="model">The model (already on its device).</param>
    /// <param name="optimizer">The optimizer over the model's parameters (see <see cref="Optimizers"/>).</param>
    /// <param name="loss">The loss, e.g. <see cref="Losses.CrossEntropy"/>.</param>
    public Trainer(nn.Module<Tensor, Tensor> model, torch.optim.Optimizer optimizer, Func<Tensor, Tensor, Tensor> loss)
    {
        Model = model ?? throw new ArgumentNullException(nameof(model));
        Optimizer = optimizer ?? throw new ArgumentNullException(nameof(optimizer));
        Loss = loss ?? throw new ArgumentNullException(nameof(loss));
        _parameters = model.parameters().ToList();
        if (_parameters.Count == 0) throw new ArgumentException("The model has no parameters to train.", nameof(model));
    }

    /// <summary>The model.</summary>
    public nn.Module<Tensor, Tensor> Model { get; }

    /// <summary>The optimizer.</summary>
    public torch.optim.Optimizer Optimizer { get; }

    /// <summary>The loss function <c>(output, target) → scalar</c>.</summary>
    public Func<Tensor, Tensor, Tensor> Loss { get; }

    /// <summary>Metrics tracked on training and validation data (e.g. <see cref="Metric.Accuracy"/>).</summary>
    public List<Metric> Metrics { get; init; } = new();

    /// <summary>Total epochs of the run (a resumed run continues up to this many).</summary>
    public int Epochs { get; set; } = 10;

    /// <summary>Learning-rate schedule over optimizer steps; null keeps the optimizer's rate. With several parameter
    /// groups, the first follows the schedule and the others keep the ratio to it they were built with.</summary>
    public LRSchedule? Schedule { get; set; }

    /// <summary>Clip the total gradient L2 norm to this value before each step (null: no clipping).</summary>
    public double? ClipGradNorm { get; set; }

    /// <summary>Micro-batches per optimizer step (gradient accumulation): the effective batch is this × the loader's batch size.</summary>
    public int AccumulationSteps { get; set; } = 1;

    /// <summary>Early stopping, or null.</summary>
    public EarlyStopping? EarlyStopping { get; set; }

    /// <summary>Save a checkpoint here every <see cref="CheckpointEvery"/> epochs (null: never).</summary>
    public string? CheckpointPath { get; set; }

    /// <summary>Epochs between checkpoints.</summary>
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
    /// Trains from the current epoch (0, or where a loaded checkpoint left off) up to <see cref="Epochs"/>.
    /// </summary>
    /// <param name="train">Training batches (shuffled, usually).</param>
    /// <param name="validation">Validation batches, evaluated after each epoch (optional).</param>
    /// <param name="cancellationToken">Stops after the current micro-batch; the history's StopReason says so and
    /// the last checkpoint is the one to resume from.</param>
    /// <returns>The history (also in <see cref="History"/>).</returns>
    public TrainingHistory Fit(IBatchSource train, IBatchSource? validation = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(train);
        if (AccumulationSteps < 1) throw new InvalidOperationException($"AccumulationSteps must be ≥ 1, got {AccumulationSteps}.");
        if (ClipGradNorm is { } c && !(c > 0)) throw new InvalidOperationException($"ClipGradNorm must be > 0, got {c}.");
        if (EarlyStopping is { Patience: < 1 } es) throw new InvalidOperationException($"EarlyStopping.Patience must be ≥ 1, got {es.Patience}.");
        History.StopReason = null;
        var device = _parameters[0].device;
        Optimizer.zero_grad();

        for (int epoch = Epoch; epoch < Epochs; epoch++)
        {
            var clock = Stopwatch.StartNew();
            Model.train();
            int batches = train.BatchCount;
            double lossSum = 0; long samples = 0;
            var metricSums = new double[Metrics.Count]; var metricCounts = new double[Metrics.Count];
            double groupLoss = 0; int groupCount = 0;
            double lr = Optimizers.GetLearningRate(Optimizer);
            var lastReport = TimeSpan.Zero;
            int b = 0;
            using (var batchEnumerator = train.Batches(epoch).GetEnumerator())
            {
                for (; ; b++)
                {
                    if (cancellationToken.IsCancellationRequested)
                    {
                        History.StopReason = $"cancelled at step {Step} (epoch {epoch + 1}, batch {b}/{batches})";
                        break;
                    }
                    using var scope = torch.NewDisposeScope(); // the batch, activations, loss and gradients' temporaries die here
                    if (!batchEnumerator.MoveNext()) break;
                    var (input, target) = batchEnumerator.Current;
                    if (!SameDevice(input, device)) input = input.to(device);
                    if (!SameDevice(target, device)) target = target.to(device);

                    // Gradient accumulation: the k micro-batches of a step each contribute loss / k, so the summed gradient
                    // is the gradient of their mean loss. The last group of an epoch may be shorter.
                    int groupStart = b - b % AccumulationSteps;
                    int groupSize = Math.Max(1, Math.Min(AccumulationSteps, batches - groupStart));
                    var output = Model.call(input);
                    var loss = Loss(output, target);
                    (loss / groupSize).backward();

                    double lossValue = ToDouble(loss);
                    long n = input.shape[0];
                    lossSum += lossValue * n; samples += n;
                    groupLoss += lossValue; groupCount++;
                    if (Metrics.Count > 0)
                        using (torch.no_grad())
                        {
                            var detached = output.detach();
                            for (int m = 0; m < Metrics.Count; m++)
                            {
                                var (s, cnt) = Metrics[m].Evaluate(detached, target);
                                metricSums[m] += s; metricCounts[m] += cnt;
                            }
                        }

                    if (groupCount == groupSize) lr = OptimizerStep(epoch, ref groupLoss, ref groupCount);

                    if (StopOnNonFiniteLoss && !double.IsFinite(lossValue))
                    {
                        History.StopReason = $"the training loss became {lossValue} at step {Step} (epoch {epoch + 1}, batch {b + 1}): lower the learning rate or clip gradients";
                        b++;
                        break;
                    }
                    if (OnProgress is not null && clock.Elapsed - lastReport >= ProgressInterval)
                    {
                        lastReport = clock.Elapsed;
                        OnProgress(new TrainingProgress(TrainingPhase.Train, epoch, Epochs, b + 1, batches, Step, lossSum / samples, lr,
                            samples / clock.Elapsed.TotalSeconds, clock.Elapsed, History));
                    }
                }
            }
            if (History.StopReason is not null)
            {
                Optimizer.zero_grad(); // drop a half-accumulated step
                break;
            }
            if (groupCount > 0)
            {
                // The source yielded fewer batches than its BatchCount said: step on what was accumulated, so no
                // gradient leaks into the next epoch.
                using var scope = torch.NewDisposeScope();
                lr = OptimizerStep(epoch, ref groupLoss, ref groupCount);
            }
            if (samples == 0) throw new InvalidOperationException($"The training source produced no batches in epoch {epoch + 1}.");
            double trainSeconds = clock.Elapsed.TotalSeconds;

            var trainMetrics = new Dictionary<string, double>();
            for (int m = 0; m < Metrics.Count; m++) trainMetrics[Metrics[m].Name] = metricSums[m] / metricCounts[m];
            EvaluationResult? val = validation is null ? null : Evaluate(validation);
            Model.train();
            var record = new EpochRecord(epoch, Step, lr, lossSum / samples, trainMetrics, val?.Loss,
                val?.Metrics ?? new Dictionary<string, double>(), clock.Elapsed.TotalSeconds, samples / trainSeconds);
            History.Epochs.Add(record);

            bool stop = EarlyStopping is not null && UpdateEarlyStopping(record);
            if (CheckpointPath is not null && ((epoch + 1) % CheckpointEvery == 0 || epoch + 1 == Epochs || stop))
                SaveCheckpoint(CheckpointPath);
            OnProgress?.Invoke(new TrainingProgress(TrainingPhase.EpochEnd, epoch, Epochs, batches, batches, Step, record.TrainLoss, lr,
                record.SamplesPerSecond, clock.Elapsed, History));
            if (stop) break;
        }
        bool cancelled = History.StopReason?.StartsWith("cancelled", StringComparison.Ordinal) == true;
        if (EarlyStopping is { RestoreBest: true } && _bestWeights is not null && !cancelled) RestoreBestWeights();
        var lastRecord = History.Last;
        OnProgress?.Invoke(new TrainingProgress(TrainingPhase.Done, Math.Max(0, Epoch - 1), Epochs, train.BatchCount, train.BatchCount, Step,
            lastRecord?.TrainLoss ?? double.NaN, Optimizers.GetLearningRate(Optimizer), lastRecord?.SamplesPerSecond ?? 0,
            TimeSpan.FromSeconds(lastRecord?.Seconds ?? 0), History));
        return History;
    }

    /// <summary>Clip, set the scheduled rate, step, zero the gradients and record the step; returns the rate used.</summary>
    double OptimizerStep(int epoch, ref double groupLoss, ref int groupCount)
    {
        double? gradNorm = ClipGradNorm is { } maxNorm ? nn.utils.clip_grad_norm_(_parameters, maxNorm) : null;
        if (Schedule is not null) ApplySchedule(Schedule.LearningRate(Step));
        double lr = Optimizers.GetLearningRate(Optimizer);
        Optimizer.step();
        Optimizer.zero_grad();
        History.Steps.Add(new StepRecord(Step, epoch, groupLoss / groupCount, lr, gradNorm));
        Step++;
        groupLoss = 0; groupCount = 0;
        return lr;
    }

    /// <summary>
    /// Sets the scheduled rate: the first parameter group gets <paramref name="lr"/>, every other group keeps the ratio
    /// to the first group's rate it was built with (discriminative fine-tuning: a new head built at 10× the backbone's
    /// rate stays at 10× through warm-up and decay). Groups built with one rate all get <paramref name="lr"/>.
    /// </summary>
    void ApplySchedule(double lr)
    {
        double first = Optimizer.ParamGroups.First().InitialLearningRate;
        foreach (var g in Optimizer.ParamGroups)
            g.LearningRate = first > 0 ? lr * (g.InitialLearningRate / first) : lr;
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
        var device = _parameters[0].device;
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
        var metrics = new Dictionary<string, double>();
        for (int m = 0; m < Metrics.Count; m++) metrics[Metrics[m].Name] = sums[m] / counts[m];
        return new EvaluationResult(lossSum / samples, metrics, samples);
    }

    /// <summary>Saves model, optimizer state, epoch, step, seed, RNG state, history and early-stopping state (atomically).</summary>
    public void SaveCheckpoint(string path)
    {
        var meta = new Dictionary<string, string>
        {
            ["trainer.early_stopping"] = JsonSerializer.Serialize(new EarlyStoppingState(_bestValue, _epochsWithoutImprovement), StateJson),
            ["trainer.schedule"] = Schedule?.Description ?? "none",
            ["trainer.accumulation_steps"] = AccumulationSteps.ToString(CultureInfo.InvariantCulture),
            ["trainer.best_weights"] = (_bestWeights?.Count ?? 0).ToString(CultureInfo.InvariantCulture),
        };
        var extra = _bestWeights?.ToDictionary(kv => "best." + kv.Key, kv => kv.Value);
        Checkpoint.Save(path, Model, Optimizer, Epoch, Step, Seed, History, meta, extra);
    }

    /// <summary>
    /// Restores a checkpoint written by <see cref="SaveCheckpoint"/> (or <see cref="CheckpointPath"/>): weights,
    /// optimizer state, epoch, step, history, early-stopping state (with the best epoch's weights) and torch's RNG.
    /// <see cref="Fit"/> then continues. The whole file is checked first, the trainer's own parts included (the
    /// history agrees with the epoch and step, the early-stopping state parses, the best weights match the model), so
    /// a failed load changes nothing: not the model, the optimizer, the RNG nor this trainer.
    /// </summary>
    /// <exception cref="CheckpointException">The file is corrupt, truncated or does not match the model or optimizer; the message lists every problem.</exception>
    public CheckpointInfo LoadCheckpoint(string path)
    {
        var extra = new Dictionary<string, Tensor>();
        EarlyStoppingState? state = null;
        IEnumerable<string> Validate(CheckpointInfo info, IReadOnlyDictionary<string, Tensor> extras)
        {
            var history = info.History;
            if (history.Epochs.Count != info.Epoch)
                yield return $"metadata says epoch {info.Epoch} but the history has {history.Epochs.Count} epochs";
            for (int i = 0; i < history.Epochs.Count; i++)
                if (history.Epochs[i].Epoch != i) { yield return $"the history's epoch record {i} says it is epoch {history.Epochs[i].Epoch}"; break; }
            if (history.Steps.Count != info.Step)
                yield return $"metadata says step {info.Step} but the history records {history.Steps.Count} steps";
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
        if (state is not null)
        {
            _bestValue = state.BestValue;
            _epochsWithoutImprovement = state.EpochsWithoutImprovement;
        }
        DisposeBest();
        var bestLoaded = extra.Where(kv => kv.Key.StartsWith("best.", StringComparison.Ordinal)).ToDictionary(kv => kv.Key[5..], kv => kv.Value);
        _bestWeights = bestLoaded.Count > 0 ? bestLoaded : null;
        foreach (var (k, v) in extra) if (!k.StartsWith("best.", StringComparison.Ordinal)) v.Dispose();
        return info;
    }

    static readonly JsonSerializerOptions StateJson = new() { NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals };

    static string Shape(long[] shape) => "[" + string.Join(", ", shape) + "]";

    bool UpdateEarlyStopping(EpochRecord record)
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
            _epochsWithoutImprovement = 0;
            History.BestEpoch = record.Epoch;
            if (es.RestoreBest) SnapshotBest();
            return false;
        }
        _epochsWithoutImprovement++;
        if (_epochsWithoutImprovement < es.Patience) return false;
        History.StopReason = $"early stopping: {es.Monitor} did not improve for {es.Patience} epochs (best {_bestValue:G5} at epoch {History.BestEpoch + 1})";
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

    sealed record EarlyStoppingState(double? BestValue, int EpochsWithoutImprovement);
}
