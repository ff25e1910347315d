namespace Workbook.Training;

/// <summary>
/// Stops a <see cref="Trainer"/> after a fixed amount of <b>training</b> time (evaluation excluded), so that methods
/// with different costs per step can be compared at the same wall-clock budget:
/// <code>
/// var budget = new TimeBudget(TimeSpan.FromSeconds(30));
/// trainer.Fit(train, validation, budget.Attach(trainer));   // stops after the step that crosses 30 s
/// budget.EpochEnds                                           // training seconds at each epoch's end, for curves
/// </code>
/// The run stops after the optimizer step during which the budget ran out (and not before <see cref="MinSteps"/>), so it
/// overshoots by at most one step; the
/// epoch in progress then has no validation record (evaluate the model yourself after <c>Fit</c>).
/// </summary>
public sealed class TimeBudget : IDisposable
{
    readonly CancellationTokenSource _cts = new();
    readonly List<double> _epochEnds = new();
    TimeSpan _done, _epoch;

    /// <summary>A budget of <paramref name="budget"/> training time.</summary>
    /// <exception cref="ArgumentOutOfRangeException">A budget that is not positive.</exception>
    public TimeBudget(TimeSpan budget)
    {
        if (budget <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(budget), budget, "The time budget must be positive.");
        Budget = budget;
    }

    /// <summary>The budget.</summary>
    public TimeSpan Budget { get; }

    /// <summary>
    /// Steps that always run, however long they take: on a machine slowed by other work a pure time budget would stop
    /// after a handful of steps, so results would depend on the load. Zero (the default) means time alone decides.
    /// </summary>
    public long MinSteps { get; init; }

    /// <summary>Training time used so far (evaluation excluded).</summary>
    public TimeSpan Used => _done + _epoch;

    /// <summary>True once the budget ran out.</summary>
    public bool Exhausted => _cts.IsCancellationRequested;

    /// <summary>Cumulative training seconds at the end of each completed epoch (the x of a validation curve).</summary>
    public IReadOnlyList<double> EpochEnds => _epochEnds;

    /// <summary>
    /// Watches <paramref name="trainer"/>'s progress (its own <see cref="Trainer.OnProgress"/> still gets the reports, at
    /// its <see cref="Trainer.ProgressInterval"/>) and returns the token to pass to <see cref="Trainer.Fit"/>.
    /// </summary>
    public CancellationToken Attach(Trainer trainer)
    {
        ArgumentNullException.ThrowIfNull(trainer);
        var inner = trainer.OnProgress;
        var interval = trainer.ProgressInterval;
        var lastInner = TimeSpan.MinValue;
        trainer.ProgressInterval = TimeSpan.Zero; // a report after every micro-batch: the budget is checked at each step
        trainer.OnProgress = p =>
        {
            if (p.Phase == TrainingPhase.Train)
            {
                _epoch = p.Elapsed; // time since the epoch started; evaluation comes after the last batch
                if (Used >= Budget && p.Step >= MinSteps) _cts.Cancel();
                if (inner is not null && (lastInner == TimeSpan.MinValue || p.Elapsed - lastInner >= interval))
                {
                    lastInner = p.Elapsed;
                    inner(p);
                }
                return;
            }
            if (p.Phase == TrainingPhase.EpochEnd)
            {
                _done += _epoch;
                _epoch = TimeSpan.Zero;
                _epochEnds.Add(_done.TotalSeconds);
                lastInner = TimeSpan.MinValue;
            }
            inner?.Invoke(p);
        };
        return _cts.Token;
    }

    /// <inheritdoc/>
    public void Dispose() => _cts.Dispose();
}
