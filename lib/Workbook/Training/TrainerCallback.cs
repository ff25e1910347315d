namespace Workbook.Training;

/// <summary>
/// Code that runs inside the <see cref="Trainer"/>'s loop, at fixed points of every run: add instances to
/// <see cref="Trainer.Callbacks"/> and override what you need (every method does nothing by default). They run on the
/// training thread, in the order added, inside the step's dispose scope where one is open, so tensors a callback
/// creates and does not keep are freed with the step. Callbacks that keep tensors (e.g. gradient statistics over time)
/// should copy them out as numbers or detach them from the scope.
/// <para>The points, in the order of a run:</para>
/// <list type="number">
/// <item><see cref="OnFitStart"/>: before the first batch of <see cref="Trainer.Fit"/>.</item>
/// <item><see cref="OnGradients"/>: the step's gradients are complete (all micro-batches accumulated), before clipping.</item>
/// <item><see cref="OnBeforeStep"/>: the gradients are clipped when <see cref="Trainer.ClipGradNorm"/> is set and the
/// learning rate is set; <c>optimizer.step()</c> has not run: each parameter's <c>.grad</c> holds what the update will use.</item>
/// <item><see cref="OnAfterStep"/>: after <c>optimizer.step()</c>, before <c>zero_grad()</c>: the weights are updated,
/// the gradients are still there.</item>
/// <item><see cref="OnStepEnd"/>: after <c>optimizer.step()</c> and <c>zero_grad()</c>, with the step's record.</item>
/// <item><see cref="OnEvaluation"/>: after an epoch or an <see cref="Trainer.EvalEvery"/>-step evaluation was recorded,
/// early stopping judged it and the checkpoint was written.</item>
/// <item><see cref="OnFitEnd"/>: after the run ended, for whatever <see cref="TrainingHistory.StopReason"/>.</item>
/// </list>
/// </summary>
public abstract class TrainerCallback
{
    /// <summary>Before the first batch of <see cref="Trainer.Fit"/> (also of a resumed run).</summary>
    public virtual void OnFitStart(Trainer trainer) { }

    /// <summary>The step's gradients are complete (all micro-batches accumulated), before clipping.</summary>
    public virtual void OnGradients(TrainingStepContext context) { }

    /// <summary>After clipping and setting the learning rate, just before <c>optimizer.step()</c>; <see cref="Trainer.Step"/> is the step being taken (0-based).</summary>
    public virtual void OnBeforeStep(TrainingStepContext context) { }

    /// <summary>After <c>optimizer.step()</c>, before <c>zero_grad()</c>: the weights are updated; the gradients are still there.</summary>
    public virtual void OnAfterStep(TrainingStepContext context) { }

    /// <summary>After an optimizer step; <paramref name="step"/> is its record (loss, rate, gradient norm).</summary>
    public virtual void OnStepEnd(Trainer trainer, StepRecord step) { }

    /// <summary>After an evaluated record (an <see cref="EpochRecord"/> or an <see cref="EvaluationRecord"/>) was added to the history.</summary>
    public virtual void OnEvaluation(Trainer trainer, TrainingRecord record) { }

    /// <summary>After the run ended; <paramref name="history"/> is <see cref="Trainer.History"/>.</summary>
    public virtual void OnFitEnd(Trainer trainer, TrainingHistory history) { }
}

/// <summary>Where the <see cref="Trainer"/> is in an optimizer step, passed to <see cref="TrainerCallback"/>'s step hooks.</summary>
/// <param name="Trainer">The trainer (its model, optimizer, history).</param>
/// <param name="Step">The optimizer step being taken (0-based; <see cref="Trainer.Step"/> before it increments).</param>
/// <param name="Epoch">The epoch (0-based).</param>
/// <param name="LearningRate">The learning rate of this step (after the schedule set it; in
/// <see cref="TrainerCallback.OnGradients"/>, the rate of the previous step).</param>
/// <param name="Loss">Mean training loss of the step's micro-batches.</param>
public sealed record TrainingStepContext(Trainer Trainer, long Step, int Epoch, double LearningRate, double Loss);
