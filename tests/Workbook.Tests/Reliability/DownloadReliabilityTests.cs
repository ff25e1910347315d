using System.Security.Cryptography;
using System.Text;
using Workbook.Data;
using Workbook.Gpt;

namespace Workbook.Tests.Reliability;

/// <summary>
/// Findings 4 to 6 of issue 14, against loopback servers that misbehave: a stalled or trickling server must not hang
/// <see cref="Downloader"/> or <see cref="GptHub"/>; a truncated hub file must never be cached under its final name;
/// a revision or repository id must not lead outside the cache folder.
/// </summary>
public sealed class DownloadReliabilityTests : IDisposable
{
    readonly string _dir = Hostile.Folder("dl");
    readonly TimeSpan _readTimeout = Downloader.ReadTimeout;
    readonly long _minimumRate = Downloader.MinimumBytesPerSecond;
    readonly byte[] _config = File.ReadAllBytes(Path.Combine(Gpt.Golden.Folder, "config.json"));
    readonly byte[] _weights = File.ReadAllBytes(Path.Combine(Gpt.Golden.Folder, "model.safetensors"));

    /// <summary>Short timeouts, so a stall is detected in about a second (restored by <see cref="Dispose"/>).</summary>
    static void Timeouts(TimeSpan read, long minimumBytesPerSecond)
    {
        Downloader.ReadTimeout = read;
        Downloader.MinimumBytesPerSecond = minimumBytesPerSecond;
    }

    public void Dispose()
    {
        Downloader.ReadTimeout = _readTimeout;
        Downloader.MinimumBytesPerSecond = _minimumRate;
    }

    /// <summary>Fetch must fail within <paramref name="limit"/> with an IOException naming the URL and the given fragments, and leave no file under the final name.</summary>
    void FailsWithin(TimeSpan limit, string url, string destination, params string[] mustMention)
    {
        Hostile.Within(limit, () => Hostile.Throws<IOException>(() => Downloader.Fetch([url], destination, null, attempts: 2), [url, .. mustMention]), "Downloader.Fetch");
        Assert.False(File.Exists(destination), "a failed download left a file under its final name");
    }

    // ---- Finding 4: stalls ----

    [Fact]
    public void ServerThatStallsAfterTheHeadersFails()
    {
        using var server = new RawHttpServer(async (_, s, ct) =>
        {
            await RawHttpServer.Head(s, 200, ct, ("Content-Length", "262144"));
            await s.WriteAsync(new byte[1000], ct);
            await s.FlushAsync(ct);
            await RawHttpServer.Stall(ct); // then silence, with the connection open
        });
        Timeouts(TimeSpan.FromSeconds(1), 0);
        FailsWithin(TimeSpan.FromSeconds(12), server.Prefix + "big.bin", Path.Combine(_dir, "big.bin"), "stalled", "1000 of 262144 bytes");
    }

    [Fact]
    public void ServerThatTricklesBelowTheMinimumSpeedFails()
    {
        using var server = new RawHttpServer(async (_, s, ct) =>
        {
            await RawHttpServer.Head(s, 200, ct, ("Content-Length", "100000"));
            for (int i = 0; i < 1000 && !ct.IsCancellationRequested; i++) // 20 bytes every 50 ms: 400 B/s, never idle for long
            {
                await s.WriteAsync(new byte[20], ct);
                await s.FlushAsync(ct);
                await Task.Delay(50, ct);
            }
        });
        Timeouts(TimeSpan.FromSeconds(1), 4096);
        FailsWithin(TimeSpan.FromSeconds(12), server.Prefix + "slow.bin", Path.Combine(_dir, "slow.bin"), "too slow", "below Downloader.MinimumBytesPerSecond = 4096");
    }

    [Fact]
    public void ServerThatNeverAnswersFails()
    {
        using var server = new RawHttpServer((_, _, ct) => RawHttpServer.Stall(ct));
        Timeouts(TimeSpan.FromSeconds(1), 0);
        FailsWithin(TimeSpan.FromSeconds(12), server.Prefix + "quiet.bin", Path.Combine(_dir, "quiet.bin"), "sent no response within 1 s");
    }

    // ---- The hub: a loopback imitation whose misbehaviour each test chooses ----

    /// <summary>What the imitation hub does; the defaults are the real hub's behaviour.</summary>
    sealed class Hub
    {
        public bool ConfigLength = true, ConfigEtag = true;
        public int? ConfigCut;                // send only this many bytes of config.json, then close cleanly, without a Content-Length
        public bool WeightsSha256 = true;
        public int? WeightsCut;               // the same for the weights
        public bool WeightsStall;             // send 1000 bytes of the weights, then go quiet
        public bool HeadStall;                // never answer the HEAD requests
    }

