using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using TorchSharp;
using Workbook.Gpt;
using static TorchSharp.torch;

namespace Workbook.Tests.Gpt;

/// <summary>
/// FromPretrained against a loopback HTTP server that imitates the Hugging Face hub: <c>/owner/name/resolve/main/file</c>
/// answers HEAD with the metadata (small files: 200 with Content-Length; the weights: 302 to a "CDN" path with
/// <c>X-Linked-Etag</c> = SHA-256 and <c>X-Linked-Size</c>), a renamed repository answers with a relative redirect, and
/// the CDN path serves the bytes with Range support. The checkpoint it serves is one the test wrote.
/// </summary>
public sealed class GptHubTests : IDisposable
{
    readonly HttpListener _listener = new();
    readonly Dictionary<string, byte[]> _files = new();
    readonly ConcurrentQueue<(string Method, string Path, string? Range)> _requests = new();
    readonly string _checkpoint, _cache;
    readonly Uri _endpoint;
    string? _etagOverride;
    int _breakNextWeightsResponseAt = -1;

    public GptHubTests()
    {
        _checkpoint = Directory.CreateDirectory(Path.Combine(Path.GetTempPath(), "wb-hub-src-" + Guid.NewGuid().ToString("N"))).FullName;
        _cache = Path.Combine(Path.GetTempPath(), "wb-hub-cache-" + Guid.NewGuid().ToString("N"));
        using (var model = Golden.Model()) GptCheckpoint.Save(model, _checkpoint);
        _files["config.json"] = File.ReadAllBytes(Path.Combine(_checkpoint, "config.json"));
        _files["model.safetensors"] = File.ReadAllBytes(Path.Combine(_checkpoint, "model.safetensors"));

        var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        int port = ((IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop();
        _endpoint = new Uri($"http://127.0.0.1:{port}/");
        _listener.Prefixes.Add(_endpoint.ToString());
        _listener.Start();
        _ = Task.Run(Serve);
    }

    async Task Serve()
    {
        while (_listener.IsListening)
        {
            HttpListenerContext ctx;
            try { ctx = await _listener.GetContextAsync(); }
            catch (Exception) { return; }
            try { await Handle(ctx); }
            catch (Exception) { /* the client went away */ }
        }
    }

    async Task Handle(HttpListenerContext ctx)
    {
        var request = ctx.Request;
        var response = ctx.Response;
        var path = request.Url!.AbsolutePath;
        var range = request.Headers["Range"];
        _requests.Enqueue((request.HttpMethod, path, range));
        var name = path.Split('/').Last();
        if (path.StartsWith("/tiny-gpt2/resolve/", StringComparison.Ordinal)) // the repository's old name
        {
            response.StatusCode = 307;
            response.Headers["Location"] = "/test-org" + path;
            response.Close();
            return;
        }
        if (path.StartsWith("/test-org/tiny-gpt2/resolve/main/", StringComparison.Ordinal) && _files.TryGetValue(name, out var meta))
        {
            if (name == "model.safetensors") // large file: the hub redirects to its CDN and puts the metadata on the redirect
            {
                response.StatusCode = 302;
                response.Headers["Location"] = new Uri(_endpoint, "cdn/" + name).ToString();
                response.Headers["X-Linked-Etag"] = "\"" + (_etagOverride ?? Sha256(meta)) + "\"";
                response.Headers["X-Linked-Size"] = meta.Length.ToString();
                response.Close();
                return;
            }
            await Send(ctx, meta, range);
            return;
        }
        if (path.StartsWith("/cdn/", StringComparison.Ordinal) && _files.TryGetValue(name, out var data))
        {
            await Send(ctx, data, range, breakAt: Interlocked.Exchange(ref _breakNextWeightsResponseAt, -1));
            return;
        }
        response.StatusCode = 404;
        response.Close();
    }

    static async Task Send(HttpListenerContext ctx, byte[] data, string? range, int breakAt = -1)
    {
        var response = ctx.Response;
        long from = range is not null && range.StartsWith("bytes=", StringComparison.Ordinal) ? long.Parse(range[6..].TrimEnd('-')) : 0;
        response.StatusCode = from > 0 ? 206 : 200;
        if (from > 0) response.Headers["Content-Range"] = $"bytes {from}-{data.Length - 1}/{data.Length}";
        response.ContentLength64 = data.Length - from;
        if (ctx.Request.HttpMethod == "HEAD") { response.Close(); return; }
        if (breakAt > 0)
        {
            await response.OutputStream.WriteAsync(data.AsMemory((int)from, breakAt));
            await response.OutputStream.FlushAsync();
            response.Abort(); // the connection drops in the middle of the body
            return;
        }
        await response.OutputStream.WriteAsync(data.AsMemory((int)from));
        response.Close();
    }

    static string Sha256(byte[] data) => Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(data)).ToLowerInvariant();

    List<(string Method, string Path, string? Range)> WeightDownloads() => _requests.Where(r => r.Path == "/cdn/model.safetensors").ToList();

    static void AssertGoldenLogits(GptModel model)
    {
        using var _ = no_grad();
        Assert.True(Golden.MaxDiff(model.forward(Golden.Tensors["input.input_ids"]), Golden.Tensors["expected.logits"]) < 1e-4);
    }

    [Fact]
    public void DownloadsIntoTheCacheWithProgressThenWorksOffline()
    {
        var reports = new List<Workbook.Data.DownloadProgress>();
        using (var model = GptHub.FromPretrained("test-org/tiny-gpt2", _cache, reports.Add, _endpoint))
            AssertGoldenLogits(model);
        int requests = _requests.Count;
        Assert.Equal(4, requests); // HEAD + GET for each of the two files
        var last = reports.Last(r => r.Url.EndsWith("model.safetensors", StringComparison.Ordinal));
        Assert.Equal(_files["model.safetensors"].Length, last.Bytes);
        Assert.Equal(1.0, last.Fraction);
        Assert.True(File.Exists(Path.Combine(_cache, "test-org--tiny-gpt2", "main", "model.safetensors")));

        using (var again = GptHub.FromPretrained("test-org/tiny-gpt2", _cache, endpoint: _endpoint))
            AssertGoldenLogits(again);
        Assert.Equal(requests, _requests.Count); // served from the cache: no new request
    }

    [Fact]
    public void FollowsTheRenamedRepositoryRedirect()
    {
        using (var model = GptHub.FromPretrained("tiny-gpt2", _cache, endpoint: _endpoint))
            AssertGoldenLogits(model);
        Assert.Contains(_requests, r => r.Method == "HEAD" && r.Path == "/tiny-gpt2/resolve/main/config.json");
        Assert.Contains(_requests, r => r.Method == "HEAD" && r.Path == "/test-org/tiny-gpt2/resolve/main/config.json");
    }

    [Fact]
    public void ResumesAnInterruptedDownloadWithARangeRequest()
    {
        var folder = Directory.CreateDirectory(Path.Combine(_cache, "test-org--tiny-gpt2", "main")).FullName;
        int have = _files["model.safetensors"].Length / 3;
        File.WriteAllBytes(Path.Combine(folder, "model.safetensors.partial"), _files["model.safetensors"][..have]);
        using (var model = GptHub.FromPretrained("test-org/tiny-gpt2", _cache, endpoint: _endpoint))
            AssertGoldenLogits(model);
        var weights = Assert.Single(WeightDownloads());
        Assert.Equal($"bytes={have}-", weights.Range);
        Assert.False(File.Exists(Path.Combine(folder, "model.safetensors.partial")));
    }

    [Fact]
    public void RetriesWhenTheConnectionBreaksMidFile()
    {
        int cut = _files["model.safetensors"].Length / 3;
        _breakNextWeightsResponseAt = cut;
        using (var model = GptHub.FromPretrained("test-org/tiny-gpt2", _cache, endpoint: _endpoint))
            AssertGoldenLogits(model);
        var weights = WeightDownloads();
        Assert.Equal(2, weights.Count);
        Assert.Null(weights[0].Range);
        // the retry asks for the rest of the file after what arrived (all of it, if the reset discarded the received bytes)
        if (weights[1].Range is string range)
            Assert.InRange(long.Parse(range["bytes=".Length..].TrimEnd('-')), 1, cut);
    }

    [Fact]
    public void ChecksumMismatchIsReportedAndNothingIsCached()
    {
        _etagOverride = new string('0', 64);
        var e = Assert.Throws<InvalidDataException>(() => GptHub.FromPretrained("test-org/tiny-gpt2", _cache, endpoint: _endpoint));
        Assert.Contains("checksum", e.Message);
        Assert.Contains(_etagOverride, e.Message);
        var folder = Path.Combine(_cache, "test-org--tiny-gpt2", "main");
        Assert.False(File.Exists(Path.Combine(folder, "model.safetensors")));
        Assert.False(File.Exists(Path.Combine(folder, "model.safetensors.partial")));
    }

    [Fact]
    public void UnknownRepositoryNamesTheUrl()
    {
        var e = Assert.Throws<HttpRequestException>(() => GptHub.FromPretrained("test-org/nope", _cache, endpoint: _endpoint));
        Assert.Contains("404", e.Message);
        Assert.Contains("test-org/nope/resolve/main/config.json", e.Message);
    }

    [Fact]
    public void LocalFolderLoadsWithoutNetwork()
    {
        using (var model = GptHub.FromPretrained(_checkpoint, _cache, endpoint: _endpoint))
            AssertGoldenLogits(model);
        Assert.Empty(_requests);
        Assert.Throws<ArgumentException>(() => GptHub.FromPretrained("not/a/repo", _cache, endpoint: _endpoint));
    }

    public void Dispose() => _listener.Close();
}
