using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace Workbook.Runner.Site;

/// <summary>The book's frame around the cells: sidebar table of contents and search, run facts, previous/next.</summary>
static partial class PageLayout
{
    static string E(string s) => Html.Encode(s);

    /// <summary>A notebook page.</summary>
    public static string Page(Book book, BookEntry entry, string body, IReadOnlyList<Heading> headings, SiteInfo info, string? plotlyAsset)
    {
        var root = Book.Root(entry.Html);
        var sb = new StringBuilder();
        Head(sb, root, $"{entry.Title} · {info.Title}", plotlyAsset);
        sb.Append($"<body data-root=\"{root}\" data-page=\"{E(entry.Html)}\">\n");
        Sidebar(sb, book, entry, headings, info, root);
        sb.Append("<main class=\"wb-main\">\n");
        sb.Append("<header class=\"wb-header\">");
        if (entry.IsSolution) sb.Append("<span class=\"wb-badge wb-solution\">Solutions</span> ");
        if (entry.Chapter is { } chapter) sb.Append($"<span class=\"wb-of\">to <a href=\"{E(Book.Href(entry.Html, chapter.Html))}\">{E(chapter.Title)}</a></span>");
        sb.Append('\n').Append(Facts(entry, info)).Append("</header>\n");
        if (!entry.Page.Ok)
            sb.Append($"<div class=\"wb-failure\" role=\"alert\"><strong>This notebook did not run to the end.</strong> {E(entry.Page.Failure ?? "No reason was given.")}</div>\n");
        if (entry.Loaded is null)
            sb.Append($"<p class=\"wb-missing\">The executed notebook <code>{E(entry.Notebook)}</code> is not available, so there is nothing else to show.</p>\n");
        sb.Append("<article class=\"wb-notebook\">\n").Append(body).Append("</article>\n");
        Pager(sb, book, entry);
        sb.Append($"<footer class=\"wb-footer\">{E(info.Title)} · executed <code>{E(entry.Notebook)}</code></footer>\n");
        sb.Append("</main>\n");
        sb.Append($"<script src=\"{root}assets/site.js\"></script>\n</body>\n</html>\n");
        return sb.ToString();
    }

    /// <summary>The front page: every notebook with its status and run time.</summary>
    public static string Index(Book book, SiteInfo info)
    {
        var sb = new StringBuilder();
        Head(sb, "", info.Title, null);
        sb.Append("<body data-root=\"\" data-page=\"index.html\">\n");
        Sidebar(sb, book, null, [], info, "");
        sb.Append("<main class=\"wb-main\">\n");
        sb.Append($"<h1>{E(info.Title)}</h1>\n");
        int ok = book.Order.Count(e => e.Page.Ok);
        sb.Append($"<p class=\"wb-lead\">The executed notebooks: {ok} of {book.Order.Count} ran to the end, profile <strong>{E(info.Profile)}</strong>, " +
                  $"on {E(Date(info.Date))}, with Workbook {E(info.LibraryVersion)} and TorchSharp {E(info.TorchSharpVersion)}.</p>\n");
        sb.Append("<table class=\"wb-index\">\n<thead><tr><th>Notebook</th><th>File</th><th>Status</th><th class=\"wb-num\">Run time</th></tr></thead>\n<tbody>\n");
        foreach (var e in book.Order)
        {
            var cls = e.Chapter is null ? "wb-index-chapter" : "wb-index-solution";
            var badge = e.IsSolution ? "<span class=\"wb-badge wb-solution\">Solutions</span> " : "";
            var status = e.Page.Ok ? "<span class=\"wb-ok\">ran</span>" : $"<span class=\"wb-fail\" title=\"{E(e.Page.Failure ?? "")}\">failed</span>";
            sb.Append($"<tr class=\"{cls}\"><td>{badge}<a href=\"{E(e.Html)}\">{E(e.Title)}</a></td><td class=\"wb-file\">{E(e.Notebook)}</td><td>{status}</td><td class=\"wb-num\">{Seconds(e.Page.Seconds)}</td></tr>\n");
        }
        sb.Append($"</tbody>\n<tfoot><tr><td>All notebooks</td><td></td><td></td><td class=\"wb-num\">{Seconds(book.Order.Sum(e => e.Page.Seconds))}</td></tr></tfoot></table>\n");
        if (book.Order.FirstOrDefault() is { } first)
            sb.Append($"<nav class=\"wb-pager\"><span></span><a class=\"wb-next\" rel=\"next\" href=\"{E(first.Html)}\"><span class=\"wb-pager-label\">Start reading</span>{E(first.Title)} →</a></nav>\n");
        sb.Append("</main>\n<script src=\"assets/site.js\"></script>\n</body>\n</html>\n");
        return sb.ToString();
    }

