using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Markdig.Renderers.Html;
using Markdig.Syntax;

namespace Workbook.Runner.Site;

/// <summary>
/// The executed workbook as an offline book: a page per notebook with typeset math (KaTeX, at build time),
/// highlighted code (TextMate grammars, at build time) and every output as the kernel gave it; a table of contents
/// with chapters and their solutions, previous/next links, each page's profile, run time, date and versions, and
/// full-text search. Everything a page loads is a file of the site: no CDN, no network.
/// </summary>
public static partial class HtmlSite
{
    const string ManifestName = ".wb-site-manifest";

    /// <summary>Builds the site into <paramref name="siteDir"/> and reports what went wrong (bad formulas with notebook,
    /// cell and formula; broken links; missing images; outputs that would need the network).</summary>
    /// <param name="siteDir">The folder to write; files of an earlier build there are replaced, other files are left alone.</param>
    /// <param name="pages">The notebooks in book order; solutions pages are nested under their chapter.</param>
    /// <param name="info">Profile, date and versions, shown on every page.</param>
    public static SiteBuildResult Build(string siteDir, IReadOnlyList<SitePage> pages, SiteInfo info)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(siteDir);
        ArgumentNullException.ThrowIfNull(pages);
        ArgumentNullException.ThrowIfNull(info);
        if (pages.Count == 0) throw new ArgumentException("pages: expected at least one notebook page, got none.", nameof(pages));
        if (pages.Any(p => p is null)) throw new ArgumentException("pages: contains a null entry.", nameof(pages));
        siteDir = Path.GetFullPath(siteDir);
        var book = Book.Create(pages);
        var problems = new List<SiteProblem>();

        foreach (var e in book.Order) Load(e, problems);

        RemovePreviousBuild(siteDir);
        Directory.CreateDirectory(siteDir);
        var written = new List<string>();
        var math = new MathRenderer();
        var highlighter = new CodeHighlighter();
        var markdown = new MarkdownRenderer(math);
        var plotly = new PlotlyAssets();
        var outputs = new OutputRenderer(markdown, plotly);
        var media = new MediaStore(siteDir, written);
        var search = new List<SearchSection>();

        var rendered = new List<(BookEntry Entry, string Body, PageState State, List<Heading> Headings)>();
        foreach (var e in book.Order)
        {
            var pageProblems = new List<SiteProblem>();
            var state = new PageState(math);
            var (body, headings) = RenderNotebook(e, book, markdown, outputs, highlighter, media, state, search, pageProblems.Add);
            problems.AddRange(pageProblems);
            rendered.Add((e, body, state, headings));
        }

