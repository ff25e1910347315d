using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using Workbook.Data;

namespace Workbook.Tests.Data;

/// <summary>The downloader against a loopback HTTP server on 127.0.0.1 (no outside network).</summary>
public sealed class DownloaderTests : IDisposable
{
    readonly LoopbackServer _server = new();
    readonly byte[] _payload;
    readonly string _dir = Path.Combine(Path.GetTempPath(), "wb-dl-" + Guid.NewGuid().ToString("N"));

    public DownloaderTests()
    {
        _payload = new byte[300_000];
        new Random(1).NextBytes(_payload);
        _server.Files["/data.bin"] = _payload;
        Directory.CreateDirectory(_dir);
    }

    public void Dispose() => _server.Dispose();

    string Sha256 => "sha256:" + Convert.ToHexString(SHA256.HashData(_payload)).ToLowerInvariant();
    string Url(string path = "/data.bin") => _server.Prefix + path.TrimStart('/');
    string Dest => Path.Combine(_dir, "data.bin");

    [Fact]
    public void DownloadsVerifiesAndThenUsesTheCache()
    {
        var progress = new List<DownloadProgress>();
        Downloader.Fetch(new[] { Url() }, Dest, Sha256, progress.Add);
        Assert.Equal(_payload, File.ReadAllBytes(Dest));
        Assert.Single(_server.Requests);
        Assert.Null(_server.Requests[0].Range);
        Assert.Equal(_payload.Length, progress[^1].Bytes);
        Assert.Equal(_payload.Length, progress[^1].TotalBytes);
        Assert.True(progress.Zip(progress.Skip(1)).All(p => p.First.Bytes <= p.Second.Bytes), "progress must not go backwards");
        Assert.False(File.Exists(Dest + ".partial"));

        Downloader.Fetch(new[] { Url() }, Dest, Sha256);
        Assert.Single(_server.Requests); // cache hit: no second request
        // MD5 checksums are accepted too (the published MNIST ones are MD5).
        Downloader.Fetch(new[] { Url() }, Dest, "md5:" + Convert.ToHexString(MD5.HashData(_payload)).ToLowerInvariant());
        Assert.Single(_server.Requests);
    }

    [Fact]
    public void ResumesWithARangeRequestAfterTheConnectionDrops()
    {
        _server.AbortFirstAfter = 100_000;
        var progress = new List<DownloadProgress>();
        Downloader.Fetch(new[] { Url() }, Dest, Sha256, progress.Add, attempts: 3);
        Assert.Equal(_payload, File.ReadAllBytes(Dest));
        Assert.Equal(2, _server.Requests.Count);
        var range = _server.Requests[1].Range;
        Assert.NotNull(range);
        long from = long.Parse(range!["bytes=".Length..^1]);
        Assert.InRange(from, 1, 100_000);                     // resumed where the first response stopped ...
        Assert.Equal(from, progress[^1].ResumedFrom);          // ... and said so
        Assert.Equal(206, _server.Requests[1].Status);
    }

    [Fact]
    public void ResumesAnExistingPartialFile()
    {
        File.WriteAllBytes(Dest + ".partial", _payload[..12_345]);
        Downloader.Fetch(new[] { Url() }, Dest, Sha256);
        Assert.Equal(_payload, File.ReadAllBytes(Dest));
        Assert.Equal("bytes=12345-", _server.Requests.Single().Range);
    }

    [Fact]
    public void AServerThatIgnoresRangeRestartsTheFile()
    {
        _server.IgnoreRange = true;
        File.WriteAllBytes(Dest + ".partial", new byte[5000]); // junk that must not stay in front
        Downloader.Fetch(new[] { Url() }, Dest, Sha256);
        Assert.Equal(_payload, File.ReadAllBytes(Dest));
        Assert.Equal(200, _server.Requests.Single().Status);
    }

    [Fact]
    public void AWrongChecksumIsRejectedAndNothingIsKept()
    {
        var wrong = "sha256:" + new string('0', 64);
        var e = Assert.Throws<InvalidDataException>(() => Downloader.Fetch(new[] { Url() }, Dest, wrong));
        Assert.Contains("checksum is " + Sha256, e.Message);
        Assert.Contains("expected " + wrong, e.Message);
        Assert.False(File.Exists(Dest));
        Assert.False(File.Exists(Dest + ".partial"));
        Assert.Contains("'checksum'", Assert.Throws<ArgumentException>(() => Downloader.Fetch(new[] { Url() }, Dest, "crc:1234")).Message);
    }

