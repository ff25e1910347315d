using System.Runtime.InteropServices;
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text;
using Microsoft.DotNet.Interactive.Commands;
using Microsoft.DotNet.Interactive.Connection;
using Microsoft.DotNet.Interactive.Events;

namespace Workbook.Runner.Kernel;

/// <summary>How a submission ended.</summary>
public enum SubmissionOutcome
{
    /// <summary>The kernel reported <see cref="CommandSucceeded"/>.</summary>
    Succeeded,
    /// <summary>The kernel reported <see cref="CommandFailed"/>.</summary>
    Failed,
    /// <summary>The submission outlived its time limit.</summary>
    TimedOut,
    /// <summary>The kernel process exited while the submission ran.</summary>
    KernelExited,
}

/// <summary>The end of one submission.</summary>
/// <param name="Outcome">How it ended.</param>
/// <param name="Message">The kernel's failure message, or the runner's for a time-out or a dead kernel.</param>
/// <param name="Elapsed">Wall time from sending the code to its end.</param>
public sealed record SubmissionResult(SubmissionOutcome Outcome, string? Message, TimeSpan Elapsed);

/// <summary>
/// One fresh .NET Interactive kernel process in stdio mode, as VS Code Polyglot starts it, spoken to with the
/// kernel's own command and event envelopes (one JSON object per line). Code is submitted one cell at a time:
/// the kernel runs concurrently submitted commands interleaved, and a notebook front end waits for each cell.
/// </summary>
public sealed class KernelSession : IAsyncDisposable
{
    readonly Process _process;
    readonly StreamWriter _stdin;
    readonly StringBuilder _stderr = new();
    readonly Task _reader;
    readonly TaskCompletionSource _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);
    readonly object _gate = new();
    Pending? _current;
    int _tokens;

    sealed record Pending(string Token, Action<KernelEvent> OnEvent, TaskCompletionSource<KernelEvent?> Done);

    // Kernels still running. A runner stopped by Ctrl+C, SIGTERM (a CI timeout, `kill`) or SIGHUP takes them with it:
    // without this, the kernel (a separate process) would go on running the notebook's cell, orphaned.
    static readonly ConcurrentDictionary<int, Process> Live = new();
    // The handler exits itself (128 + the signal's number, as a shell reports it) rather than leaving the exit to the
    // runtime's default action: once the kernels are gone there is nothing left to wait for.
    static readonly PosixSignalRegistration[] Signals =
        [.. new[] { (PosixSignal.SIGINT, 2), (PosixSignal.SIGTERM, 15), (PosixSignal.SIGHUP, 1) }.Select(s => PosixSignalRegistration.Create(s.Item1, context =>
        {
            KillLive();
            context.Cancel = true;
            Environment.Exit(128 + s.Item2);
        }))];

    static KernelSession() => AppDomain.CurrentDomain.ProcessExit += (_, _) => KillLive();

    static void KillLive()
    {
        foreach (var p in Live.Values)
            try { if (!p.HasExited) p.Kill(entireProcessTree: true); } catch (InvalidOperationException) { } catch (System.ComponentModel.Win32Exception) { }
    }

    KernelSession(Process process)
    {
        GC.KeepAlive(Signals);
        _process = process;
        Live[process.Id] = process;
        _stdin = new StreamWriter(process.StandardInput.BaseStream, new UTF8Encoding(false)) { AutoFlush = true, NewLine = "\n" };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (_stderr) _stderr.AppendLine(e.Data); };
        process.BeginErrorReadLine();
        _reader = Task.Run(ReadLoopAsync);
    }

    /// <summary>Time from starting the process to the kernel's <see cref="KernelReady"/>.</summary>
    public TimeSpan StartupTime { get; private set; }

    /// <summary>Events that belong to no running submission (for example a display updated by a background task).</summary>
    public event Action<KernelEvent>? UnroutedEvent;

    /// <summary>Lines the kernel wrote to stdout that are not protocol messages (native code printing, say).</summary>
    public event Action<string>? StrayOutput;

    /// <summary>The process id of the kernel.</summary>
    public int ProcessId => _process.Id;

    /// <summary>What the kernel wrote to stderr so far (its last 4,000 characters).</summary>
    public string StandardErrorTail
    {
        get { lock (_stderr) return _stderr.Length <= 4000 ? _stderr.ToString() : _stderr.ToString(_stderr.Length - 4000, 4000); }
    }

    /// <summary>Starts the kernel with <paramref name="workingDirectory"/> as its current folder and waits until it is ready.</summary>
    /// <param name="tool">The pinned tool.</param>
    /// <param name="workingDirectory">The notebook's folder: relative paths, <c>#r</c> files and NuGet.config lookups start here.</param>
    /// <param name="environment">Variables to set (or, with a null value, remove) for the kernel.</param>
    /// <param name="timeout">How long the start may take.</param>
    /// <param name="cancellation">Cancels the start.</param>
    /// <exception cref="InvalidOperationException">The kernel exited or did not become ready in time.</exception>
    public static async Task<KernelSession> StartAsync(KernelTool tool, string workingDirectory,
        IReadOnlyDictionary<string, string?>? environment = null, TimeSpan? timeout = null, CancellationToken cancellation = default)
    {
        var psi = tool.StdioStartInfo(workingDirectory);
        foreach (var (k, v) in environment ?? new Dictionary<string, string?>())
            if (v is null) psi.Environment.Remove(k); else psi.Environment[k] = v;
        var clock = Stopwatch.StartNew();
        var process = Process.Start(psi) ?? throw new InvalidOperationException("Could not start 'dotnet tool run dotnet-interactive'.");
        var session = new KernelSession(process);
        var limit = timeout ?? TimeSpan.FromMinutes(2);
        var finished = await Task.WhenAny(session._ready.Task, process.WaitForExitAsync(cancellation), Task.Delay(limit, cancellation)).ConfigureAwait(false);
        if (finished != session._ready.Task || !session._ready.Task.IsCompletedSuccessfully)
        {
            var why = process.HasExited ? $"exited with code {process.ExitCode}" : $"was not ready after {limit.TotalSeconds:F0} s";
            var err = session.StandardErrorTail.Trim();
            await session.DisposeAsync().ConfigureAwait(false);
            throw new InvalidOperationException(
                $"The .NET Interactive kernel ({KernelTool.PackageId} {tool.Version}) {why}." + (err.Length > 0 ? $" Its stderr:\n{err}" : ""));
        }
        session.StartupTime = clock.Elapsed;
        return session;
    }

    /// <summary>
    /// Submits code to the kernel named <paramref name="targetKernel"/> (e.g. <c>csharp</c>) and waits for its end.
    /// Every event the submission produces, including those of the commands it spawns (package restores,
    /// directives), goes to <paramref name="onEvent"/> as it arrives.
    /// </summary>
    /// <param name="code">The cell's text, unchanged.</param>
    /// <param name="targetKernel">The kernel that runs it.</param>
    /// <param name="onEvent">Receives the submission's events, in order, on the reader thread.</param>
    /// <param name="timeout">Longest run; past it the kernel is asked to cancel and the result is <see cref="SubmissionOutcome.TimedOut"/>.</param>
    /// <param name="cancellation">Cancels the wait (the code keeps running in the kernel).</param>
    public async Task<SubmissionResult> SubmitAsync(string code, string targetKernel, Action<KernelEvent> onEvent, TimeSpan timeout,
        CancellationToken cancellation = default)
    {
        var token = $"wb{Interlocked.Increment(ref _tokens)}";
        var pending = new Pending(token, onEvent, new TaskCompletionSource<KernelEvent?>(TaskCreationOptions.RunContinuationsAsynchronously));
        lock (_gate)
        {
            if (_current is not null) throw new InvalidOperationException("A submission is already running: submit cells one at a time.");
            _current = pending;
        }
        var clock = Stopwatch.StartNew();
        try
        {
            var submit = new SubmitCode(code, targetKernel);
            submit.SetToken(token);
            await SendAsync(submit).ConfigureAwait(false);
            var done = await Task.WhenAny(pending.Done.Task, Task.Delay(timeout, cancellation)).ConfigureAwait(false);
            cancellation.ThrowIfCancellationRequested();
            if (done != pending.Done.Task)
            {
                // Ask the kernel to stop, as a front end's interrupt does; C# code that never yields keeps running,
                // so the caller ends the process after a time-out either way.
                var cancel = new Cancel(targetKernel);
                cancel.SetToken(token + "-cancel");
                await SendAsync(cancel).ConfigureAwait(false);
                await Task.WhenAny(pending.Done.Task, Task.Delay(TimeSpan.FromSeconds(3), CancellationToken.None)).ConfigureAwait(false);
                return new SubmissionResult(SubmissionOutcome.TimedOut,
                    $"The cell ran longer than the time limit of {timeout.TotalSeconds:F0} s and was cancelled.", clock.Elapsed);
            }
            return await pending.Done.Task.ConfigureAwait(false) switch
            {
                CommandSucceeded => new SubmissionResult(SubmissionOutcome.Succeeded, null, clock.Elapsed),
                CommandFailed f => new SubmissionResult(SubmissionOutcome.Failed, f.Message, clock.Elapsed),
                _ => new SubmissionResult(SubmissionOutcome.KernelExited, KernelExitMessage(), clock.Elapsed),
            };
        }
        finally
        {
            lock (_gate) if (ReferenceEquals(_current, pending)) _current = null;
        }
    }

    string KernelExitMessage()
    {
        var code = _process.HasExited ? _process.ExitCode.ToString(System.Globalization.CultureInfo.InvariantCulture) : "?";
        var err = StandardErrorTail.Trim();
        return $"The kernel process exited (code {code}) while the cell ran: a crash in native code, a stack overflow or Environment.Exit." +
               (err.Length > 0 ? $" Its last stderr lines:\n{err}" : "");
    }

    async Task SendAsync(KernelCommand command)
    {
        var json = KernelCommandEnvelope.Serialize(command);
        try { await _stdin.WriteLineAsync(json).ConfigureAwait(false); }
        catch (IOException) { /* the kernel is gone; the reader reports it */ }
    }

    async Task ReadLoopAsync()
    {
        var reader = _process.StandardOutput;
        while (await reader.ReadLineAsync().ConfigureAwait(false) is { } line)
        {
            if (line.Length == 0) continue;
            if (line[0] != '{') { StrayOutput?.Invoke(line); continue; }
            KernelEvent? ev = null;
            try
            {
                using var doc = JsonDocument.Parse(line);
                if (doc.RootElement.TryGetProperty("commandType", out _))
                {
                    // The kernel asks the front end something (an input prompt, say): a headless run cannot answer.
                    var asked = KernelCommandEnvelope.Deserialize(doc.RootElement).Command;
                    await SendEventAsync(new CommandFailed(
                        $"The Workbook runner cannot answer '{asked.GetType().Name}': notebooks must run without interaction.", asked)).ConfigureAwait(false);
                    continue;
                }
                ev = KernelEventEnvelope.Deserialize(doc.RootElement).Event;
            }
            catch (Exception e) when (e is JsonException or InvalidOperationException or KeyNotFoundException or ArgumentException)
            {
                StrayOutput?.Invoke(line.Length > 300 ? line[..300] + "…" : line);
                continue;
            }
            Route(ev);
        }
        // End of stdout: the process is gone. Whatever was running ended with it.
        await _process.WaitForExitAsync().ConfigureAwait(false);
        _ready.TrySetException(new InvalidOperationException("The kernel exited before it was ready."));
        lock (_gate) _current?.Done.TrySetResult(null);
    }

    async Task SendEventAsync(KernelEvent ev)
    {
        try { await _stdin.WriteLineAsync(KernelEventEnvelope.Serialize(ev)).ConfigureAwait(false); }
        catch (IOException) { }
    }

    void Route(KernelEvent ev)
    {
        if (ev is KernelReady) { _ready.TrySetResult(); return; }
        var token = ev.Command?.GetOrCreateToken() ?? "";
        Pending? current;
        lock (_gate) current = _current;
        if (current is not null && (token == current.Token || token.StartsWith(current.Token + ".", StringComparison.Ordinal)))
        {
            current.OnEvent(ev);
            if (token == current.Token && ev is CommandSucceeded or CommandFailed) current.Done.TrySetResult(ev);
            return;
        }
        if (ev is not (CommandSucceeded or CommandFailed)) UnroutedEvent?.Invoke(ev);
    }

    /// <summary>Ends the kernel process and everything it started.</summary>
    public async ValueTask DisposeAsync()
    {
        try { _stdin.Close(); } catch (IOException) { }
        try { if (!_process.HasExited) _process.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
        Live.TryRemove(_process.Id, out _);
        try { await _process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(10)).ConfigureAwait(false); } catch (TimeoutException) { }
        try { await _reader.WaitAsync(TimeSpan.FromSeconds(5)).ConfigureAwait(false); } catch (TimeoutException) { }
        _process.Dispose();
    }
}
