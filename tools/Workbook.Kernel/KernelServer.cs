using System.Runtime.InteropServices;
using System.Text.Json.Nodes;
using Microsoft.CodeAnalysis.CSharp;
using NetMQ;
using NetMQ.Sockets;
using Workbook.Engine;

namespace Workbook.Kernel;

/// <summary>
/// The kernel: five ZeroMQ sockets from the connection file and one <see cref="ScriptSession"/>. The shell socket is
/// served on one thread, one request at a time (cells run in order, as in every Jupyter kernel); the control socket
/// on its own thread, so an interrupt or shutdown arrives while a cell runs; heartbeat echoes on a third. Outputs of a
/// running cell go out on IOPub as they happen.
/// </summary>
public sealed class KernelServer
{
    readonly ConnectionInfo _connection;
    readonly ScriptSession _session;
    readonly EditorServices _editor;
    readonly KernelLog _log;
    readonly MessageCodec _codec;
    readonly object _iopubGate = new();
    readonly ManualResetEventSlim _stopped = new();
    RouterSocket? _shell, _control, _stdin;
    PublisherSocket? _iopub;
    ResponseSocket? _hb;
    volatile CancellationTokenSource? _running;
    volatile bool _stopping;
    int _executionCount;
    PosixSignalRegistration? _sigint;

    /// <summary>Creates a kernel for <paramref name="connection"/> whose cells run in <paramref name="session"/>.</summary>
    public KernelServer(ConnectionInfo connection, ScriptSession session, KernelLog log)
    {
        _connection = connection;
        _session = session;
        _editor = new EditorServices(session);
        _log = log;
        _codec = new MessageCodec(connection.Key, connection.SignatureScheme, Guid.NewGuid().ToString("N"));
    }

    /// <summary>The language version cells compile with, for kernel_info.</summary>
    static string LanguageVersion => LanguageVersionFacts.ToDisplayString(Microsoft.CodeAnalysis.CSharp.LanguageVersion.Latest.MapSpecifiedToEffectiveVersion());

    /// <summary>Binds the sockets, serves until a shutdown request, and returns the process exit code.</summary>
    public int Run()
    {
        _shell = Bind(new RouterSocket(), _connection.ShellPort);
        _control = Bind(new RouterSocket(), _connection.ControlPort);
        _stdin = Bind(new RouterSocket(), _connection.StdinPort);
        _iopub = Bind(new PublisherSocket(), _connection.IOPubPort);
        _hb = Bind(new ResponseSocket(), _connection.HbPort);
        // Jupyter's default interrupt is SIGINT to the kernel process: cancel the running cell, never exit.
        _sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, ctx => { ctx.Cancel = true; _log.Info("SIGINT received: interrupting the running cell"); Interrupt(); });
        _log.Info($"kernel listening on {_connection.Ip} (shell {_connection.ShellPort}, iopub {_connection.IOPubPort}, control {_connection.ControlPort}, hb {_connection.HbPort}), pid {Environment.ProcessId}");
        Publish("status", new JsonObject { ["execution_state"] = "starting" }, null);

