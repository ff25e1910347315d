using System.Globalization;
using System.Net;
using System.Text.Json;
using System.Text.RegularExpressions;
using Workbook.IO;
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
/// after an interruption (automatic retries, or a later call), and renamed into place only when everything that can be
/// verified checks out: the size (<c>X-Linked-Size</c>, else <c>Content-Length</c>), the hash (the SHA-256 of LFS
/// files; the git blob SHA-1 that is the <c>ETag</c> of small files such as <c>config.json</c>), and the content (a
/// <c>.json</c> file must parse, a <c>.safetensors</c> header must be valid and match the file's length). So a broken
/// download never looks finished, and a cached file that fails the content check (e.g. from an older version) is
/// fetched again. A stalled server fails the attempt after <see cref="Data.Downloader.ReadTimeout"/>.
/// </para>
/// <para>
/// Repository ids follow the hub's grammar (<c>name</c> or <c>owner/name</c>: letters, digits, <c>_ . -</c>, no
/// <c>--</c> or <c>..</c>, at most 96 characters each); revisions are branch or tag names (slash-separated segments of
/// letters, digits and <c>_ . + -</c>, none starting with a dot) or commit hashes. Both become folders of the cache,
/// and the resulting path is checked to stay inside it.
/// </para>
/// </summary>
public static partial class GptHub
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
    /// <exception cref="IOException">The hub could not be reached, stalled, or the connection kept breaking.</exception>
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
    /// <exception cref="ArgumentException">The repository id, revision or a file name does not follow the hub's grammar, or would leave the cache folder.</exception>
    public static string Download(string repoId, IEnumerable<string> files, string? cacheDirectory = null, Action<Data.DownloadProgress>? progress = null,
        Uri? endpoint = null, string revision = "main", CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(repoId);
        ArgumentNullException.ThrowIfNull(revision);
        if (!RepoId().IsMatch(repoId) || repoId.Contains("--", StringComparison.Ordinal) || repoId.Contains("..", StringComparison.Ordinal))
            throw new ArgumentException($"'{repoId}' is neither an existing checkpoint folder nor a hub repository id like 'gpt2' or 'openai-community/gpt2' " +
                "(name or owner/name: letters, digits, '_', '.', '-', no '--' or '..', at most 96 characters each).", nameof(repoId));
        if (revision.Length > 255 || !Revision().IsMatch(revision) || revision.Contains("..", StringComparison.Ordinal) || revision.EndsWith(".lock", StringComparison.Ordinal))
            throw new ArgumentException($"Revision '{revision}' is not a branch, tag or commit name (slash-separated segments of letters, digits, " +
                "'_', '.', '+', '-', none starting with '.', no '..'), e.g. 'main', 'v1.0' or a commit hash.", nameof(revision));
        var root = Path.GetFullPath(cacheDirectory ?? DefaultCacheDirectory);
        var folder = Path.GetFullPath(Path.Combine(root, repoId.Replace("/", "--", StringComparison.Ordinal), revision));
        // The grammar already rules out "..": this is the last line of defence, on the final paths.
        var compare = OperatingSystem.IsWindows() ? StringComparison.OrdinalIgnoreCase : StringComparison.Ordinal;
        static string Inside(string parent) => parent.TrimEnd(Path.DirectorySeparatorChar) + Path.DirectorySeparatorChar;
        if (!folder.StartsWith(Inside(root), compare))
            throw new ArgumentException($"Repository '{repoId}' at revision '{revision}' would be stored at '{folder}', outside the cache folder '{root}'.", nameof(revision));
        var targets = new List<(string File, string Target)>();
        foreach (var file in files)
        {
            var target = Path.GetFullPath(Path.Combine(folder, file));
            if (file.Length == 0 || Path.IsPathRooted(file) || file.Contains('\\') || file.Split('/').Any(p => p is "" or "." or "..") || !target.StartsWith(Inside(folder), compare))
                throw new ArgumentException($"File name '{file}' is not a relative path inside the repository (it would be stored at '{target}', outside '{folder}').", nameof(files));
            targets.Add((file, target));
        }
        Directory.CreateDirectory(folder);
        var hub = endpoint ?? DefaultEndpoint;
        using var http = new HttpClient(new HttpClientHandler { AllowAutoRedirect = false }) { Timeout = Data.Downloader.ReadTimeout };
        foreach (var (file, target) in targets)
        {
            if (File.Exists(target))
            {
                // Complete: only finished, verified downloads get this name. Re-check the content cheaply, so a file
                // cached before these checks existed (or damaged since) is fetched again rather than failing for ever.
                if (ContentProblem(target, file) is null) continue;
                File.Delete(target);
            }
            var url = new Uri(hub, $"{repoId}/resolve/{Uri.EscapeDataString(revision)}/{file}");
            var meta = Metadata(http, url, cancellationToken);
            var checksum = meta.Sha256 is not null ? "sha256:" + meta.Sha256 : meta.GitSha1 is not null ? "sha1-git:" + meta.GitSha1 : null;
            Data.Downloader.Fetch([meta.DownloadUrl.ToString()], target, checksum, progress, attempts: 5, cancellationToken: cancellationToken,
                expectedLength: meta.Size, validate: downloaded => ContentProblem(downloaded, file));
        }
        return folder;
    }

    [GeneratedRegex(@"^(?:[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,94}[A-Za-z0-9_])?/)?[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,94}[A-Za-z0-9_])?$")]
    private static partial Regex RepoId();

    [GeneratedRegex(@"^[A-Za-z0-9_+-][A-Za-z0-9_.+-]*(?:/[A-Za-z0-9_+-][A-Za-z0-9_.+-]*)*$")]
    private static partial Regex Revision();

    /// <summary>
    /// What is wrong with the content of <paramref name="path"/> (the download of hub file <paramref name="file"/>,
    /// whose name gives its kind), or null if nothing, or if the kind has no check.
    /// </summary>
    static string? ContentProblem(string path, string file)
    {
        try
        {
            if (file.EndsWith(".json", StringComparison.OrdinalIgnoreCase))
            {
                using var doc = JsonDocument.Parse(File.ReadAllBytes(path));
                return null;
            }
            if (file.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase)) SafeTensors.ReadHeader(path);
            return null;
        }
        catch (JsonException e) { return $"'{file}' is not valid JSON ({e.Message})"; }
        catch (InvalidDataException e) { return e.Message; }
    }

    /// <summary>Where to download a file from, and what the hub says about it.</summary>
    /// <param name="DownloadUrl">The file's address (the CDN for LFS files).</param>
    /// <param name="Sha256">The SHA-256 of an LFS file (<c>X-Linked-Etag</c>, or a 64-hex <c>ETag</c>).</param>
    /// <param name="GitSha1">The git blob SHA-1 of a small file (a 40-hex <c>ETag</c>).</param>
    /// <param name="Size">The file's size (<c>X-Linked-Size</c>, else <c>Content-Length</c>).</param>
    sealed record HubFile(Uri DownloadUrl, string? Sha256, string? GitSha1, long? Size);

    /// <summary>
    /// HEAD without following the CDN redirect, as <c>huggingface_hub</c> does: returns where to download the file from
    /// and what the hub says about it. Relative redirects (a renamed repository) are followed.
    /// </summary>
    static HubFile Metadata(HttpClient http, Uri url, CancellationToken ct)
    {
        for (int hop = 0; hop < 5; hop++)
        {
            using var request = new HttpRequestMessage(HttpMethod.Head, url);
            HttpResponseMessage sent;
            try { sent = http.Send(request, ct); }
            catch (TaskCanceledException) when (!ct.IsCancellationRequested) // HttpClient's timeout
            {
                throw new IOException($"HEAD {url} got no response within {http.Timeout.TotalSeconds:0.###} s (Downloader.ReadTimeout).");
            }
            using var response = sent;
            int code = (int)response.StatusCode;
            if (code is >= 300 and < 400 && response.Headers.Location is { } location)
            {
                if (!location.IsAbsoluteUri) { url = new Uri(url, location); continue; } // renamed repository
                return Describe(location, response, ownBody: false);                     // the CDN: metadata is on this response
            }
            if (!response.IsSuccessStatusCode)
                throw new HttpRequestException($"HEAD {url} returned {code} {response.ReasonPhrase}." +
                    (response.StatusCode is HttpStatusCode.NotFound or HttpStatusCode.Unauthorized ? " Check the repository name, revision and file." : ""), null, response.StatusCode);
            return Describe(url, response, ownBody: true);
        }
        throw new HttpRequestException($"Too many redirects resolving {url}.");
    }

    /// <param name="downloadUrl">Where the file is.</param>
    /// <param name="response">The HEAD response.</param>
    /// <param name="ownBody">The response is the file's own (200), so its Content-Length is the file's size; a redirect's is not.</param>
    static HubFile Describe(Uri downloadUrl, HttpResponseMessage response, bool ownBody)
    {
        var candidates = new List<string>();
        if (response.Headers.TryGetValues("X-Linked-Etag", out var linked)) candidates.AddRange(linked);
        if (response.Headers.ETag is { } etag) candidates.Add(etag.Tag);
        string? sha256 = null, sha1 = null;
        foreach (var c in candidates)
        {
            var v = c.Trim();
            if (v.StartsWith("W/", StringComparison.Ordinal)) v = v[2..];
            v = v.Trim('"');
            if (!v.All(Uri.IsHexDigit)) continue;
            if (v.Length == 64) sha256 ??= v.ToLowerInvariant();
            else if (v.Length == 40) sha1 ??= v.ToLowerInvariant();
        }
        long? size = response.Headers.TryGetValues("X-Linked-Size", out var sizes) && long.TryParse(sizes.FirstOrDefault(), NumberStyles.None, CultureInfo.InvariantCulture, out var linkedSize)
            ? linkedSize : ownBody ? response.Content.Headers.ContentLength : null;
        // A SHA-256 (LFS) identifies the content; the git SHA-1 then belongs to the LFS pointer, not to the file.
        return new HubFile(downloadUrl, sha256, sha256 is null ? sha1 : null, size);
    }
}
