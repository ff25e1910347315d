using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using TorchSharp;
using Workbook.Gpt;
using static TorchSharp.torch;

namespace Workbook.Tests.Gpt;

/// <summary>
/// FromPretrained against a loopback HTTP server that imitates the Hugging Face hub's resolve URLs, ETags and Range
/// support, serving a checkpoint the test wrote.
/// </summary>
public sealed class GptHubTests : IDisposable
{
    readonly HttpListener _listener = new();
    readonly Dictionary<string, byte[]> _files = new();
    readonly ConcurrentQueue<(string Path, string? Range)> _requests = new();
    readonly CancellationTokenSource _stop = new();
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
        while (!_stop.IsCancellationRequested)
        {
            HttpListenerContext ctx;
            try { ctx = await _listener.GetContextAsync(); }
            catch (Exception) { return; }
            var path = ctx.Request.Url!.AbsolutePath;
            var range = ctx.Request.Headers["Range"];
            _requests.Enqueue((path, range));
            var name = path.Split('/').Last();
            if (!path.StartsWith("/test-org/tiny-gpt2/resolve/main/", StringComparison.Ordinal) || !_files.TryGetValue(name, out var data))
            {
                ctx.Response.StatusCode = 404;
                ctx.Response.Close();
                continue;
            }
            long from = 0;
            if (range is not null && range.StartsWith("bytes=", StringComparison.Ordinal)) from = long.Parse(range[6..].TrimEnd('-'));
            if (name == "model.safetensors") ctx.Response.Headers["ETag"] = "\"" + (_etagOverride ?? Sha256(data)) + "\"";
            ctx.Response.StatusCode = from > 0 ? 206 : 200;
            if (from > 0) ctx.Response.Headers["Content-Range"] = $"bytes {from}-{data.Length - 1}/{data.Length}";
            ctx.Response.ContentLength64 = data.Length - from;
            if (name == "model.safetensors" && _breakNextWeightsResponseAt > 0)
            {
                int cut = _breakNextWeightsResponseAt;
                _breakNextWeightsResponseAt = -1;
                await ctx.Response.OutputStream.WriteAsync(data.AsMemory((int)from, cut));
                await ctx.Response.OutputStream.FlushAsync();
                ctx.Response.Abort(); // the connection drops in the middle of the body
                continue;
            }
            await ctx.Response.OutputStream.WriteAsync(data.AsMemory((int)from));
            ctx.Response.Close();
        }
    }

    static string Sha256(byte[] data) => Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(data)).ToLowerInvariant();

    List<(string Path, string? Range)> WeightRequests() => _requests.Where(r => r.Path.EndsWith("model.safetensors", StringComparison.Ordinal)).ToList();

    static void AssertGoldenLogits(GptModel model)
    {
        using var _ = no_grad();
        Assert.True(Golden.MaxDiff(model.forward(Golden.Tensors["input.input_ids"]), Golden.Tensors["expected.logits"]) < 1e-4);
    }

    [Fact]
    public void DownloadsIntoTheCacheWithProgressThenWorksOffline()
    {
        var reports = new List<DownloadProgress>();
        using (var model = GptHub.FromPretrained("test-org/tiny-gpt2", _cache, new SyncProgress(reports.Add), _endpoint))
            AssertGoldenLogits(model);
        Assert.Equal(2, _requests.Count);
        var last = reports.Last(r => r.File == "model.safetensors");
        Assert.Equal(_files["model.safetensors"].Length, last.BytesReceived);
        Assert.Equal(1.0, last.Fraction);
        Assert.True(File.Exists(Path.Combine(_cache, "test-org--tiny-gpt2", "main", "model.safetensors")));

        using (var again = GptHub.FromPretrained("test-org/tiny-gpt2", _cache, endpoint: _endpoint))
            AssertGoldenLogits(again);
        Assert.Equal(2, _requests.Count); // served from the cache: no new request
    }

    [Fact]
    public void ResumesAnInterruptedDownloadWithARangeRequest()
    {
        var folder = Directory.CreateDirectory(Path.Combine(_cache, "test-org--tiny-gpt2", "main")).FullName;
        int have = _files["model.safetensors"].Length / 3;
        File.WriteAllBytes(Path.Combine(folder, "model.safetensors.incomplete"), _files["model.safetensors"][..have]);
        using (var model = GptHub.FromPretrained("test-org/tiny-gpt2", _cache, endpoint: _endpoint))
            AssertGoldenLogits(model);
        var weights = Assert.Single(WeightRequests());
        Assert.Equal($"bytes={have}-", weights.Range);
        Assert.False(File.Exists(Path.Combine(folder, "model.safetensors.incomplete")));
    }

    [Fact]
    public void RetriesWhenTheConnectionBreaksMidFile()
    {
        int cut = _files["model.safetensors"].Length / 3;
        _breakNextWeightsResponseAt = cut;
        using (var model = GptHub.FromPretrained("test-org/tiny-gpt2", _cache, endpoint: _endpoint))
            AssertGoldenLogits(model);
        var weights = WeightRequests();
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
        Assert.Contains("Checksum mismatch", e.Message);
        Assert.Contains(_etagOverride, e.Message);
        var folder = Path.Combine(_cache, "test-org--tiny-gpt2", "main");
        Assert.False(File.Exists(Path.Combine(folder, "model.safetensors")));
        Assert.False(File.Exists(Path.Combine(folder, "model.safetensors.incomplete")));
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

    public void Dispose()
    {
        _stop.Cancel();
        _listener.Close();
    }

    sealed class SyncProgress(Action<DownloadProgress> report) : IProgress<DownloadProgress>
    {
        public void Report(DownloadProgress value) => report(value);
    }
}
