using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Workbook.Tests.Reliability;

/// <summary>One parsed request of <see cref="RawHttpServer"/>.</summary>
sealed record RawRequest(string Method, string Path, IReadOnlyDictionary<string, string> Headers);

/// <summary>
/// A loopback HTTP/1.1 server on a raw socket, so a test can misbehave as real servers do: stall after the headers,
/// trickle bytes, close early without a length. Every connection is answered by <see cref="Handler"/> and closed;
/// a handler that stalls waits at most <see cref="MaxStall"/> (or until the server is disposed), so nothing outlives
/// the test.
/// </summary>
sealed class RawHttpServer : IDisposable
{
    readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    readonly CancellationTokenSource _stop = new();
    readonly List<RawRequest> _requests = new();

    public RawHttpServer(Func<RawRequest, Stream, CancellationToken, Task> handler)
    {
        Handler = handler;
        _listener.Start();
        Prefix = $"http://127.0.0.1:{((IPEndPoint)_listener.LocalEndpoint).Port}/";
        _ = Task.Run(Accept);
    }

    public string Prefix { get; }
    public Func<RawRequest, Stream, CancellationToken, Task> Handler { get; set; }
    public static TimeSpan MaxStall { get; } = TimeSpan.FromSeconds(15);
    public IReadOnlyList<RawRequest> Requests { get { lock (_requests) return _requests.ToList(); } }

    async Task Accept()
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient client;
            try { client = await _listener.AcceptTcpClientAsync(_stop.Token); }
            catch (Exception) { return; }
            _ = Task.Run(() => Serve(client));
        }
    }

    async Task Serve(TcpClient client)
    {
        using var _ = client;
        using var bounded = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
        bounded.CancelAfter(MaxStall);
        try
        {
            var stream = client.GetStream();
            var request = await ReadRequest(stream, bounded.Token);
            if (request is null) return;
            lock (_requests) _requests.Add(request);
            await Handler(request, stream, bounded.Token);
            await stream.FlushAsync(bounded.Token);
        }
        catch (Exception) { /* the client went away, or the stall ended */ }
    }

    static async Task<RawRequest?> ReadRequest(Stream s, CancellationToken ct)
    {
        var bytes = new List<byte>();
        var one = new byte[1];
        while (bytes.Count < 65536)
        {
            if (await s.ReadAsync(one, ct) == 0) return null;
            bytes.Add(one[0]);
            int n = bytes.Count;
            if (n >= 4 && bytes[n - 4] == '\r' && bytes[n - 3] == '\n' && bytes[n - 2] == '\r' && bytes[n - 1] == '\n') break;
        }
        var lines = Encoding.ASCII.GetString(bytes.ToArray()).Split("\r\n");
        var first = lines[0].Split(' ');
        var headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (var line in lines.Skip(1).Where(l => l.Contains(':')))
            headers[line[..line.IndexOf(':')].Trim()] = line[(line.IndexOf(':') + 1)..].Trim();
        return new RawRequest(first[0], first.Length > 1 ? Uri.UnescapeDataString(first[1]) : "/", headers);
    }

    /// <summary>Writes a status line and headers (<c>Connection: close</c> is added).</summary>
    public static Task Head(Stream s, int status, CancellationToken ct, params (string Name, string Value)[] headers)
    {
        var text = new StringBuilder($"HTTP/1.1 {status} {(status is >= 200 and < 300 ? "OK" : status is >= 300 and < 400 ? "Found" : "Error")}\r\n");
        foreach (var (n, v) in headers) text.Append(n).Append(": ").Append(v).Append("\r\n");
        text.Append("Connection: close\r\n\r\n");
        return s.WriteAsync(Encoding.ASCII.GetBytes(text.ToString()), ct).AsTask();
    }

    /// <summary>Waits until the stall bound (or the server's end): a server that went quiet.</summary>
    public static async Task Stall(CancellationToken ct)
    {
        try { await Task.Delay(Timeout.Infinite, ct); }
        catch (OperationCanceledException) { }
    }

    public void Dispose()
    {
        _stop.Cancel();
        _listener.Stop();
    }
}
