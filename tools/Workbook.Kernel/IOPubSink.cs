using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Workbook.Engine;

namespace Workbook.Kernel;

/// <summary>
/// A running cell's outputs as IOPub messages: <c>stream</c> (buffered briefly so a loop of Console.Write calls
/// becomes a few messages, flushed before anything else is shown), <c>display_data</c> and
/// <c>update_display_data</c> with <c>transient.display_id</c>, and <c>execute_result</c>.
/// </summary>
sealed class IOPubSink : IOutputSink
{
    static readonly TimeSpan FlushInterval = TimeSpan.FromMilliseconds(100);
    readonly KernelServer _server;
    readonly JupyterMessage _parent;
    readonly int _executionCount;
    readonly bool _silent;
    readonly object _gate = new();
    readonly StringBuilder _pending = new();
    readonly Timer _timer;
    string? _pendingName;
    bool _closed;

    public IOPubSink(KernelServer server, JupyterMessage parent, int executionCount, bool silent)
    {
        _server = server;
        _parent = parent;
        _executionCount = executionCount;
        _silent = silent;
        _timer = new Timer(_ => Flush(), null, FlushInterval, FlushInterval);
    }

    public void Stream(string name, string text)
    {
        if (_silent) return;
        lock (_gate)
        {
            if (_pendingName is not null && _pendingName != name) FlushLocked();
            _pendingName = name;
            _pending.Append(text);
            if (_closed) FlushLocked();
        }
    }

    public void Display(MimeBundle data, string displayId) => Send("display_data", new JsonObject
    {
        ["data"] = ToJson(data), ["metadata"] = new JsonObject(), ["transient"] = new JsonObject { ["display_id"] = displayId },
    });

    public void UpdateDisplay(MimeBundle data, string displayId) => Send("update_display_data", new JsonObject
    {
        ["data"] = ToJson(data), ["metadata"] = new JsonObject(), ["transient"] = new JsonObject { ["display_id"] = displayId },
    });

    public void Result(MimeBundle data) => Send("execute_result", new JsonObject
    {
        ["execution_count"] = _executionCount, ["data"] = ToJson(data), ["metadata"] = new JsonObject(),
    });

    /// <summary>Sends what is buffered and stops the timer. Later writes (a thread the cell left running) still go out, unbuffered.</summary>
    public void Close()
    {
        _timer.Dispose();
        lock (_gate)
        {
            _closed = true;
            FlushLocked();
        }
    }

    public void Flush()
    {
        lock (_gate) FlushLocked();
    }

    void Send(string msgType, JsonObject content)
    {
        if (_silent) return;
        lock (_gate)
        {
            FlushLocked();
            _server.Publish(msgType, content, _parent);
        }
    }

    void FlushLocked()
    {
        if (_pending.Length == 0 || _pendingName is null) return;
        _server.Publish("stream", new JsonObject { ["name"] = _pendingName, ["text"] = _pending.ToString() }, _parent);
        _pending.Clear();
    }

    // JSON MIME types carry JSON, not a string holding JSON; everything else is text.
    static JsonObject ToJson(MimeBundle data)
    {
        var obj = new JsonObject();
        foreach (var (type, value) in data)
        {
            JsonNode? node = value;
            if (type == "application/json" || type.EndsWith("+json", StringComparison.Ordinal))
            {
                try { node = JsonNode.Parse(value); }
                catch (JsonException) { node = value; }
            }
            obj[type] = node;
        }
        return obj;
    }
}
