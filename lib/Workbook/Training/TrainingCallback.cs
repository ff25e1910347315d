namespace Workbook.Training;

/// <summary>Where the <see cref="Trainer"/> is in an optimizer step, passed to each <see cref="TrainingCallback"/>.</summary>
/// <param name="Trainer">The trainer (its model, optimizer, history).</param>
/// <param name="Step">The optimizer step being taken (0-based; <see cref="Trainer.Step"/> before it increments).</param>
/// <param name="Epoch">The epoch (0-based).</param>
/// <param name="LearningRate">The learning rate of this step (after the schedule set it; in
/// <see cref="TrainingCallback.OnGradients"/>, the rate of the previous step).</param>
/// <param name="Loss">Mean training loss of the step's micro-batches.</param>
public sealed record TrainingStepContext(Trainer Trainer, long Step, int Epoch, double LearningRate, double Loss);

/// <summary>
/// Code that runs inside the <see cref="Trainer"/>'s optimizer step, for measurements the progress callback cannot
/// make: the gradients before and after clipping, and the weights before and after the update. Add instances to
/// <see cref="Trainer.Callbacks"/>; override what you need. Per step the trainer calls <see cref="OnGradients"/>
/// (the step's gradients are complete, before clipping), clips, sets the scheduled rate, calls
/// <see cref="OnBeforeStep"/>, runs <c>optimizer.step()</c>, then calls <see cref="OnAfterStep"/> before
/// <c>zero_grad()</c>. Callbacks run inside the step's dispose scope and must not keep its tensors; they must not
/// change the gradients or weights unless that is their purpose.
/// </summary>
public abstract class TrainingCallback
{
    /// <summary>The step's gradients are complete (all micro-batches accumulated), before clipping.</summary>
    public virtual void OnGradients(TrainingStepContext context) { }

    /// <summary>After clipping and setting the learning rate, just before <c>optimizer.step()</c>.</summary>
    public virtual void OnBeforeStep(TrainingStepContext context) { }

    /// <summary>After <c>optimizer.step()</c>: the weights are updated; the gradients are still there.</summary>
    public virtual void OnAfterStep(TrainingStepContext context) { }
}
