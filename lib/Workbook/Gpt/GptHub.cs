using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using static TorchSharp.torch;

namespace Workbook.Gpt;

/// <summary>Progress of one file download.</summary>
/// <param name="File">The file being downloaded (e.g. model.safetensors).</param>
/// <param name="BytesReceived">Bytes on disk so far, including a resumed part.</param>
/// <param name="TotalBytes">The full size, when the server said.</param>
public sealed record DownloadProgress(string File, long BytesReceived, long? TotalBytes)
{
    /// <summary>Fraction done in [0, 1], or null when the size is unknown.</summary>
    public double? Fraction => TotalBytes is > 0 ? (double)BytesReceived / TotalBytes.Value : null;

    /// <inheritdoc/>
    public override string ToString() => TotalBytes is long total
        ? string.Create(CultureInfo.InvariantCulture, $"{File}: {BytesReceived / 1048576.0:F1} / {total / 1048576.0:F1} MiB ({100.0 * BytesReceived / Math.Max(1, total):F0}%)")
        : string.Create(CultureInfo.InvariantCulture, $"{File}: {BytesReceived / 1048576.0:F1} MiB");
}

/// <summary>
/// <c>FromPretrained</c>: loads a GPT-2 by Hugging Face hub name (<c>"gpt2"</c>, <c>"gpt2-medium"</c>,
/// <c>"openai-community/gpt2-large"</c>, ...) or from a local checkpoint folder. Hub files (<c>config.json</c>,
/// <c>model.safetensors</c>) are downloaded once into a cache folder and reused offline afterwards.
/// <para>
/// Downloads go to <c>file.incomplete</c> and are renamed only when complete, so an interrupted download never looks
/// finished; the next attempt (automatic retries, or a later call) resumes with an HTTP <c>Range</c> request. The size
/// is checked against the server's <c>Content-Length</c>/<c>X-Linked-Size</c>, and the SHA-256 against the hub's
/// <c>X-Linked-Etag</c>/<c>ETag</c> (for large files the hub's ETag is the file's SHA-256), or against a hash you pass.
/// </para>
/// </summary>
public static class GptHub
{
    /// <summary>The hub endpoint: <c>HF_ENDPOINT</c> if set, else https://huggingface.co.</summary>
    public static Uri DefaultEndpoint => new((Environment.GetEnvironmentVariable("HF_ENDPOINT") is { Length: > 0 } e ? e : "https://huggingface.co").TrimEnd('/') + "/");

    /// <summary>The cache folder: <c>WORKBOOK_HUB_CACHE</c> if set, else <c>~/.cache/workbook/hub</c>.</summary>
    public static string DefaultCacheDirectory => Environment.GetEnvironmentVariable("WORKBOOK_HUB_CACHE") is { Length: > 0 } d ? d
        : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache", "workbook", "hub");

    /// <summary>
    /// Loads a GPT-2: from <paramref name="nameOrPath"/> if it is a folder with <c>config.json</c> and
    /// <c>model.safetensors</c>, otherwise from the hub repository of that name (downloaded into the cache if needed).
    /// </summary>
    /// <param name="nameOrPath">A checkpoint folder, or a hub repository id such as <c>gpt2</c>.</param>
    /// <param name="cacheDirectory">Where hub files are kept; default <see cref="DefaultCacheDirectory"/>.</param>
    /// <param name="progress">Receives download progress.</param>
    /// <param name="endpoint">The hub; default <see cref="DefaultEndpoint"/>.</param>
    /// <param name="revision">Branch, tag or commit; default main.</param>
    /// <param name="device">Where to put the model.</param>
    /// <param name="http">An HttpClient to use (tests, proxies); a default one otherwise.</param>
    /// <param name="cancellationToken">Cancels the download.</param>
    /// <exception cref="HttpRequestException">The hub could not be reached or refused the file; the message names the URL.</exception>
    /// <exception cref="InvalidDataException">A downloaded file has the wrong size or checksum, or the checkpoint is malformed.</exception>
    public static GptModel FromPretrained(string nameOrPath, string? cacheDirectory = null, IProgress<DownloadProgress>? progress = null,
        Uri? endpoint = null, string revision = "main", Device? device = null, HttpClient? http = null, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(nameOrPath);
        if (Directory.Exists(nameOrPath)) return GptCheckpoint.Load(nameOrPath, device);
        var folder = Download(nameOrPath, [GptCheckpoint.ConfigFile, GptCheckpoint.WeightsFile], cacheDirectory, progress, endpoint, revision, http, cancellationToken);
        return GptCheckpoint.Load(folder, device);
    }

