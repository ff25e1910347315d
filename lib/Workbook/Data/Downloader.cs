using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;

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
/// file again, which is handled too). The checksum (<c>"sha256:HEX"</c> or <c>"md5:HEX"</c>) is verified before the
/// file is renamed into place, so a corrupt or wrong file never appears at the destination.
/// Mirrors are tried in order. Used by <see cref="Datasets"/> for Fashion-MNIST and MNIST; the repository's
/// <c>data/</c> folder ships those files, so offline use never gets here.
/// </summary>
public static class Downloader
{
    /// <summary>The HTTP client used (replaceable, e.g. to set a proxy).</summary>
    public static HttpClient Http { get; set; } = new() { Timeout = TimeSpan.FromMinutes(10) };

    /// <summary>Downloads (or reuses) a file; see the class remarks. Blocks until done.</summary>
    /// <param name="urls">The file's address and any mirrors, tried in order.</param>
    /// <param name="destination">Where the verified file goes.</param>
    /// <param name="checksum"><c>"sha256:HEX"</c> or <c>"md5:HEX"</c>; null skips verification (not recommended).</param>
    /// <param name="progress">Called as bytes arrive (about every 1%, and at the end).</param>
    /// <param name="attempts">Attempts per mirror; each retry resumes where the last one stopped.</param>
    /// <param name="cancellationToken">Cancels the download; the partial file stays for a later resume.</param>
    /// <returns>The destination path.</returns>
    /// <exception cref="IOException">Every mirror failed; the message lists each address and its error.</exception>
    /// <exception cref="InvalidDataException">The downloaded bytes do not match the checksum (the partial file is deleted).</exception>
    public static string Fetch(IReadOnlyList<string> urls, string destination, string? checksum, Action<DownloadProgress>? progress = null,
        int attempts = 3, CancellationToken cancellationToken = default) =>
        FetchAsync(urls, destination, checksum, progress, attempts, cancellationToken).GetAwaiter().GetResult();

    /// <inheritdoc cref="Fetch"/>
    public static async Task<string> FetchAsync(IReadOnlyList<string> urls, string destination, string? checksum,
        Action<DownloadProgress>? progress = null, int attempts = 3, CancellationToken cancellationToken = default)
    {
        if (urls.Count == 0) throw new ArgumentException("At least one URL is needed.", nameof(urls));
        if (attempts < 1) throw new ArgumentOutOfRangeException(nameof(attempts), attempts, "At least one attempt is needed.");
        if (checksum is not null) ParseChecksum(checksum); // fail early on a malformed checksum
        destination = Path.GetFullPath(destination);
        if (File.Exists(destination))
        {
            if (checksum is null || Verify(destination, checksum)) return destination;
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
                    if (checksum is not null && !Verify(partial, checksum, out var actual))
                    {
                        File.Delete(partial);
                        throw new InvalidDataException($"Downloaded '{url}' but its checksum is {actual}, expected {checksum}; " +
                            "the file was deleted. The mirror may serve a different version.");
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

    static async Task DownloadToPartial(string url, string partial, Action<DownloadProgress>? progress, CancellationToken ct)
    {
        long existing = File.Exists(partial) ? new FileInfo(partial).Length : 0;
        using var request = new HttpRequestMessage(HttpMethod.Get, url);
        if (existing > 0) request.Headers.Range = new RangeHeaderValue(existing, null);
        using var response = await Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct).ConfigureAwait(false);
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
        progress?.Invoke(new DownloadProgress(url, bytes, total, start));
        int n;
        while ((n = await body.ReadAsync(buffer, ct).ConfigureAwait(false)) > 0)
        {
            await file.WriteAsync(buffer.AsMemory(0, n), ct).ConfigureAwait(false);
            bytes += n;
            if (bytes - lastReport >= step) { progress?.Invoke(new DownloadProgress(url, bytes, total, start)); lastReport = bytes; }
        }
        await file.FlushAsync(ct).ConfigureAwait(false);
        if (total is { } t && bytes < t) throw new IOException($"the connection closed after {bytes} of {t} bytes");
        progress?.Invoke(new DownloadProgress(url, bytes, total ?? bytes, start));
    }

    /// <summary>True when the file's hash matches <paramref name="checksum"/> (<c>"sha256:HEX"</c> or <c>"md5:HEX"</c>).</summary>
    public static bool Verify(string path, string checksum) => Verify(path, checksum, out _);

    static bool Verify(string path, string checksum, out string actual)
    {
        var (algorithm, expected) = ParseChecksum(checksum);
        actual = algorithm + ":" + Hash(path, algorithm);
        return string.Equals(actual, algorithm + ":" + expected, StringComparison.OrdinalIgnoreCase);
    }

    /// <summary>The lowercase hex hash of a file; <paramref name="algorithm"/> is "sha256" or "md5".</summary>
    public static string Hash(string path, string algorithm = "sha256")
    {
        using var fs = File.OpenRead(path);
        byte[] hash = algorithm.ToLowerInvariant() switch
        {
            "sha256" => SHA256.HashData(fs),
            "md5" => MD5.HashData(fs),
            _ => throw new ArgumentException($"Unknown hash algorithm '{algorithm}'; use sha256 or md5.", nameof(algorithm)),
        };
        return Convert.ToHexString(hash).ToLowerInvariant();
    }

    static (string Algorithm, string Hex) ParseChecksum(string checksum)
    {
        var parts = checksum.Split(':', 2);
        if (parts.Length != 2 || parts[0].ToLowerInvariant() is not ("sha256" or "md5") || parts[1].Length != (parts[0].ToLowerInvariant() == "md5" ? 32 : 64))
            throw new ArgumentException($"Checksum '{checksum}' must be 'sha256:<64 hex digits>' or 'md5:<32 hex digits>'.", nameof(checksum));
        return (parts[0].ToLowerInvariant(), parts[1].ToLowerInvariant());
    }
}