        if (int.TryParse(Environment.GetEnvironmentVariable("JPY_PARENT_PID"), out var parent) && parent > 1)
            StartThread("parent-watch", () => WatchParent(parent));
        StartThread("heartbeat", Heartbeat);
        StartThread("control", () => Serve(_control, "control"));
        StartThread("shell", () => Serve(_shell, "shell"));
        _stopped.Wait();
        _log.Info("kernel shutting down");
        Thread.Sleep(300); // let NetMQ's I/O thread send the shutdown reply and the last status
        return 0;
    }

    T Bind<T>(T socket, int port) where T : NetMQSocket
    {
        socket.Options.Linger = TimeSpan.FromMilliseconds(500);
        socket.Bind(_connection.Address(port));
        return socket;
    }

    void StartThread(string name, Action body)
    {
        var thread = new Thread(() =>
        {
            try { body(); }
            catch (Exception e) when (_stopping) { _log.Info($"{name} thread ended during shutdown: {e.GetType().Name}"); }
            catch (Exception e)
            {
                // A failure of the kernel itself (not a cell) ends the kernel with a log, rather than leaving a half-dead process.
                _log.Error($"{name} thread failed: {e}");
                _stopping = true;
                _stopped.Set();
            }
        }) { IsBackground = true, Name = "kernel-" + name };
        thread.Start();
    }

    // Jupyter names its process in JPY_PARENT_PID; a kernel whose client died without a shutdown ends too, as ipykernel does.
    void WatchParent(int pid)
    {
        while (!_stopping)
        {
            Thread.Sleep(1000);
            bool alive;
            try { using var p = System.Diagnostics.Process.GetProcessById(pid); alive = !p.HasExited; }
            catch (ArgumentException) { alive = false; }
            if (alive) continue;
            _log.Warn($"the Jupyter process {pid} (JPY_PARENT_PID) is gone: shutting down");
            _stopping = true;
            Interrupt();
            _stopped.Set();
        }
    }

    void Heartbeat()
    {
        var hb = _hb!;
        NetMQMessage? ping = null;
        while (!_stopping)
            if (hb.TryReceiveMultipartMessage(TimeSpan.FromMilliseconds(200), ref ping) && ping is not null) hb.SendMultipartMessage(ping);
    }

    void Serve(RouterSocket socket, string channel)
    {
        NetMQMessage? frames = null;
        while (!_stopping)
        {
            if (!socket.TryReceiveMultipartMessage(TimeSpan.FromMilliseconds(200), ref frames)) continue;
            var request = Decode(frames, channel);
            if (request is null) continue;
            Publish("status", new JsonObject { ["execution_state"] = "busy" }, request);
            try { Dispatch(socket, channel, request); }
            catch (Exception e)
            {
                // A bug in a handler answers the request with an error instead of killing the kernel.
                _log.Error($"{channel}: {request.MsgType} failed: {e}");
                var replyType = request.MsgType.EndsWith("_request", StringComparison.Ordinal) ? request.MsgType[..^"_request".Length] + "_reply" : null;
                if (replyType is not null)
                    Send(socket, _codec.Create(replyType, new JsonObject { ["status"] = "error", ["ename"] = e.GetType().Name, ["evalue"] = e.Message, ["traceback"] = new JsonArray(e.ToString()) }, request));
            }
            finally { Publish("status", new JsonObject { ["execution_state"] = "idle" }, request); }
        }
    }

    JupyterMessage? Decode(NetMQMessage frames, string channel)
    {
        var raw = frames.Select(f => f.ToByteArray()).ToList();
        if (_codec.TryDecode(raw, out var message, out var error)) return message;
        _log.Warn($"{channel}: rejected a message ({raw.Count} frames): {error}");
        return null;
    }

    void Dispatch(RouterSocket socket, string channel, JupyterMessage request)
    {
        switch (request.MsgType)
        {
            case "kernel_info_request": Send(socket, _codec.Create("kernel_info_reply", KernelInfo(), request)); break;
            case "execute_request" when channel == "shell": Execute(socket, request); break;
            case "complete_request": Send(socket, _codec.Create("complete_reply", _editor.Complete(Str(request, "code"), Int(request, "cursor_pos")), request)); break;
            case "inspect_request": Send(socket, _codec.Create("inspect_reply", _editor.Inspect(Str(request, "code"), Int(request, "cursor_pos"), Int(request, "detail_level")), request)); break;
            case "is_complete_request": Send(socket, _codec.Create("is_complete_reply", EditorServices.IsComplete(Str(request, "code")), request)); break;
            case "history_request": Send(socket, _codec.Create("history_reply", new JsonObject { ["status"] = "ok", ["history"] = new JsonArray() }, request)); break;
            case "comm_info_request": Send(socket, _codec.Create("comm_info_reply", new JsonObject { ["status"] = "ok", ["comms"] = new JsonObject() }, request)); break;
            case "interrupt_request":
                _log.Info($"{channel}: interrupt_request: interrupting the running cell");
                Interrupt();
                Send(socket, _codec.Create("interrupt_reply", new JsonObject { ["status"] = "ok" }, request));
                break;
            case "shutdown_request":
                var restart = request.Content["restart"] is JsonValue r && r.TryGetValue<bool>(out var b) && b;
                Send(socket, _codec.Create("shutdown_reply", new JsonObject { ["status"] = "ok", ["restart"] = restart }, request));
                Publish("status", new JsonObject { ["execution_state"] = "idle" }, request);
                _stopping = true;
                Interrupt();
                _stopped.Set();
                break;
            case "comm_open" or "comm_msg" or "comm_close":
                break; // no comm targets (widgets) in this kernel; Jupyter expects silence, not an error
            default:
                _log.Warn($"{channel}: unsupported message type '{request.MsgType}' ignored");
                break;
        }
    }

    void Interrupt()
    {
        try { _running?.Cancel(); }
        catch (ObjectDisposedException) { } // the cell finished meanwhile
    }

    JsonObject KernelInfo() => new()
    {
        ["status"] = "ok",
        ["protocol_version"] = MessageCodec.ProtocolVersion,
        ["implementation"] = "workbook-csharp",
        ["implementation_version"] = typeof(KernelServer).Assembly.GetName().Version?.ToString(3) ?? "0.1.0",
        ["language_info"] = new JsonObject
        {
            ["name"] = "C#",
            ["version"] = LanguageVersion,
            ["mimetype"] = "text/x-csharp",
            ["file_extension"] = ".cs",
            ["pygments_lexer"] = "csharp",
            ["codemirror_mode"] = "text/x-csharp",
        },
        ["banner"] = $"Workbook C# kernel: Roslyn scripting on .NET {Environment.Version}, the engine of the Workbook runner. #r \"nuget: Id, Version\", #i, #r \"file.dll\", display(x).Update(y).",
        ["help_links"] = new JsonArray(),
        ["debugger"] = false,
    };

    void Execute(RouterSocket shell, JupyterMessage request)
    {
        var code = Str(request, "code");
        bool silent = Bool(request, "silent", false);
        bool storeHistory = Bool(request, "store_history", !silent);
        bool stopOnError = Bool(request, "stop_on_error", true);
        if (!silent && storeHistory) _executionCount++;
        int count = _executionCount;
        if (!silent) Publish("execute_input", new JsonObject { ["code"] = code, ["execution_count"] = count }, request);

        var sink = new IOPubSink(this, request, count, silent);
        CellResult result;
        using (var cts = new CancellationTokenSource())
        {
            _running = cts;
            try { result = _session.ExecuteAsync(code, sink, null, cts.Token).GetAwaiter().GetResult(); }
            catch (Exception e)
            {
                // The engine itself failed (not the cell's code): report it on the cell rather than hang or die.
                _log.Error($"engine failure: {e}");
                result = new CellResult(false, new CellError(e.GetType().Name, $"The kernel's engine failed: {e.Message}", null, e.ToString().Split('\n')), TimeSpan.Zero);
            }
            finally { _running = null; }
        }
        sink.Close();

        if (result.Ok)
        {
            Send(shell, _codec.Create("execute_reply", new JsonObject
            {
                ["status"] = "ok", ["execution_count"] = count, ["user_expressions"] = new JsonObject(), ["payload"] = new JsonArray(),
            }, request));
            return;
        }
        var error = result.Error!;
        var traceback = Traceback(error, count);
        if (!silent)
            Publish("error", new JsonObject { ["ename"] = error.Name, ["evalue"] = error.Message, ["traceback"] = traceback.DeepClone() }, request);
        Send(shell, _codec.Create("execute_reply", new JsonObject
        {
            ["status"] = "error", ["execution_count"] = count, ["ename"] = error.Name, ["evalue"] = error.Message, ["traceback"] = traceback,
        }, request));
        if (stopOnError) AbortQueued(shell);
    }

    /// <summary>The error's traceback: a first line naming the cell and line, then the engine's detail lines.</summary>
    public static JsonArray Traceback(CellError error, int executionCount)
    {
        const string red = "\u001b[0;31m", reset = "\u001b[0m";
        var where = error.Line is { } line ? $"Cell In[{executionCount}], line {line}" : $"Cell In[{executionCount}]";
        var lines = new JsonArray($"{red}{where}: {error.Name}: {error.Message}{reset}");
        foreach (var l in error.Traceback)
            if (!l.TrimStart().StartsWith("--- End of stack trace", StringComparison.Ordinal)) lines.Add(l); // async plumbing, not the reader's code
        return lines;
    }

    // After a failing cell, the cells already queued behind it (a "run all") are answered "aborted", as ipykernel does.
    void AbortQueued(RouterSocket shell)
    {
        NetMQMessage? frames = null;
        while (shell.TryReceiveMultipartMessage(TimeSpan.Zero, ref frames))
        {
            var request = Decode(frames, "shell");
            if (request is null) continue;
            Publish("status", new JsonObject { ["execution_state"] = "busy" }, request);
            try
            {
                if (request.MsgType == "execute_request")
                    Send(shell, _codec.Create("execute_reply", new JsonObject { ["status"] = "aborted", ["execution_count"] = _executionCount }, request));
                else
                    Dispatch(shell, "shell", request);
            }
            finally { Publish("status", new JsonObject { ["execution_state"] = "idle" }, request); }
        }
    }

    void Send(RouterSocket socket, JupyterMessage message) => socket.SendMultipartMessage(_codec.Encode(message));

    /// <summary>Publishes on IOPub (thread-safe: cells write from any thread).</summary>
    internal void Publish(string msgType, JsonObject content, JupyterMessage? parent)
    {
        var topic = System.Text.Encoding.UTF8.GetBytes($"kernel.{_codec.Session}.{msgType}");
        var frames = _codec.Encode(_codec.Create(msgType, content, parent, new[] { topic }));
        lock (_iopubGate) _iopub?.SendMultipartMessage(frames);
    }

    static string Str(JupyterMessage m, string name) => m.Content[name] is JsonValue v && v.TryGetValue<string>(out var s) ? s : "";
    static int Int(JupyterMessage m, string name) => m.Content[name] is JsonValue v && v.TryGetValue<int>(out var i) ? i : 0;
    static bool Bool(JupyterMessage m, string name, bool fallback) => m.Content[name] is JsonValue v && v.TryGetValue<bool>(out var b) ? b : fallback;
}