    /// <summary>
    /// Downloads <paramref name="files"/> of hub repository <paramref name="repoId"/> into
    /// <c>cache/repo--id/revision/</c>, skipping files already complete, and returns that folder.
    /// </summary>
    /// <exception cref="ArgumentException">The repository id is not of the form <c>name</c> or <c>owner/name</c>.</exception>
    public static string Download(string repoId, IEnumerable<string> files, string? cacheDirectory = null, IProgress<DownloadProgress>? progress = null,
        Uri? endpoint = null, string revision = "main", HttpClient? http = null, CancellationToken cancellationToken = default)
    {
        if (repoId.Split('/') is not ({ Length: 1 } or { Length: 2 }) || repoId.Contains("..", StringComparison.Ordinal) || repoId.Contains('\\'))
            throw new ArgumentException($"'{repoId}' is neither an existing checkpoint folder nor a hub repository id like 'gpt2' or 'openai-community/gpt2'.", nameof(repoId));
        var folder = Path.Combine(cacheDirectory ?? DefaultCacheDirectory, repoId.Replace("/", "--", StringComparison.Ordinal), revision);
        Directory.CreateDirectory(folder);
        var root = endpoint ?? DefaultEndpoint;
        bool ownClient = http is null;
        http ??= new HttpClient { Timeout = Timeout.InfiniteTimeSpan };
        try
        {
            foreach (var file in files)
            {
                var target = Path.Combine(folder, file);
                if (File.Exists(target)) continue; // complete: only finished, verified downloads are renamed to this name
                var url = new Uri(root, $"{repoId}/resolve/{Uri.EscapeDataString(revision)}/{file}");
                DownloadFile(http, url, target, expectedSha256: null, progress, cancellationToken: cancellationToken);
            }
        }
        finally
        {
            if (ownClient) http.Dispose();
        }
        return folder;
    }

    /// <summary>
    /// Downloads <paramref name="url"/> to <paramref name="target"/> through <c>target.incomplete</c>, resuming a partial
    /// file with a Range request, retrying up to <paramref name="maxAttempts"/> times on a broken connection, then
    /// checking size and SHA-256 before the rename.
    /// </summary>
    /// <param name="http">The client.</param>
    /// <param name="url">The file's URL.</param>
    /// <param name="target">Where the finished file goes.</param>
    /// <param name="expectedSha256">Hex SHA-256 to check; if null, the server's hub ETag is used when it is a SHA-256.</param>
    /// <param name="progress">Receives progress.</param>
    /// <param name="maxAttempts">Attempts before giving up on a connection that keeps breaking.</param>
    /// <param name="cancellationToken">Cancels the download (the partial file is kept for a later resume).</param>
    /// <exception cref="HttpRequestException">The server refused the file or the connection kept failing.</exception>
    /// <exception cref="InvalidDataException">The finished file has the wrong size or SHA-256 (it is deleted).</exception>
    public static void DownloadFile(HttpClient http, Uri url, string target, string? expectedSha256 = null, IProgress<DownloadProgress>? progress = null,
        int maxAttempts = 5, CancellationToken cancellationToken = default)
    {
        var partial = target + ".incomplete";
        var name = Path.GetFileName(target);
        Exception? last = null;
        for (int attempt = 1; attempt <= maxAttempts; attempt++)
        {
            try
            {
                var (total, sha) = DownloadAttempt(http, url, partial, name, progress, cancellationToken);
                long size = new FileInfo(partial).Length;
                if (total is long t && size != t)
                    throw new IOException($"Download of {url} ended at {size} of {t} bytes.");
                var want = expectedSha256 ?? sha;
                if (want is not null)
                {
                    var got = Sha256(partial);
                    if (!got.Equals(want, StringComparison.OrdinalIgnoreCase))
                    {
                        File.Delete(partial);
                        throw new InvalidDataException($"Checksum mismatch for {url}: SHA-256 {got}, expected {want}. The corrupt download was deleted; try again.");
                    }
                }
                File.Move(partial, target, overwrite: true);
                return;
            }
            catch (Exception e) when (e is IOException or HttpIOException or TaskCanceledException && !cancellationToken.IsCancellationRequested)
            {
                last = e; // a broken connection: the bytes already on disk are kept and the next attempt resumes after them
            }
        }
        throw new HttpRequestException($"Downloading {url} failed after {maxAttempts} attempts ({(File.Exists(partial) ? new FileInfo(partial).Length : 0)} bytes kept in '{partial}' for a later resume): {last?.Message}", last);
    }

