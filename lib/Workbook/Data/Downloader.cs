using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;

namespace Workbook.Data;

/// <summary>Progress of a download: bytes on disk so far (including a resumed part) and the total when known.</summary>
/// <param name="Url">The address being fetched.</param>
/// <param name="Bytes">Bytes of the file on disk so far.</param>
/// <param name="TotalBytes">The file's full size, when the server said.</param>
/// <param name="ResumedFrom">The byte offset this request resumed from (0 for a fresh download).</param>
public sealed record DownloadProgress(string Url, long Bytes, long? TotalBytes, long ResumedFrom)
{
    /// <summary>Fraction done in [0, 1], or null when the size is unknown.</summary>
    public double? Fraction => TotalBytes is > 0 ? (double)Bytes / TotalBytes.Value : null;

    /// <inheritdoc/>
    public override string ToString() => TotalBytes is { } t
        ? $"{Path.GetFileName(new Uri(Url).LocalPath)}: {Bytes / 1048576.0:F1} / {t / 1048576.0:F1} MiB ({100.0 * Bytes / Math.Max(1, t):F0}%)"
        : $"{Path.GetFileName(new Uri(Url).LocalPath)}: {Bytes / 1048576.0:F1} MiB";
}

/// <summary>
/// Downloads a file once, verifies it and keeps it: the cache is the destination path itself. A file already there
/// with the right checksum is used as is (no network). An interrupted download leaves <c>destination.partial</c>,
/// and the next attempt resumes it with an HTTP <c>Range</c> request (a server that ignores Range sends the whole
/// file again, which is handled too). The checksum (<c>"sha256:HEX"</c>, <c>"md5:HEX"</c> or <c>"sha1-git:HEX"</c>,
/// git's blob hash), an expected length and a caller's content check are verified before the file is renamed into
/// place, so a corrupt, truncated or wrong file never appears at the destination.
/// A server that stops sending is not waited for forever: each read (the response headers, then every chunk of the
/// body) must arrive within <see cref="ReadTimeout"/>, and the body must average at least
/// <see cref="MinimumBytesPerSecond"/> over every window of that length; otherwise the attempt fails with an
/// <see cref="IOException"/> naming the URL and the bytes received, and the next attempt resumes.
/// Mirrors are tried in order. Used by <see cref="Datasets"/> for Fashion-MNIST and MNIST; the repository's
/// <c>data/</c> folder ships those files, so offline use never gets here.
/// </summary>
public static class Downloader
{
    /// <summary>The HTTP client used (replaceable, e.g. to set a proxy).</summary>
    public static HttpClient Http { get; set; } = new() { Timeout = TimeSpan.FromMinutes(10) };

    /// <summary>
    /// The longest wait for the response headers and for each next chunk of the body (default 30 s); also the length
    /// of the window over which <see cref="MinimumBytesPerSecond"/> is measured.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">Not positive.</exception>
    public static TimeSpan ReadTimeout
    {
        get => _readTimeout;
        set => _readTimeout = value > TimeSpan.Zero ? value : throw new ArgumentOutOfRangeException(nameof(value), value, "ReadTimeout must be positive.");
    }
    static TimeSpan _readTimeout = TimeSpan.FromSeconds(30);

    /// <summary>The slowest transfer accepted, averaged over each <see cref="ReadTimeout"/> window (default 1 KiB/s; 0 turns the check off).</summary>
    /// <exception cref="ArgumentOutOfRangeException">Negative.</exception>
    public static long MinimumBytesPerSecond
    {
        get => _minimumBytesPerSecond;
        set => _minimumBytesPerSecond = value >= 0 ? value : throw new ArgumentOutOfRangeException(nameof(value), value, "MinimumBytesPerSecond must be ≥ 0.");
    }
    static long _minimumBytesPerSecond = 1024;