    static void Head(StringBuilder sb, string root, string title, string? plotlyAsset)
    {
        sb.Append("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
        sb.Append($"<title>{E(title)}</title>\n");
        sb.Append($"<link rel=\"stylesheet\" href=\"{root}assets/katex/katex.min.css\">\n");
        sb.Append($"<link rel=\"stylesheet\" href=\"{root}assets/highlight.css\">\n");
        sb.Append($"<link rel=\"stylesheet\" href=\"{root}assets/site.css\">\n");
        // Loaded before the outputs: chart scripts then find window.Plotly and draw at once.
        if (plotlyAsset is not null) sb.Append($"<script src=\"{root}{plotlyAsset}\"></script>\n");
        sb.Append("</head>\n");
    }

    static void Sidebar(StringBuilder sb, Book book, BookEntry? current, IReadOnlyList<Heading> headings, SiteInfo info, string root)
    {
        sb.Append("<nav class=\"wb-sidebar\" aria-label=\"Table of contents\">\n");
        sb.Append($"<a class=\"wb-book\" href=\"{root}index.html\">{E(info.Title)}</a>\n");
        sb.Append("<div class=\"wb-search\"><input type=\"search\" id=\"wb-search-input\" placeholder=\"Search the book\" aria-label=\"Search the book\" autocomplete=\"off\"><ol id=\"wb-search-results\"></ol></div>\n");
        sb.Append("<ol class=\"wb-toc\">\n");
        foreach (var top in book.TopLevel)
        {
            TocItem(sb, top, current, headings, root, nested: false);
            if (top.Solutions.Count == 0) { sb.Append("</li>\n"); continue; }
            sb.Append("<ol class=\"wb-toc-solutions\">\n");
            foreach (var s in top.Solutions) { TocItem(sb, s, current, headings, root, nested: true); sb.Append("</li>\n"); }
            sb.Append("</ol></li>\n");
        }
        sb.Append("</ol>\n</nav>\n");
    }

    static void TocItem(StringBuilder sb, BookEntry e, BookEntry? current, IReadOnlyList<Heading> headings, string root, bool nested)
    {
        bool here = ReferenceEquals(e, current);
        var cls = "wb-toc-item" + (e.IsSolution ? " wb-toc-solution" : "") + (here ? " wb-current" : "") + (e.Page.Ok ? "" : " wb-toc-failed");
        var label = nested ? E(SolutionLabel(e.Title)) : E(e.Title);
        if (e.IsSolution && !nested) label = "<span class=\"wb-badge wb-solution\">Solutions</span> " + label;
        var aria = here ? " aria-current=\"page\"" : "";
        var failed = e.Page.Ok ? "" : " <span class=\"wb-fail\">failed</span>";
        sb.Append($"<li class=\"{cls}\"><a href=\"{root}{E(e.Html)}\" title=\"{E(e.Title)}\"{aria}>{label}</a>{failed}");
        if (!here) return;
        var sections = headings.Where(h => h.Level == 2).ToList();
        if (sections.Count == 0) return;
        sb.Append("<ol class=\"wb-toc-sections\">");
        foreach (var h in sections) sb.Append($"<li><a href=\"#{E(h.Id)}\">{E(h.Text)}</a></li>");
        sb.Append("</ol>");
    }

    /// <summary>A solutions page under its chapter: "Solutions", or "Solutions: beam search, …" when its title says more.</summary>
    static string SolutionLabel(string title)
    {
        var t = ChapterNumber().Replace(title, "");
        if (t.StartsWith("Solutions", StringComparison.OrdinalIgnoreCase)) return t;
        return SolutionsSuffix().IsMatch(t) ? "Solutions" : "Solutions: " + t;
    }

    static string Facts(BookEntry e, SiteInfo info)
    {
        var status = e.Page.Ok ? "<span class=\"wb-ok\">ran</span>" : "<span class=\"wb-fail\">failed</span>";
        return "<dl class=\"wb-facts\">" +
               $"<div><dt>Status</dt><dd>{status}</dd></div>" +
               $"<div><dt>Profile</dt><dd>{E(info.Profile)}</dd></div>" +
               $"<div><dt>Run time</dt><dd>{Seconds(e.Page.Seconds)}</dd></div>" +
               $"<div><dt>Date</dt><dd>{E(Date(info.Date))}</dd></div>" +
               $"<div><dt>Workbook</dt><dd>{E(info.LibraryVersion)}</dd></div>" +
               $"<div><dt>TorchSharp</dt><dd>{E(info.TorchSharpVersion)}</dd></div>" +
               "</dl>";
    }

    static void Pager(StringBuilder sb, Book book, BookEntry entry)
    {
        int i = book.Order.ToList().IndexOf(entry);
        sb.Append("<nav class=\"wb-pager\" aria-label=\"Previous and next\">");
        if (i > 0)
        {
            var p = book.Order[i - 1];
            sb.Append($"<a class=\"wb-prev\" rel=\"prev\" href=\"{E(Book.Href(entry.Html, p.Html))}\"><span class=\"wb-pager-label\">Previous</span>← {E(p.Title)}</a>");
        }
        else sb.Append($"<a class=\"wb-prev\" rel=\"prev\" href=\"{E(Book.Href(entry.Html, "index.html"))}\"><span class=\"wb-pager-label\">Previous</span>← Contents</a>");
        if (i + 1 < book.Order.Count)
        {
            var n = book.Order[i + 1];
            sb.Append($"<a class=\"wb-next\" rel=\"next\" href=\"{E(Book.Href(entry.Html, n.Html))}\"><span class=\"wb-pager-label\">Next</span>{E(n.Title)} →</a>");
        }
        else sb.Append("<span></span>");
        sb.Append("</nav>\n");
    }

    static string Seconds(double s) => s.ToString(s < 10 ? "0.0" : "0", CultureInfo.InvariantCulture) + " s";

    static string Date(DateTimeOffset d) => d.ToUniversalTime().ToString("yyyy-MM-dd HH:mm 'UTC'", CultureInfo.InvariantCulture);

    [GeneratedRegex("^\\d+\\s*·\\s*")]
    private static partial Regex ChapterNumber();

    [GeneratedRegex("[—-]\\s*solutions$", RegexOptions.IgnoreCase)]
    private static partial Regex SolutionsSuffix();
}
