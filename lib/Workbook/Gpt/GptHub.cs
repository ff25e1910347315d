using System.Net;
using static TorchSharp.torch;

namespace Workbook.Gpt;

/// <summary>
/// <c>FromPretrained</c>: loads a GPT-2 by Hugging Face hub name (<c>"gpt2"</c>, <c>"gpt2-medium"</c>,
/// <c>"openai-community/gpt2-large"</c>, ...) or from a local checkpoint folder. Hub files (<c>config.json</c>,
/// <c>model.safetensors</c>) are downloaded once into a cache folder and reused offline afterwards.
/// <para>
/// Like <c>huggingface_hub</c>, a HEAD request that does not follow the CDN redirect reads each file's metadata: for
/// large (LFS) files the hub sends <c>X-Linked-Etag</c>, the file's SHA-256, and <c>X-Linked-Size</c>; renamed repositories
/// (<c>gpt2</c> → <c>openai-community/gpt2</c>) answer with a relative redirect, which is followed. The file itself is
/// then fetched with <see cref="Data.Downloader"/>: into <c>file.partial</c>, resumed with an HTTP <c>Range</c> request
/// after an interruption (automatic retries, or a later call), and renamed into place only when the size and SHA-256
/// check out, so a broken download never looks finished.
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
    /// <param name="progress">Receives download progress (<see cref="Data.DownloadProgress"/>).</param>
    /// <param name="endpoint">The hub; default <see cref="DefaultEndpoint"/>.</param>
    /// <param name="revision">Branch, tag or commit; default main.</param>
    /// <param name="device">Where to put the model.</param>
    /// <param name="cancellationToken">Cancels the download (the partial file is kept for a later resume).</param>
    /// <exception cref="HttpRequestException">The hub refused a file (e.g. 404); the message names the URL.</exception>
    /// <exception cref="IOException">The hub could not be reached, or the connection kept breaking.</exception>
    /// <exception cref="InvalidDataException">A downloaded file has the wrong checksum, or the checkpoint is malformed.</exception>
    public static GptModel FromPretrained(string nameOrPath, string? cacheDirectory = null, Action<Data.DownloadProgress>? progress = null,
        Uri? endpoint = null, string revision = "main", Device? device = null, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(nameOrPath);
        if (Directory.Exists(nameOrPath)) return GptCheckpoint.Load(nameOrPath, device);
        var folder = Download(nameOrPath, [GptCheckpoint.ConfigFile, GptCheckpoint.WeightsFile], cacheDirectory, progress, endpoint, revision, cancellationToken);
        return GptCheckpoint.Load(folder, device);
    }

    /// <summary>
    /// Downloads <paramref name="files"/> of hub repository <paramref name="repoId"/> into
    /// <c>cache/owner--name/revision/</c>, skipping files already complete, and returns that folder.
    /// </summary>
    /// <exception cref="ArgumentException">The repository id is not of the form <c>name</c> or <c>owner/name</c>.</exception>
    public static string Download(string repoId, IEnumerable<string> files, string? cacheDirectory = null, Action<Data.DownloadProgress>? progress = null,
        Uri? endpoint = null, string revision = "main", CancellationToken cancellationToken = default)
    {
        if (repoId.Split('/') is not ({ Length: 1 } or { Length: 2 }) || repoId.Contains("..", StringComparison.Ordinal) || repoId.Contains('\\'))
            throw new ArgumentException($"'{repoId}' is neither an existing checkpoint folder nor a hub repository id like 'gpt2' or 'openai-community/gpt2'.", nameof(repoId));
        var folder = Path.Combine(cacheDirectory ?? DefaultCacheDirectory, repoId.Replace("/", "--", StringComparison.Ordinal), revision);
        Directory.CreateDirectory(folder);
        var root = endpoint ?? DefaultEndpoint;
        using var http = new HttpClient(new HttpClientHandler { AllowAutoRedirect = false }) { Timeout = TimeSpan.FromMinutes(1) };
        foreach (var file in files)
        {
            var target = Path.Combine(folder, file);
            if (File.Exists(target)) continue; // complete: only finished, verified downloads get this name
            var url = new Uri(root, $"{repoId}/resolve/{Uri.EscapeDataString(revision)}/{file}");
            var (downloadUrl, sha256) = Metadata(http, url, cancellationToken);
            Data.Downloader.Fetch([downloadUrl.ToString()], target, sha256 is null ? null : "sha256:" + sha256, progress, attempts: 5, cancellationToken: cancellationToken);
        }
        return folder;
    }

    /// <summary>
    /// HEAD without following the CDN redirect, as <c>huggingface_hub</c> does: returns where to download the file from
    /// and its SHA-256 when the hub gives it (<c>X-Linked-Etag</c> for LFS files, or a 64-hex <c>ETag</c>). Relative
    /// redirects (a renamed repository) are followed.
    /// </summary>
    static (Uri DownloadUrl, string? Sha256) Metadata(HttpClient http, Uri url, CancellationToken ct)
    {
        for (int hop = 0; hop < 5; hop++)
        {
            using var request = new HttpRequestMessage(HttpMethod.Head, url);
            using var response = http.Send(request, ct);
            int code = (int)response.StatusCode;
            if (code is >= 300 and < 400 && response.Headers.Location is { } location)
            {
                if (!location.IsAbsoluteUri) { url = new Uri(url, location); continue; } // renamed repository
                return (location, HubSha256(response));                                  // the CDN: metadata is on this response
            }
            if (!response.IsSuccessStatusCode)
                throw new HttpRequestException($"HEAD {url} returned {code} {response.ReasonPhrase}." +
                    (response.StatusCode is HttpStatusCode.NotFound or HttpStatusCode.Unauthorized ? " Check the repository name, revision and file." : ""), null, response.StatusCode);
            return (url, HubSha256(response));
        }
        throw new HttpRequestException($"Too many redirects resolving {url}.");
    }

    /// <summary>The hub's SHA-256 of a file: <c>X-Linked-Etag</c> (large files) or the <c>ETag</c>, if it is 64 hex digits.</summary>
    static string? HubSha256(HttpResponseMessage response)
    {
        var candidates = new List<string>();
        if (response.Headers.TryGetValues("X-Linked-Etag", out var linked)) candidates.AddRange(linked);
        if (response.Headers.ETag is { } etag) candidates.Add(etag.Tag);
        foreach (var c in candidates)
        {
            var v = c.Trim();
            if (v.StartsWith("W/", StringComparison.Ordinal)) v = v[2..];
            v = v.Trim('"');
            if (v.Length == 64 && v.All(Uri.IsHexDigit)) return v.ToLowerInvariant();
        }
        return null;
    }
}
