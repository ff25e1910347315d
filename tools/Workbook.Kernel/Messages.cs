using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using NetMQ;

namespace Workbook.Kernel;

/// <summary>The connection file Jupyter writes for a kernel: transport, ports and the signing key.</summary>
public sealed record ConnectionInfo(string Transport, string Ip, int ShellPort, int IOPubPort, int StdinPort, int ControlPort, int HbPort,
    string Key, string SignatureScheme)
{
    /// <summary>Reads and validates a connection file; errors name the file and the field.</summary>
    public static ConnectionInfo Load(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"Connection file '{path}' does not exist.", path);
        JsonObject json;
        try { json = JsonNode.Parse(File.ReadAllText(path)) as JsonObject ?? throw new JsonException("not a JSON object"); }
        catch (JsonException e) { throw new InvalidDataException($"Connection file '{path}' is not valid JSON: {e.Message}", e); }

        string Str(string name, string? fallback = null) =>
            json[name] is JsonValue v && v.TryGetValue<string>(out var s) ? s
            : fallback ?? throw new InvalidDataException($"Connection file '{path}': field '{name}' (string) is missing.");
        int Port(string name) =>
            json[name] is JsonValue v && v.TryGetValue<int>(out var p) && p is > 0 and < 65536 ? p
            : throw new InvalidDataException($"Connection file '{path}': field '{name}' must be a port number 1-65535, got {json[name]?.ToJsonString() ?? "nothing"}.");

        var info = new ConnectionInfo(Str("transport", "tcp"), Str("ip", "127.0.0.1"), Port("shell_port"), Port("iopub_port"),
            Port("stdin_port"), Port("control_port"), Port("hb_port"), Str("key", ""), Str("signature_scheme", "hmac-sha256"));
        if (info.Transport != "tcp")
            throw new InvalidDataException($"Connection file '{path}': transport '{info.Transport}' is not supported; the Workbook kernel speaks 'tcp' (NetMQ has no libzmq-compatible ipc).");
        MessageCodec.CreateHmac(info.SignatureScheme, Array.Empty<byte>()); // throws for an unknown scheme
        return info;
    }

    /// <summary>The ZeroMQ address of one port, e.g. tcp://127.0.0.1:50123.</summary>
    public string Address(int port) => $"{Transport}://{(Ip is "" or "*" or "0.0.0.0" ? "*" : Ip)}:{port}";
}

/// <summary>One Jupyter message: routing identities, the four JSON parts, and raw buffers.</summary>
public sealed record JupyterMessage(IReadOnlyList<byte[]> Identities, JsonObject Header, JsonObject ParentHeader, JsonObject Metadata,
    JsonObject Content, IReadOnlyList<byte[]> Buffers)
{
    /// <summary>The header's msg_type, e.g. execute_request.</summary>
    public string MsgType => Header["msg_type"]?.GetValue<string>() ?? "";

    /// <summary>The header's msg_id.</summary>
    public string MsgId => Header["msg_id"]?.GetValue<string>() ?? "";
}

/// <summary>
/// Turns Jupyter messages into ZeroMQ frames and back, signing with HMAC over header, parent header, metadata and
/// content as the connection file says (wire protocol 5.3: identities, "&lt;IDS|MSG&gt;", signature, four JSON frames,
/// buffers). Incoming messages with a wrong or missing signature, a replayed signature, or malformed frames are rejected.
/// </summary>
public sealed class MessageCodec
{
    /// <summary>The delimiter between routing identities and the message.</summary>
    public const string Delimiter = "<IDS|MSG>";

    /// <summary>The protocol version this kernel speaks.</summary>
    public const string ProtocolVersion = "5.3";

    static readonly byte[] DelimiterBytes = Encoding.ASCII.GetBytes(Delimiter);
    readonly byte[] _key;
    readonly string _scheme;
    readonly object _hmacGate = new();
    readonly HMAC? _hmac;
    // Signatures seen recently: a captured message sent again is a replay (ipykernel keeps the same history).
    readonly HashSet<string> _seen = new(StringComparer.Ordinal);
    readonly Queue<string> _seenOrder = new();
    const int SeenCapacity = 1 << 16;

    /// <summary>Creates a codec for <paramref name="key"/> (empty: no signing, as Jupyter allows) and <paramref name="scheme"/>.</summary>
    public MessageCodec(string key, string scheme, string session)
    {
        _key = Encoding.UTF8.GetBytes(key);
        _scheme = scheme;
        _hmac = _key.Length > 0 ? CreateHmac(scheme, _key) : null;
        Session = session;
    }

    /// <summary>The kernel's session id, put in every header it writes.</summary>
    public string Session { get; }

    /// <summary>HMAC for a Jupyter signature scheme name.</summary>
    public static HMAC CreateHmac(string scheme, byte[] key) => scheme switch
    {
        "hmac-sha256" => new HMACSHA256(key),
        "hmac-sha512" => new HMACSHA512(key),
        "hmac-sha384" => new HMACSHA384(key),
        "hmac-sha1" => new HMACSHA1(key),
        "hmac-md5" => new HMACMD5(key),
        _ => throw new InvalidDataException($"Unsupported signature_scheme '{scheme}': expected hmac-sha256 (or hmac-sha512/384/sha1/md5)."),
    };