        WriteAssets(siteDir, highlighter, plotly, search, written);
        foreach (var (e, body, state, headings) in rendered)
        {
            string? plotlyFile = null;
            if (state.HasCharts)
            {
                var version = state.PlotlyVersion ?? plotly.Versions.FirstOrDefault();
                if (version is null)
                    problems.Add(new SiteProblem(SiteProblemKind.MissingPlotly, e.Notebook, null, "the page draws charts but no notebook of the site carried plotly.js (a chart output with a data-wb-plotly script)"));
                else plotlyFile = "assets/" + PlotlyAssets.FileName(version);
            }
            var html = PageLayout.Page(book, e, body, headings, info, plotlyFile);
            Write(siteDir, e.Html, html, written);
        }
        var index = Write(siteDir, "index.html", PageLayout.Index(book, info), written);
        File.WriteAllLines(Path.Combine(siteDir, ManifestName), written.Select(w => Path.GetRelativePath(siteDir, w).Replace('\\', '/')).Append(ManifestName));
        return new SiteBuildResult(siteDir, index, book.Order.Select(e => Path.Combine(siteDir, e.Html.Replace('/', Path.DirectorySeparatorChar))).ToList(), problems, math.Count);
    }

    static void Load(BookEntry e, List<SiteProblem> problems)
    {
        var path = e.Page.NotebookPath;
        if (string.IsNullOrWhiteSpace(path) || !File.Exists(path))
        {
            // A notebook whose run crashed may leave no executed copy: its page then shows the failure alone.
            if (e.Page.Ok) problems.Add(new SiteProblem(SiteProblemKind.UnreadableNotebook, e.Notebook, null, $"the executed notebook '{path}' does not exist"));
            return;
        }
        try { e.Loaded = NotebookFile.Load(path); }
        catch (Exception ex) when (ex is InvalidDataException or IOException or UnauthorizedAccessException)
        {
            problems.Add(new SiteProblem(SiteProblemKind.UnreadableNotebook, e.Notebook, null, ex.Message));
            return;
        }
        foreach (var cell in e.Loaded.Cells.Where(c => c.Type == "markdown"))
        {
            var m = TitleHeading().Match(cell.Source);
            if (!m.Success) continue;
            e.Title = Regex.Replace(m.Groups[1].Value, "[*_`]", "").Trim();
            break;
        }
    }

    static (string Body, List<Heading> Headings) RenderNotebook(BookEntry e, Book book, MarkdownRenderer markdown, OutputRenderer outputs,
        CodeHighlighter highlighter, MediaStore media, PageState state, List<SearchSection> search, Action<SiteProblem> report)
    {
        var sb = new StringBuilder();
        var current = new SearchSection(e.Html, "", e.Title);
        search.Add(current);
        MarkdownContext? ctx = null;
        ctx = new MarkdownContext
        {
            Notebook = e.Notebook,
            Report = report,
            LinkResolver = url => ResolveLink(url, e, book, media, ctx!),
            ImageResolver = url => ResolveImage(url, e, media, ctx!),
            Sections = (doc, renderer) =>
            {
                foreach (var block in doc)
                {
                    if (block is HeadingBlock h && h.GetAttributes().Id is { } id)
                    {
                        current = new SearchSection(e.Html, id, $"{e.Title} › {ctx!.Headings.LastOrDefault(x => x.Id == id)?.Text}");
                        search.Add(current);
                    }
                    else current.Text.Append(renderer.PlainText(block, ctx!)).Append(' ');
                }
            },
        };
        if (e.Loaded is null) return ("", ctx.Headings);
        var cells = e.Loaded.Cells;
        for (int i = 0; i < cells.Count; i++)
        {
            var cell = cells[i];
            ctx.Cell = i + 1;
            ctx.CurrentAttachments = cell.Attachments;
            if (cell.Type == "markdown")
            {
                sb.Append($"<section class=\"wb-cell wb-md\" id=\"cell-{i + 1}\">\n").Append(markdown.Render(cell.Source, ctx)).Append("</section>\n");
                continue;
            }
            if (cell.Type != "code") continue;
            if (string.IsNullOrWhiteSpace(cell.Source) && cell.Outputs.Count == 0) continue;
            var language = MagicLanguage(cell.Source) ?? cell.Kernel ?? e.Loaded.Language ?? "csharp";
            current.Code.Append(cell.Source).Append('\n');
            var prompt = cell.ExecutionCount is { } n ? $"[{n}]" : "[ ]";
            sb.Append($"<div class=\"wb-cell wb-code\" id=\"cell-{i + 1}\">\n<div class=\"wb-input\"><div class=\"wb-prompt\">{prompt}</div>")
              .Append(highlighter.Highlight(cell.Source, language)).Append("</div>\n");
            var rendered = outputs.Render(cell.Outputs, ctx, state);
            if (rendered.Length > 0) sb.Append("<div class=\"wb-outputs\">\n").Append(rendered).Append("</div>\n");
            sb.Append("</div>\n");
        }
        ctx.CurrentAttachments = null;
        return (sb.ToString(), ctx.Headings);
    }

    static string? MagicLanguage(string source)
    {
        var m = MagicLine().Match(source);
        return m.Success ? m.Groups[1].Value : null;
    }

    static string ResolveLink(string url, BookEntry page, Book book, MediaStore media, MarkdownContext ctx)
    {
        if (IsExternal(url) || url.StartsWith('#')) return url;
        var (path, fragment) = SplitFragment(url);
        if (path.Length == 0) return url;
        var target = Combine(page.Notebook, Uri.UnescapeDataString(path));
        if (target is not null && target.EndsWith(".ipynb", StringComparison.OrdinalIgnoreCase))
        {
            if (book.Find(target) is { } entry) return Book.Href(page.Html, entry.Html) + fragment;
            ctx.Report(new SiteProblem(SiteProblemKind.BrokenLink, page.Notebook, ctx.Cell, "the link goes to a notebook that is not part of the site", url));
            return url;
        }
        // Another local file (a CSV, a README): copy it so the link works offline.
        if (media.Copy(page, Uri.UnescapeDataString(path)) is { } copied) return Book.Href(page.Html, copied) + fragment;
        ctx.Report(new SiteProblem(SiteProblemKind.BrokenLink, page.Notebook, ctx.Cell, "the link goes to a file that does not exist", url));
        return url;
    }

    static string ResolveImage(string url, BookEntry page, MediaStore media, MarkdownContext ctx)
    {
        if (url.StartsWith("data:", StringComparison.OrdinalIgnoreCase)) return url;
        if (IsExternal(url))
        {
            ctx.Report(new SiteProblem(SiteProblemKind.NetworkResource, page.Notebook, ctx.Cell, "the image is on the network, which an offline page cannot load; put it in data/ and link it relatively", url));
            return url;
        }
        if (url.StartsWith("attachment:", StringComparison.OrdinalIgnoreCase))
        {
            var name = Uri.UnescapeDataString(url["attachment:".Length..]);
            if (ctx.CurrentAttachments?[name] is JsonObject bundle && bundle.FirstOrDefault(p => p.Key.StartsWith("image/", StringComparison.Ordinal)) is { Key: { } mime } pair)
            {
                var data = NotebookFile.Text(pair.Value) ?? "";
                var base64 = mime == "image/svg+xml" && !data.TrimStart().StartsWith("PHN", StringComparison.Ordinal) && data.TrimStart().StartsWith('<')
                    ? Convert.ToBase64String(Encoding.UTF8.GetBytes(data)) : Regex.Replace(data, "\\s", "");
                return $"data:{mime};base64,{base64}";
            }
            ctx.Report(new SiteProblem(SiteProblemKind.MissingImage, page.Notebook, ctx.Cell, "the cell has no image attachment of that name", url));
            return url;
        }
        var (path, _) = SplitFragment(url);
        if (media.Copy(page, Uri.UnescapeDataString(path)) is { } copied) return Book.Href(page.Html, copied);
        ctx.Report(new SiteProblem(SiteProblemKind.MissingImage, page.Notebook, ctx.Cell, "the image file was not found next to the notebook", url));
        return url;
    }

    static bool IsExternal(string url) => url.StartsWith("//", StringComparison.Ordinal) || SchemePrefix().IsMatch(url);

    static (string Path, string Fragment) SplitFragment(string url)
    {
        int cut = url.IndexOfAny(['#', '?']);
        return cut < 0 ? (url, "") : (url[..cut], url[cut..]);
    }

    /// <summary>A path relative to the page's notebook, normalized within the workbook; null when it leaves it.</summary>
    static string? Combine(string notebook, string relative)
    {
        var parts = notebook.Split('/')[..^1].ToList();
        foreach (var seg in relative.Replace('\\', '/').Split('/'))
        {
            if (seg is "" or ".") continue;
            if (seg == "..") { if (parts.Count == 0) return null; parts.RemoveAt(parts.Count - 1); }
            else parts.Add(seg);
        }
        return string.Join('/', parts);
    }

    static void WriteAssets(string siteDir, CodeHighlighter highlighter, PlotlyAssets plotly, List<SearchSection> search, List<string> written)
    {
        foreach (var name in SiteAssets.Names)
        {
            if (name.EndsWith(".md", StringComparison.Ordinal) || name == "vendor/katex/katex.min.js") continue; // build-time only
            // Third-party files live under vendor/ in the source; the site keeps them at assets/katex/..., assets/minisearch.js.
            var published = name.StartsWith("vendor/", StringComparison.Ordinal) ? name["vendor/".Length..] : name;
            var target = "assets/" + (published.StartsWith("minisearch/", StringComparison.Ordinal) && published.EndsWith(".js", StringComparison.Ordinal) ? "minisearch.js" : published);
            if (name == "vendor/katex/katex.min.css")
                // Only the woff2 fonts are shipped: every browser that runs the site reads woff2, so drop the other formats.
                Write(siteDir, target, KatexFontFallbacks().Replace(SiteAssets.Text(name), ""), written);
            else WriteBytes(siteDir, target, SiteAssets.Bytes(name), written);
        }
        Write(siteDir, "assets/highlight.css", highlighter.Css, written);
        foreach (var v in plotly.Versions) Write(siteDir, "assets/" + PlotlyAssets.FileName(v), plotly.Script(v), written);
        var docs = new JsonArray(search.Where(s => s.Text.Length > 0 || s.Code.Length > 0 || s.Anchor.Length == 0).Select((s, i) => (JsonNode)new JsonObject
        {
            ["id"] = i, ["url"] = s.Page + (s.Anchor.Length > 0 ? "#" + s.Anchor : ""), ["title"] = s.Title,
            ["text"] = Collapse(s.Text.ToString()), ["code"] = Collapse(s.Code.ToString()),
        }).ToArray());
        // A script, not JSON: pages opened from file:// may not fetch() files next to them.
        Write(siteDir, "assets/search-index.js", "window.wbSearchDocs = " + docs.ToJsonString(new JsonSerializerOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.Default }) + ";\n", written);
    }

    static string Collapse(string text) => Regex.Replace(text, "\\s+", " ").Trim();

    static string Write(string siteDir, string relative, string text, List<string> written) => WriteBytes(siteDir, relative, Encoding.UTF8.GetBytes(text), written);

    static string WriteBytes(string siteDir, string relative, byte[] bytes, List<string> written)
    {
        var path = Path.Combine(siteDir, relative.Replace('/', Path.DirectorySeparatorChar));
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllBytes(path, bytes);
        written.Add(path);
        return path;
    }

    static void RemovePreviousBuild(string siteDir)
    {
        var manifest = Path.Combine(siteDir, ManifestName);
        if (!File.Exists(manifest)) return;
        foreach (var rel in File.ReadAllLines(manifest))
        {
            if (rel.Length == 0 || rel.Contains("..", StringComparison.Ordinal) || Path.IsPathRooted(rel)) continue;
            var path = Path.Combine(siteDir, rel);
            if (File.Exists(path)) File.Delete(path);
        }
        foreach (var dir in Directory.GetDirectories(siteDir, "*", SearchOption.AllDirectories).OrderByDescending(d => d.Length))
            if (!Directory.EnumerateFileSystemEntries(dir).Any()) Directory.Delete(dir);
    }

    [GeneratedRegex("^#\\s+(.+?)\\s*#*\\s*$", RegexOptions.Multiline)]
    private static partial Regex TitleHeading();

    [GeneratedRegex("^#!(csharp|fsharp|pwsh|javascript|html|sql|kql|markdown|mermaid)\\s*$", RegexOptions.Multiline)]
    private static partial Regex MagicLine();

    [GeneratedRegex("^[A-Za-z][A-Za-z0-9+.-]*:")]
    private static partial Regex SchemePrefix();

    [GeneratedRegex(",url\\(fonts/[^)]+\\.(?:woff|ttf)\\) format\\(\"(?:woff|truetype)\"\\)")]
    private static partial Regex KatexFontFallbacks();

    /// <summary>A search document: a page section (from one heading to the next) and the code under it.</summary>
    sealed class SearchSection(string page, string anchor, string title)
    {
        public string Page { get; } = page;
        public string Anchor { get; } = anchor;
        public string Title { get; } = title;
        public StringBuilder Text { get; } = new();
        public StringBuilder Code { get; } = new();
    }

    /// <summary>Local files that pages link or show, copied to <c>media/</c> once each.</summary>
    sealed class MediaStore(string siteDir, List<string> written)
    {
        readonly Dictionary<string, string> _copied = new(StringComparer.Ordinal);

        /// <summary>Copies a file referenced relatively from a page's notebook; returns its site path, or null if not found.</summary>
        public string? Copy(BookEntry page, string relative)
        {
            var source = Find(page, relative);
            if (source is null) return null;
            if (_copied.TryGetValue(source, out var done)) return done;
            var hash = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(source)))[..8];
            var name = Regex.Replace(Path.GetFileName(source), "[^A-Za-z0-9._-]", "_");
            var target = $"media/{hash}-{name}";
            WriteBytes(siteDir, target, File.ReadAllBytes(source), written);
            return _copied[source] = target;
        }

        static string? Find(BookEntry page, string relative)
        {
            if (relative.Length == 0 || Path.IsPathRooted(relative)) return null;
            var dirs = new[] { page.Page.SourcePath, page.Page.NotebookPath }
                .Where(p => !string.IsNullOrWhiteSpace(p)).Select(p => Path.GetDirectoryName(Path.GetFullPath(p!))!).Distinct().ToList();
            foreach (var dir in dirs)
            {
                var candidate = Path.GetFullPath(Path.Combine(dir, relative));
                if (File.Exists(candidate)) return candidate;
            }
            return null;
        }
    }
}
