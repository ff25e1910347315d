using System.Diagnostics;

namespace Workbook.Runtime.Kernels;

/// <summary>
/// A fixed team of worker threads for short parallel loops that come in quick succession (the 49 matrix-vector
/// products of one GPT-2 token, about 0.1–3 ms each, with libtorch ops in between). The thread pool's
/// <c>Parallel.For</c> puts its workers to sleep between such calls and pays a wake-up each time; these workers
/// spin for <see cref="SpinMicroseconds"/> after a job before they block, like OpenMP's active wait, so the next
/// product starts on all cores at once. One job runs at a time.
/// </summary>
internal sealed class SpinTeam
{
    /// <summary>How long an idle worker keeps spinning before it blocks.</summary>
    public const int SpinMicroseconds = 200;

    static readonly object s_create = new();
    static SpinTeam? s_team;

    readonly object _gate = new(), _run = new();
    readonly int _workers;
    int _generation, _pending, _parts;
    Action<int, int>? _body;
    Exception? _failure;

    internal SpinTeam(int workers)
    {
        _workers = workers;
        for (int i = 0; i < workers; i++)
        {
            int part = i + 1;
            new Thread(() => Work(part)) { IsBackground = true, Name = $"Workbook MatVec {part}" }.Start();
        }
    }

    /// <summary>Threads a job can use: the workers and the caller.</summary>
    public int Threads => _workers + 1;

    /// <summary>The shared team, with at least <paramref name="threads"/> − 1 workers (the caller is the first thread).</summary>
    public static SpinTeam ForThreads(int threads)
    {
        lock (s_create)
        {
            if (s_team is null || s_team._workers < threads - 1) s_team = new SpinTeam(threads - 1);
            return s_team;
        }
    }

    /// <summary>Runs <c>body(part, parts)</c> for every part in [0, <paramref name="parts"/>): part 0 on the calling thread,
    /// the others on the workers; returns when all are done and rethrows the first failure.</summary>
    public void Run(int parts, Action<int, int> body)
    {
        if (parts > _workers + 1) throw new ArgumentOutOfRangeException(nameof(parts), parts, $"The team has {_workers + 1} threads.");
        lock (_run)
        {
            _body = body;
            _parts = parts;
            _failure = null;
            Volatile.Write(ref _pending, _workers);
            lock (_gate)
            {
                Interlocked.Increment(ref _generation);
                Monitor.PulseAll(_gate);
            }
            try { body(0, parts); }
            finally
            {
                var spin = new SpinWait();
                while (Volatile.Read(ref _pending) > 0) spin.SpinOnce(sleep1Threshold: -1);
            }
            if (_failure is not null) throw new AggregateException(_failure);
        }
    }

    void Work(int part)
    {
        int seen = 0;
        long spinTicks = Stopwatch.Frequency * SpinMicroseconds / 1_000_000;
        while (true)
        {
            long start = Stopwatch.GetTimestamp();
            while (Volatile.Read(ref _generation) == seen)
            {
                if (Stopwatch.GetTimestamp() - start < spinTicks) { Thread.SpinWait(20); continue; }
                lock (_gate)
                {
                    while (Volatile.Read(ref _generation) == seen) Monitor.Wait(_gate);
                }
            }
            seen = Volatile.Read(ref _generation);
            try
            {
                if (part < _parts) _body!(part, _parts);
            }
            catch (Exception e) { Interlocked.CompareExchange(ref _failure, e, null); }
            finally { Interlocked.Decrement(ref _pending); }
        }
    }
}