    /// <summary>The hex HMAC of the four JSON frames; empty when the connection has no key.</summary>
    public string Sign(byte[] header, byte[] parent, byte[] metadata, byte[] content)
    {
        if (_hmac is null) return "";
        lock (_hmacGate)
        {
            _hmac.Initialize();
            _hmac.TransformBlock(header, 0, header.Length, null, 0);
            _hmac.TransformBlock(parent, 0, parent.Length, null, 0);
            _hmac.TransformBlock(metadata, 0, metadata.Length, null, 0);
            _hmac.TransformFinalBlock(content, 0, content.Length);
            return Convert.ToHexStringLower(_hmac.Hash!);
        }
    }

    /// <summary>Parses and verifies received frames; on failure <paramref name="error"/> says why (for the log).</summary>
    public bool TryDecode(IReadOnlyList<byte[]> frames, out JupyterMessage? message, out string error)
    {
        message = null;
        int d = -1;
        for (int i = 0; i < frames.Count; i++)
            if (frames[i].AsSpan().SequenceEqual(DelimiterBytes)) { d = i; break; }
        if (d < 0) { error = $"no '{Delimiter}' delimiter among {frames.Count} frame(s)"; return false; }
        if (frames.Count < d + 6) { error = $"expected signature and 4 JSON frames after the delimiter, got {frames.Count - d - 1} frame(s)"; return false; }
        var signature = Encoding.ASCII.GetString(frames[d + 1]);
        byte[] header = frames[d + 2], parent = frames[d + 3], metadata = frames[d + 4], content = frames[d + 5];
        if (_hmac is not null)
        {
            var expected = Sign(header, parent, metadata, content);
            if (signature.Length == 0) { error = "unsigned message (the connection file has a key)"; return false; }
            if (!CryptographicOperations.FixedTimeEquals(Encoding.ASCII.GetBytes(expected), Encoding.ASCII.GetBytes(signature.ToLowerInvariant())))
            { error = $"invalid {_scheme} signature"; return false; }
            lock (_seen)
            {
                if (!_seen.Add(signature)) { error = "duplicate signature (replayed message)"; return false; }
                _seenOrder.Enqueue(signature);
                if (_seenOrder.Count > SeenCapacity) _seen.Remove(_seenOrder.Dequeue());
            }
        }
        JsonObject? h, p, m, c;
        try
        {
            h = JsonNode.Parse(header) as JsonObject;
            p = JsonNode.Parse(parent) as JsonObject;
            m = JsonNode.Parse(metadata) as JsonObject;
            c = JsonNode.Parse(content) as JsonObject;
        }
        catch (JsonException e) { error = $"a JSON frame does not parse: {e.Message}"; return false; }
        if (h is null || p is null || m is null || c is null) { error = "header, parent_header, metadata and content must be JSON objects"; return false; }
        if (h["msg_type"] is not JsonValue mt || !mt.TryGetValue<string>(out _) || h["msg_id"] is not JsonValue id || !id.TryGetValue<string>(out _))
        { error = "header lacks msg_type or msg_id"; return false; }
        message = new JupyterMessage(frames.Take(d).ToList(), h, p, m, c, frames.Skip(d + 6).ToList());
        error = "";
        return true;
    }

    /// <summary>Frames for a message to send.</summary>
    public NetMQMessage Encode(JupyterMessage message)
    {
        byte[] header = Json(message.Header), parent = Json(message.ParentHeader), metadata = Json(message.Metadata), content = Json(message.Content);
        var frames = new NetMQMessage();
        foreach (var id in message.Identities) frames.Append(id);
        frames.Append(DelimiterBytes);
        frames.Append(Encoding.ASCII.GetBytes(Sign(header, parent, metadata, content)));
        frames.Append(header);
        frames.Append(parent);
        frames.Append(metadata);
        frames.Append(content);
        foreach (var b in message.Buffers) frames.Append(b);
        return frames;
    }

    /// <summary>A new message of <paramref name="msgType"/> answering (or caused by) <paramref name="parent"/>.</summary>
    public JupyterMessage Create(string msgType, JsonObject content, JupyterMessage? parent, IReadOnlyList<byte[]>? identities = null) =>
        new(identities ?? parent?.Identities ?? Array.Empty<byte[]>(),
            new JsonObject
            {
                ["msg_id"] = Guid.NewGuid().ToString("N"),
                ["session"] = Session,
                ["username"] = "kernel",
                ["date"] = DateTime.UtcNow.ToString("yyyy-MM-ddTHH:mm:ss.ffffffZ"),
                ["msg_type"] = msgType,
                ["version"] = ProtocolVersion,
            },
            parent?.Header.DeepClone().AsObject() ?? new JsonObject(), new JsonObject(), content, Array.Empty<byte[]>());

    static byte[] Json(JsonObject o) => Encoding.UTF8.GetBytes(o.ToJsonString());
}