    RawHttpServer HubServer(Hub hub) => new(async (r, s, ct) =>
    {
        var parts = r.Path.Trim('/').Split('/');
        if (hub.HeadStall && r.Method == "HEAD") { await RawHttpServer.Stall(ct); return; }
        if (parts[0] == "cdn")
        {
            if (hub.WeightsStall)
            {
                await RawHttpServer.Head(s, 200, ct, ("Content-Length", _weights.Length.ToString()));
                await s.WriteAsync(_weights.AsMemory(0, 1000), ct);
                await s.FlushAsync(ct);
                await RawHttpServer.Stall(ct);
                return;
            }
            await Body(s, _weights, hub.WeightsCut, ct);
            return;
        }
        if (parts.Length < 5 || parts[2] != "resolve") { await RawHttpServer.Head(s, 404, ct, ("Content-Length", "0")); return; }
        var file = parts[^1];
        if (file == "model.safetensors" && r.Method == "HEAD")
        {
            var headers = new List<(string, string)> { ("Location", new Uri(new Uri(r.Headers["Host"] is { } host ? $"http://{host}/" : "http://127.0.0.1/"), "cdn/model.safetensors").ToString()), ("X-Linked-Size", _weights.Length.ToString()), ("Content-Length", "0") };
            headers.Add(("X-Linked-Etag", hub.WeightsSha256 ? $"\"{Hex(SHA256.HashData(_weights))}\"" : "\"not-a-sha256\""));
            await RawHttpServer.Head(s, 302, ct, headers.ToArray());
            return;
        }
        if (file != "config.json") { await RawHttpServer.Head(s, 404, ct, ("Content-Length", "0")); return; }
        if (r.Method == "HEAD")
        {
            var headers = new List<(string, string)>();
            if (hub.ConfigLength) headers.Add(("Content-Length", _config.Length.ToString()));
            if (hub.ConfigEtag) headers.Add(("ETag", $"\"{GitSha1(_config)}\""));
            await RawHttpServer.Head(s, 200, ct, headers.ToArray());
            return;
        }
        await Body(s, _config, hub.ConfigCut, ct);
    });

    /// <summary>The whole body with its length, or the first <paramref name="cut"/> bytes and a clean close with no length (HTTP/1.0 style).</summary>
    static async Task Body(Stream s, byte[] data, int? cut, CancellationToken ct)
    {
        if (cut is { } n)
        {
            await RawHttpServer.Head(s, 200, ct);
            await s.WriteAsync(data.AsMemory(0, n), ct);
            return;
        }
        await RawHttpServer.Head(s, 200, ct, ("Content-Length", data.Length.ToString()));
        await s.WriteAsync(data, ct);
    }

    static string Hex(byte[] b) => Convert.ToHexString(b).ToLowerInvariant();
    static string GitSha1(byte[] data) => Hex(SHA1.HashData([.. Encoding.ASCII.GetBytes($"blob {data.Length}\0"), .. data]));

    string Cache => Path.Combine(_dir, "cache");
    string Cached(string file, string revision = "main") => Path.Combine(Cache, "test-org--tiny", revision, file);

    void HubFailsAndCachesNothing<T>(RawHttpServer server, string file, params string[] mustMention) where T : Exception
    {
        Hostile.Within(TimeSpan.FromSeconds(30), () => Hostile.Throws<T>(
            () => GptHub.FromPretrained("test-org/tiny", Cache, endpoint: new Uri(server.Prefix)), mustMention), "GptHub.FromPretrained");
        Assert.False(File.Exists(Cached(file)), $"a {file} that failed verification was cached under its final name");
    }

    [Fact]
    public void HubWithAStalledCdnFails()
    {
        using var server = HubServer(new Hub { WeightsStall = true });
        Timeouts(TimeSpan.FromSeconds(1), 0);
        HubFailsAndCachesNothing<IOException>(server, "model.safetensors", "cdn/model.safetensors", "stalled", $"1000 of {_weights.Length} bytes");
    }

    [Fact]
    public void HubThatNeverAnswersTheHeadRequestFails()
    {
        using var server = HubServer(new Hub { HeadStall = true });
        Timeouts(TimeSpan.FromSeconds(1), 0);
        HubFailsAndCachesNothing<IOException>(server, "config.json", "HEAD", "config.json", "no response within 1 s");
    }

