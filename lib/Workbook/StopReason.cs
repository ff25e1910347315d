namespace Workbook;

/// <summary>
/// Why a loop of the library ended: a training run (<see cref="Training.TrainingHistory.StopReason"/>) or a text
/// generation (<see cref="Gpt.GenerationResult.StopReason"/>). One enum for both, so code that reports or branches on
/// it never matches strings; the human-readable details are beside it (<see cref="Training.TrainingHistory.StopDetail"/>).
/// </summary>
public enum StopReason
{
    /// <summary>Training ran everything it was given: all <see cref="Training.Trainer.Epochs"/>, or <see cref="Training.Trainer.MaxSteps"/> optimizer steps.</summary>
    Completed,
    /// <summary>Training: the monitored value stopped improving (<see cref="Training.EarlyStopping"/>).</summary>
    EarlyStopping,
    /// <summary>Training: the cancellation token fired; the last checkpoint is the one to resume from.</summary>
    Cancelled,
    /// <summary>Training: a training loss became NaN or infinite (<see cref="Training.Trainer.StopOnNonFiniteLoss"/>).</summary>
    NonFiniteLoss,
    /// <summary>Generation: the token budget <see cref="Gpt.GenerationOptions.MaxNewTokens"/> was used up.</summary>
    MaxNewTokens,
    /// <summary>Generation: the model produced the end-of-text token.</summary>
    EndOfText,
    /// <summary>Generation: the text reached one of the stop strings.</summary>
    StopString,
}