    [Fact]
    public void MirrorsAreTriedInOrderAndErrorsListEveryAddress()
    {
        Downloader.Fetch(new[] { Url("/missing.bin"), Url() }, Dest, Sha256, attempts: 1);
        Assert.Equal(_payload, File.ReadAllBytes(Dest));
        Assert.Equal(new[] { 404, 200 }, _server.Requests.Select(r => r.Status));

        var e = Assert.Throws<IOException>(() => Downloader.Fetch(new[] { Url("/a.bin"), Url("/b.bin") }, Path.Combine(_dir, "x.bin"), Sha256, attempts: 1));
        Assert.Contains(Url("/a.bin"), e.Message);
        Assert.Contains(Url("/b.bin"), e.Message);
        Assert.Contains("404", e.Message);
        Assert.Contains("data/", e.Message); // tells offline users where the files are
    }

    [Fact]
    public void DatasetFilesInTheRepositoryMatchTheirChecksums()
    {
        foreach (var f in Datasets.Files.Where(f => File.Exists(Path.Combine(TestSetup.RepoRoot, "data", f.Dataset, f.FileName))))
        {
            Assert.True(Downloader.Verify(Path.Combine(TestSetup.RepoRoot, "data", f.Dataset, f.FileName), f.Checksum), f.FileName);
            Assert.Equal(Path.Combine(TestSetup.RepoRoot, "data", f.Dataset, f.FileName), Datasets.Resolve(f.Dataset, f.FileName, download: false));
        }
    }

    /// <summary>A tiny static file server with Range support and fault injection.</summary>
    sealed class LoopbackServer : IDisposable
    {
        readonly HttpListener _listener = new();
        readonly Task _loop;
        int _served;

        public LoopbackServer()
        {
            var probe = new TcpListener(IPAddress.Loopback, 0);
            probe.Start();
            int port = ((IPEndPoint)probe.LocalEndpoint).Port;
            probe.Stop();
            Prefix = $"http://127.0.0.1:{port}/";
            _listener.Prefixes.Add(Prefix);
            _listener.Start();
            _loop = Task.Run(Serve);
        }

        public string Prefix { get; }
        public Dictionary<string, byte[]> Files { get; } = new();
        public List<(string Path, string? Range, int Status)> Requests { get; } = new();
        public bool IgnoreRange { get; set; }
        public int? AbortFirstAfter { get; set; }

        async Task Serve()
        {
            while (_listener.IsListening)
            {
                HttpListenerContext ctx;
                try { ctx = await _listener.GetContextAsync(); }
                catch (Exception) { return; }
                var path = ctx.Request.Url!.AbsolutePath;
                var range = ctx.Request.Headers["Range"];
                var response = ctx.Response;
                if (!Files.TryGetValue(path, out var body))
                {
                    lock (Requests) Requests.Add((path, range, 404));
                    response.StatusCode = 404;
                    response.Close();
                    continue;
                }
                long start = 0;
                if (range is not null && !IgnoreRange && range.StartsWith("bytes=") && range.EndsWith("-"))
                {
                    start = long.Parse(range[6..^1]);
                    response.StatusCode = 206;
                    response.Headers["Content-Range"] = $"bytes {start}-{body.Length - 1}/{body.Length}";
                }
                lock (Requests) Requests.Add((path, range, response.StatusCode));
                response.ContentLength64 = body.Length - start;
                try
                {
                    if (AbortFirstAfter is { } cut && _served++ == 0)
                    {
                        await response.OutputStream.WriteAsync(body.AsMemory((int)start, cut));
                        await response.OutputStream.FlushAsync();
                        response.Abort(); // the connection drops mid-file
                        continue;
                    }
                    await response.OutputStream.WriteAsync(body.AsMemory((int)start));
                    response.Close();
                }
                catch (Exception) { /* client went away */ }
            }
        }

        public void Dispose()
        {
            _listener.Stop();
            _listener.Close();
            try { _loop.Wait(TimeSpan.FromSeconds(5)); } catch (AggregateException) { }
        }
    }
}