    // ---- Finding 5: never cache what failed ----

    [Fact]
    public void TruncatedConfigIsNotCachedWhenTheLengthIsKnown()
    {
        var hub = new Hub { ConfigCut = _config.Length / 2 };
        using var server = HubServer(hub);
        HubFailsAndCachesNothing<IOException>(server, "config.json", "config.json", $"ended after {_config.Length / 2} of {_config.Length} bytes");
        hub.ConfigCut = null; // the server recovers: the next call works, nothing was poisoned
        using var model = GptHub.FromPretrained("test-org/tiny", Cache, endpoint: new Uri(server.Prefix));
        Assert.Equal(512, model.Config.VocabSize);
    }

    [Fact]
    public void TruncatedConfigIsNotCachedWhenOnlyTheGitEtagIsKnown()
    {
        using var server = HubServer(new Hub { ConfigCut = _config.Length / 2, ConfigLength = false });
        HubFailsAndCachesNothing<InvalidDataException>(server, "config.json", "config.json", "checksum", "sha1-git:" + GitSha1(_config));
    }

    [Fact]
    public void TruncatedConfigIsNotCachedWhenOnlyJsonCanTell()
    {
        using var server = HubServer(new Hub { ConfigCut = _config.Length / 2, ConfigLength = false, ConfigEtag = false });
        HubFailsAndCachesNothing<InvalidDataException>(server, "config.json", "config.json", "not valid JSON");
    }

    [Fact]
    public void TruncatedWeightsWithALinkedSizeButNoSha256AreNotCached()
    {
        using var server = HubServer(new Hub { WeightsSha256 = false, WeightsCut = 4692 });
        HubFailsAndCachesNothing<IOException>(server, "model.safetensors", "cdn/model.safetensors", $"ended after 4692 of {_weights.Length} bytes");
    }

    [Fact]
    public void APoisonedCacheFromAnOlderVersionIsFetchedAgain()
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Cached("config.json"))!);
        File.WriteAllBytes(Cached("config.json"), _config[..241]); // what the old version kept after a truncated download
        using var server = HubServer(new Hub());
        using var model = GptHub.FromPretrained("test-org/tiny", Cache, endpoint: new Uri(server.Prefix));
        Assert.Equal(512, model.Config.VocabSize);
        Assert.Equal(_config, File.ReadAllBytes(Cached("config.json")));
    }

    // ---- Finding 6: ids and revisions stay inside the cache ----

    [Fact]
    public void RevisionCannotLeaveTheCacheFolder()
    {
        using var server = HubServer(new Hub());
        Hostile.Throws<ArgumentException>(() => GptHub.FromPretrained("test-org/tiny", Cache, endpoint: new Uri(server.Prefix), revision: "../../escaped"),
            "Revision '../../escaped'", "revision");
        Assert.False(Directory.Exists(Path.Combine(_dir, "escaped")), "files were written outside the cache folder");
        Assert.Empty(server.Requests);
        foreach (var bad in new[] { "/abs", "a//b", ".hidden", "main/", "x.lock", "a b", "" })
            Hostile.Throws<ArgumentException>(() => GptHub.Download("test-org/tiny", ["config.json"], Cache, revision: bad, endpoint: new Uri(server.Prefix)), $"Revision '{bad}'");
    }

    [Fact]
    public void RepositoryIdsFollowTheHubGrammar()
    {
        using var server = HubServer(new Hub());
        foreach (var bad in new[] { "a/b/c", "-x", "x-", "x--y", "a/..", "..", "a b", "owner/", "/name", "a\\b", new string('x', 97) })
            Hostile.Throws<ArgumentException>(() => GptHub.Download(bad, ["config.json"], Cache, endpoint: new Uri(server.Prefix)), $"'{bad}'", "hub repository id");
        Hostile.Throws<ArgumentException>(() => GptHub.Download("test-org/tiny", ["../../x.json"], Cache, endpoint: new Uri(server.Prefix)), "'../../x.json'", "outside");
        Assert.Empty(server.Requests);
    }

    [Fact]
    public void ABranchWithASlashStaysInsideTheCache()
    {
        using var server = HubServer(new Hub());
        var folder = GptHub.Download("test-org/tiny", ["config.json"], Cache, endpoint: new Uri(server.Prefix), revision: "refs/pr/1");
        Assert.Equal(Path.GetDirectoryName(Cached("config.json", Path.Combine("refs", "pr", "1"))), folder);
        Assert.Equal(_config, File.ReadAllBytes(Path.Combine(folder, "config.json")));
    }
}