    /// <summary>Downloads (or reuses) a file; see the class remarks. Blocks until done.</summary>
    /// <param name="urls">The file's address and any mirrors, tried in order.</param>
    /// <param name="destination">Where the verified file goes.</param>
    /// <param name="checksum"><c>"sha256:HEX"</c>, <c>"md5:HEX"</c> or <c>"sha1-git:HEX"</c>; null skips verification (not recommended).</param>
    /// <param name="progress">Called as bytes arrive (about every 1%, and at the end).</param>
    /// <param name="attempts">Attempts per mirror; each retry resumes where the last one stopped.</param>
    /// <param name="cancellationToken">Cancels the download; the partial file stays for a later resume.</param>
    /// <param name="expectedLength">The file's size in bytes, when known from elsewhere (e.g. a HEAD request): a shorter
    /// download counts as interrupted (resumed by the next attempt), a longer one as wrong (deleted).</param>
    /// <param name="validate">A check of the downloaded file's content (e.g. that a JSON file parses), run before the
    /// rename and on a file already at the destination: it returns null if the file is good, else what is wrong.</param>
    /// <returns>The destination path.</returns>
    /// <exception cref="IOException">Every mirror failed (unreachable, broken, stalled or too slow); the message lists each address and its error.</exception>
    /// <exception cref="InvalidDataException">The downloaded bytes do not match the checksum, the length or the content check (the partial file is deleted).</exception>
    public static string Fetch(IReadOnlyList<string> urls, string destination, string? checksum, Action<DownloadProgress>? progress = null,
        int attempts = 3, CancellationToken cancellationToken = default, long? expectedLength = null, Func<string, string?>? validate = null) =>
        FetchAsync(urls, destination, checksum, progress, attempts, cancellationToken, expectedLength, validate).GetAwaiter().GetResult();

    /// <inheritdoc cref="Fetch"/>
    public static async Task<string> FetchAsync(IReadOnlyList<string> urls, string destination, string? checksum,
        Action<DownloadProgress>? progress = null, int attempts = 3, CancellationToken cancellationToken = default,
        long? expectedLength = null, Func<string, string?>? validate = null)
    {
        if (urls.Count == 0) throw new ArgumentException("At least one URL is needed.", nameof(urls));
        if (attempts < 1) throw new ArgumentOutOfRangeException(nameof(attempts), attempts, "At least one attempt is needed.");
        if (expectedLength < 0) throw new ArgumentOutOfRangeException(nameof(expectedLength), expectedLength, "The expected length cannot be negative.");
        if (checksum is not null) ParseChecksum(checksum); // fail early on a malformed checksum
        destination = Path.GetFullPath(destination);
        if (File.Exists(destination))
        {
            if (Problem(destination, checksum, expectedLength, validate) is null) return destination;
            File.Delete(destination); // a stale or damaged copy: fetch it again
        }
        Directory.CreateDirectory(Path.GetDirectoryName(destination)!);
        var partial = destination + ".partial";
        var errors = new List<string>();
        bool checksumFailed = false;
        foreach (var url in urls)
        {
            for (int attempt = 1; attempt <= attempts; attempt++)
            {
                try
                {
                    await DownloadToPartial(url, partial, progress, cancellationToken).ConfigureAwait(false);
                    long got = new FileInfo(partial).Length;
                    if (expectedLength is { } want && got < want)
                        throw new IOException($"the download ended after {got} of {want} bytes");
                    if (Problem(partial, checksum, expectedLength, validate) is { } problem)
                    {
                        File.Delete(partial);
                        throw new InvalidDataException($"Downloaded '{url}' but {problem}; the file was deleted. The mirror may serve a different version.");
                    }
                    File.Move(partial, destination, overwrite: true);
                    return destination;
                }
                catch (InvalidDataException e)
                {
                    errors.Add($"{url}: {e.Message}");
                    checksumFailed = true;
                    break; // a wrong file will not get right by retrying this mirror
                }
                catch (Exception e) when (e is HttpRequestException or IOException or TaskCanceledException && !cancellationToken.IsCancellationRequested)
                {
                    // TaskCanceledException without our token's cancellation is HttpClient's timeout.
                    errors.Add($"{url} (attempt {attempt}): {e.Message}");
                }
            }
        }
        var message = $"Could not download '{Path.GetFileName(destination)}' to '{destination}':\n  " + string.Join("\n  ", errors) +
            "\nOffline? The repository's data/ folder ships the datasets the notebooks use; copy the file to the path above.";
        throw checksumFailed ? new InvalidDataException(message) : new IOException(message);
    }