    static (long? Total, string? Sha256) DownloadAttempt(HttpClient http, Uri url, string partial, string name, IProgress<DownloadProgress>? progress, CancellationToken ct)
    {
        long have = File.Exists(partial) ? new FileInfo(partial).Length : 0;
        using var request = new HttpRequestMessage(HttpMethod.Get, url);
        if (have > 0) request.Headers.Range = new RangeHeaderValue(have, null);
        using var response = http.Send(request, HttpCompletionOption.ResponseHeadersRead, ct);
        if (response.StatusCode == HttpStatusCode.RequestedRangeNotSatisfiable && have > 0)
        {
            File.Delete(partial); // the partial file is longer than the file on the server: start over
            throw new IOException($"The server refused to resume {url} at byte {have}; restarting.");
        }
        if (!response.IsSuccessStatusCode)
            throw new HttpRequestException($"GET {url} returned {(int)response.StatusCode} {response.ReasonPhrase}." +
                (response.StatusCode is HttpStatusCode.NotFound or HttpStatusCode.Unauthorized ? " Check the repository name and file." : ""), null, response.StatusCode);

        bool resumed = response.StatusCode == HttpStatusCode.PartialContent;
        if (!resumed) have = 0; // the server sent the whole file
        long? total = response.Content.Headers.ContentRange?.Length
            ?? (response.Content.Headers.ContentLength is long len ? len + have : (long?)null)
            ?? (response.Headers.TryGetValues("X-Linked-Size", out var ls) && long.TryParse(ls.First(), out var l) ? l : (long?)null);
        string? sha = HubSha256(response);

        using (var output = new FileStream(partial, resumed ? FileMode.Append : FileMode.Create, FileAccess.Write))
        using (var input = response.Content.ReadAsStream(ct))
        {
            var buffer = new byte[1 << 16];
            long received = have, lastReport = -1;
            progress?.Report(new DownloadProgress(name, received, total));
            int n;
            while ((n = input.Read(buffer, 0, buffer.Length)) > 0)
            {
                ct.ThrowIfCancellationRequested();
                output.Write(buffer, 0, n);
                received += n;
                if (received - lastReport >= 1 << 20) { progress?.Report(new DownloadProgress(name, received, total)); lastReport = received; }
            }
            progress?.Report(new DownloadProgress(name, received, total));
        }
        return (total, sha);
    }

    /// <summary>The hub's SHA-256 of a file: <c>X-Linked-Etag</c> (large files) or the <c>ETag</c>, if it is 64 hex digits.</summary>
    static string? HubSha256(HttpResponseMessage response)
    {
        var candidates = new List<string>();
        if (response.Headers.TryGetValues("X-Linked-Etag", out var linked)) candidates.AddRange(linked);
        if (response.Headers.ETag is { } etag) candidates.Add(etag.Tag);
        foreach (var c in candidates)
        {
            var v = c.Trim().TrimStart('W', '/').Trim('"');
            if (v.Length == 64 && v.All(Uri.IsHexDigit)) return v.ToLowerInvariant();
        }
        return null;
    }

    /// <summary>The hex SHA-256 of a file.</summary>
    public static string Sha256(string path)
    {
        using var fs = File.OpenRead(path);
        return Convert.ToHexString(SHA256.HashData(fs)).ToLowerInvariant();
    }
}