    /// <summary>What is wrong with a complete file (null if nothing): its length, checksum or content.</summary>
    static string? Problem(string path, string? checksum, long? expectedLength, Func<string, string?>? validate)
    {
        long length = new FileInfo(path).Length;
        if (expectedLength is { } want && length != want) return $"it has {length} bytes, expected {want}";
        if (checksum is not null && !Verify(path, checksum, out var actual)) return $"its checksum is {actual}, expected {checksum}";
        return validate?.Invoke(path);
    }

    static async Task DownloadToPartial(string url, string partial, Action<DownloadProgress>? progress, CancellationToken ct)
    {
        long existing = File.Exists(partial) ? new FileInfo(partial).Length : 0;
        var timeout = ReadTimeout;
        long minimumRate = MinimumBytesPerSecond;
        // One timer for the whole attempt, re-armed before every read: it fires only when the server goes quiet.
        using var idle = CancellationTokenSource.CreateLinkedTokenSource(ct);
        using var request = new HttpRequestMessage(HttpMethod.Get, url);
        if (existing > 0) request.Headers.Range = new RangeHeaderValue(existing, null);
        idle.CancelAfter(timeout);
        HttpResponseMessage response;
        try { response = await Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, idle.Token).ConfigureAwait(false); }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            throw new IOException($"'{url}' sent no response within {Seconds(timeout)} (Downloader.ReadTimeout)");
        }
        using var _ = response;
        if (response.StatusCode == HttpStatusCode.RequestedRangeNotSatisfiable && existing > 0)
        {
            // The partial file may already hold everything (e.g. interrupted before the rename); the checksum decides.
            progress?.Invoke(new DownloadProgress(url, existing, existing, existing));
            return;
        }
        if (!response.IsSuccessStatusCode)
            throw new HttpRequestException($"HTTP {(int)response.StatusCode} {response.ReasonPhrase}", null, response.StatusCode);
        bool resumed = response.StatusCode == HttpStatusCode.PartialContent;
        if (resumed && response.Content.Headers.ContentRange?.From is { } from && from != existing)
            throw new IOException($"asked to resume at byte {existing} but the server sent a range starting at {from}");
        long start = resumed ? existing : 0; // a plain 200 means the server ignored Range: start over
        long? total = response.Content.Headers.ContentRange?.Length ?? (response.Content.Headers.ContentLength is { } len ? start + len : null);

        await using var body = await response.Content.ReadAsStreamAsync(ct).ConfigureAwait(false);
        await using var file = new FileStream(partial, resumed ? FileMode.Append : FileMode.Create, FileAccess.Write, FileShare.None, 1 << 16, useAsync: true);
        var buffer = new byte[1 << 16];
        long bytes = start, lastReport = -1, step = Math.Max(1 << 16, (total ?? 0) / 100);
        string Received() => total is { } t ? $"{bytes} of {t} bytes" : $"{bytes} bytes";
        progress?.Invoke(new DownloadProgress(url, bytes, total, start));
        var window = Stopwatch.StartNew();
        long windowStart = bytes;
        while (true)
        {
            idle.CancelAfter(timeout);
            int n;
            try { n = await body.ReadAsync(buffer, idle.Token).ConfigureAwait(false); }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested)
            {
                await file.FlushAsync(ct).ConfigureAwait(false); // keep what arrived: the next attempt resumes from it
                throw new IOException($"'{url}' stalled: no data for {Seconds(timeout)} (Downloader.ReadTimeout) after {Received()}");
            }
            if (n == 0) break;
            await file.WriteAsync(buffer.AsMemory(0, n), ct).ConfigureAwait(false);
            bytes += n;
            if (bytes - lastReport >= step) { progress?.Invoke(new DownloadProgress(url, bytes, total, start)); lastReport = bytes; }
            if (window.Elapsed >= timeout)
            {
                double rate = (bytes - windowStart) / window.Elapsed.TotalSeconds;
                if (rate < minimumRate)
                {
                    await file.FlushAsync(ct).ConfigureAwait(false);
                    throw new IOException($"'{url}' is too slow: {rate:F0} bytes/s over the last {Seconds(window.Elapsed)}, below Downloader.MinimumBytesPerSecond = {minimumRate}, after {Received()}");
                }
                window.Restart();
                windowStart = bytes;
            }
        }
        await file.FlushAsync(ct).ConfigureAwait(false);
        if (total is { } t && bytes < t) throw new IOException($"the connection closed after {bytes} of {t} bytes");
        progress?.Invoke(new DownloadProgress(url, bytes, total ?? bytes, start));
    }

    static string Seconds(TimeSpan t) => t.TotalSeconds.ToString("0.###", CultureInfo.InvariantCulture) + " s";

    /// <summary>True when the file's hash matches <paramref name="checksum"/> (<c>"sha256:HEX"</c>, <c>"md5:HEX"</c> or <c>"sha1-git:HEX"</c>).</summary>
    public static bool Verify(string path, string checksum) => Verify(path, checksum, out _);

    static bool Verify(string path, string checksum, out string actual)
    {
        var (algorithm, expected) = ParseChecksum(checksum);
        actual = algorithm + ":" + Hash(path, algorithm);
        return string.Equals(actual, algorithm + ":" + expected, StringComparison.OrdinalIgnoreCase);
    }

    /// <summary>
    /// The lowercase hex hash of a file; <paramref name="algorithm"/> is "sha256", "md5" or "sha1-git" (git's blob id,
    /// SHA-1 of <c>"blob LENGTH\0"</c> and the content: the ETag the Hugging Face hub gives files not stored in LFS).
    /// </summary>
    public static string Hash(string path, string algorithm = "sha256")
    {
        using var fs = File.OpenRead(path);
        byte[] hash;
        switch (algorithm.ToLowerInvariant())
        {
            case "sha256": hash = SHA256.HashData(fs); break;
            case "md5": hash = MD5.HashData(fs); break;
            case "sha1-git":
                using (var sha1 = IncrementalHash.CreateHash(HashAlgorithmName.SHA1))
                {
                    sha1.AppendData(Encoding.ASCII.GetBytes($"blob {fs.Length}\0"));
                    var buffer = new byte[1 << 16];
                    int n;
                    while ((n = fs.Read(buffer)) > 0) sha1.AppendData(buffer, 0, n);
                    hash = sha1.GetHashAndReset();
                }
                break;
            default: throw new ArgumentException($"Unknown hash algorithm '{algorithm}'; use sha256, md5 or sha1-git.", nameof(algorithm));
        }
        return Convert.ToHexString(hash).ToLowerInvariant();
    }

    static (string Algorithm, string Hex) ParseChecksum(string checksum)
    {
        var parts = checksum.Split(':', 2);
        var algorithm = parts[0].ToLowerInvariant();
        int digits = algorithm switch { "sha256" => 64, "md5" => 32, "sha1-git" => 40, _ => -1 };
        if (parts.Length != 2 || digits < 0 || parts[1].Length != digits || !parts[1].All(Uri.IsHexDigit))
            throw new ArgumentException($"Checksum '{checksum}' must be 'sha256:<64 hex digits>', 'md5:<32 hex digits>' or 'sha1-git:<40 hex digits>'.", nameof(checksum));
        return (algorithm, parts[1].ToLowerInvariant());
    }
}
