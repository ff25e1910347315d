using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Workbook.Tests.Site;

/// <summary>
/// Loads every page of a built site in headless Chromium (network off) and checks what a reader would see: no raw
/// <c>$</c> TeX left in Markdown text, a KaTeX node for every formula, highlight markup in every code cell and no code
/// hidden past a scroll bar, an SVG drawn by every chart, no request other than the site's own files (and none of
/// those missing), no script error, and previous/next and table-of-contents links to pages that exist.
/// </summary>
static class SiteChecks
{
    // Runs in the page; returns what the checks need as JSON.
    const string Probe = """
        (async () => {
          await document.fonts.ready;
          const skip = 'code, pre, script, style, .katex, .wb-math, textarea';
          const dollars = [];
          document.querySelectorAll('.wb-md').forEach(md => {
            const walker = document.createTreeWalker(md, NodeFilter.SHOW_TEXT);
            let n;
            while ((n = walker.nextNode())) {
              if (n.parentElement && n.parentElement.closest(skip)) continue;
              if (n.nodeValue.includes('$')) dollars.push(n.nodeValue.trim().slice(0, 160));
            }
          });
          const math = [...document.querySelectorAll('.wb-math')];
          const badMath = math.filter(m => !m.querySelector('.katex')).map(m => m.textContent.trim().slice(0, 200));
          const code = [...document.querySelectorAll('.wb-code pre.wb-src > code')];
          const keyword = /\b(var|new|using|for|foreach|return|double|int|string|class|public|static)\b/;
          const unhighlighted = code.filter(c => !c.classList.contains('wb-hl') || (keyword.test(c.textContent) && !c.querySelector('span[class*="hl-"]')))
                                    .map(c => c.textContent.slice(0, 80));
          const hidden = [...document.querySelectorAll('pre.wb-src, .wb-output pre')].filter(p => p.scrollWidth > p.clientWidth + 1)
                                    .map(p => p.textContent.slice(0, 80));
          const charts = [...new Set([...document.querySelectorAll('.wb-plotly, .js-plotly-plot')])];
          const undrawn = charts.filter(c => !c.querySelector('svg.main-svg')).map(c => c.id || c.className);
          const toc = [...document.querySelectorAll('.wb-toc a')].map(a => a.href);
          const pager = [...document.querySelectorAll('.wb-pager a')].map(a => a.href);
          const content = [...document.querySelectorAll('.wb-notebook a[href]')].map(a => a.href).filter(h => h.startsWith('file:'));
          return JSON.stringify({
            title: document.title, dollars, formulas: math.length, katex: math.length - badMath.length, badMath,
            codeCells: code.length, unhighlighted, hidden, charts: charts.length, undrawn, toc, pager, content,
            prev: !!document.querySelector('.wb-pager a[rel=prev]'), next: !!document.querySelector('.wb-pager a[rel=next]'),
            katexFont: document.fonts.check('16px KaTeX_Main'),
            remoteInDom: [...document.querySelectorAll('[src],link[href]')].map(e => e.getAttribute('src') || e.getAttribute('href')).filter(u => /^(https?:)?\/\//i.test(u)),
          });
        })()
        """;

    // Charts are drawn, or cannot be (plotly.js is not on the page): either way, waiting longer changes nothing.
    const string ChartsSettled = """
        (() => !window.Plotly || [...new Set([...document.querySelectorAll('.wb-plotly, .js-plotly-plot')])].every(c => c.querySelector('svg.main-svg')))()
        """;

    /// <summary>Checks every HTML page of the site at <paramref name="siteDir"/>.</summary>
    /// <param name="siteDir">A folder written by the site generator.</param>
    /// <param name="screenshots">If set, a full-page PNG of each page is saved there (named like the page).</param>
    public static async Task<SiteCheckReport> CheckAsync(string siteDir, string? screenshots = null)
    {
        siteDir = Path.GetFullPath(siteDir);
        if (!File.Exists(Path.Combine(siteDir, "index.html"))) throw new ArgumentException($"siteDir: no index.html in '{siteDir}'; expected a folder written by HtmlSite.Build.", nameof(siteDir));
        var pages = Directory.GetFiles(siteDir, "*.html", SearchOption.AllDirectories).Order(StringComparer.Ordinal).ToList();
        var results = new List<PageCheck>();
        await using var browser = await HeadlessChromium.StartAsync();
        var requests = new List<(string Url, string Kind)>();
        var errors = new List<string>();
        browser.Event += (method, p) =>
        {
            lock (requests)
            {
                switch (method)
                {
                    case "Network.requestWillBeSent": requests.Add((p["request"]?["url"]?.GetValue<string>() ?? "?", "request")); break;
                    case "Network.loadingFailed": requests.Add(((p["requestId"]?.ToString() ?? "?") + ": " + (p["errorText"]?.ToString() ?? "failed"), "failed")); break;
                    case "Runtime.exceptionThrown": errors.Add(p["exceptionDetails"]?["exception"]?["description"]?.ToString() ?? p["exceptionDetails"]?["text"]?.ToString() ?? "exception"); break;
                }
            }
        };
        // Failed loads name a request id; keep the URLs to say which file was missing.
        var urls = new Dictionary<string, string>();
        browser.Event += (method, p) =>
        {
            if (method == "Network.requestWillBeSent") lock (urls) urls[p["requestId"]?.ToString() ?? ""] = p["request"]?["url"]?.GetValue<string>() ?? "?";
        };
        foreach (var page in pages)
        {
            lock (requests) { requests.Clear(); errors.Clear(); }
            var rel = Path.GetRelativePath(siteDir, page).Replace('\\', '/');
            var check = new PageCheck(rel);
            await browser.NavigateAsync(new Uri(page).AbsoluteUri);
            // Charts draw after load (plotly.js lays out asynchronously): wait for them, up to a limit.
            for (var deadline = DateTime.UtcNow.AddSeconds(30); DateTime.UtcNow < deadline;)
            {
                if (await browser.EvaluateAsync(ChartsSettled) == "true") break;
                await Task.Delay(200);
            }
            var probe = JsonNode.Parse(await browser.EvaluateAsync(Probe))!.AsObject();
            if (screenshots is not null)
            {
                Directory.CreateDirectory(screenshots);
                await browser.ScreenshotAsync(Path.Combine(screenshots, rel.Replace('/', '_').Replace(".html", ".png")));
            }
            check.Formulas = probe["formulas"]!.GetValue<int>();
            check.KatexNodes = probe["katex"]!.GetValue<int>();
            check.CodeCells = probe["codeCells"]!.GetValue<int>();
            check.Charts = probe["charts"]!.GetValue<int>();
            foreach (var d in Strings(probe["dollars"])) check.Fail($"TeX delimiter '$' left in rendered text: \"{d}\"");
            foreach (var m in Strings(probe["badMath"])) check.Fail($"formula without a KaTeX node: {m}");
            foreach (var c in Strings(probe["unhighlighted"])) check.Fail($"code cell without highlight markup: {c}");
            foreach (var c in Strings(probe["hidden"])) check.Fail($"code or output wider than its box (scrolled out of sight): {c}");
            foreach (var c in Strings(probe["undrawn"])) check.Fail($"chart drew no SVG: {c}");
            foreach (var u in Strings(probe["remoteInDom"])) check.Fail($"element loads from the network: {u}");
            if (check.Formulas > 0 && !probe["katexFont"]!.GetValue<bool>()) check.Fail("KaTeX's fonts did not load");
            lock (requests)
            {
                foreach (var (url, kind) in requests)
                {
                    if (kind == "failed")
                    {
                        var id = url.Split(':')[0];
                        lock (urls) check.Fail($"a resource failed to load: {(urls.TryGetValue(id, out var u) ? u : url)} ({url[(id.Length + 2)..]})");
                        continue;
                    }
                    check.Requests++;
                    if (!url.StartsWith("file:", StringComparison.Ordinal) && !url.StartsWith("data:", StringComparison.Ordinal) && !url.StartsWith("about:", StringComparison.Ordinal) && !url.StartsWith("blob:", StringComparison.Ordinal))
                        check.Fail($"network request: {url}");
                }
                foreach (var e in errors) check.Fail($"script error: {e}");
            }
            var toc = Strings(probe["toc"]).ToList();
            check.Toc = toc.Where(h => h.StartsWith("file:", StringComparison.Ordinal)).Select(h => new Uri(h.Split('#')[0]).LocalPath).Distinct().ToList();
            check.HasPrevious = probe["prev"]!.GetValue<bool>();
            check.HasNext = probe["next"]!.GetValue<bool>();
            if (rel != "index.html" && !check.HasPrevious) check.Fail("no previous link");
            var missing = pages.Where(p => Path.GetFileName(p) != "index.html" || Path.GetDirectoryName(p) != siteDir).Except(check.Toc).ToList();
            foreach (var m in missing) check.Fail($"table of contents does not list {Path.GetRelativePath(siteDir, m)}");
            foreach (var href in toc.Concat(Strings(probe["pager"])).Concat(Strings(probe["content"])).Distinct())
            {
                if (!href.StartsWith("file:", StringComparison.Ordinal)) { check.Fail($"navigation link leaves the site: {href}"); continue; }
                var local = new Uri(href.Split('#')[0]).LocalPath;
                if (!File.Exists(local)) check.Fail($"link to a page that does not exist: {href}");
                else check.Links++;
            }
            results.Add(check);
        }
        // Only the book's last page (the table of contents' last entry) may lack a next link.
        var last = results.FirstOrDefault(r => r.Page == "index.html")?.Toc.LastOrDefault();
        foreach (var r in results.Where(r => r.Page != "index.html" && !r.HasNext))
            if (Path.Combine(siteDir, r.Page.Replace('/', Path.DirectorySeparatorChar)) != last) r.Fail("no next link, but this is not the last page of the table of contents");
        return new SiteCheckReport(siteDir, results);
    }

    /// <summary>Types <paramref name="query"/> into the search box of a page and returns the result links (absolute URLs).</summary>
    public static async Task<List<string>> SearchAsync(string page, string query)
    {
        await using var browser = await HeadlessChromium.StartAsync();
        await browser.NavigateAsync(new Uri(Path.GetFullPath(page)).AbsoluteUri);
        var q = JsonSerializer.Serialize(query);
        await browser.EvaluateAsync($"(() => {{ const i = document.getElementById('wb-search-input'); i.focus(); i.value = {q}; i.dispatchEvent(new Event('input')); return 1; }})()");
        for (var deadline = DateTime.UtcNow.AddSeconds(20); DateTime.UtcNow < deadline; await Task.Delay(100))
        {
            var links = JsonNode.Parse(await browser.EvaluateAsync("JSON.stringify([...document.querySelectorAll('#wb-search-results a')].map(a => a.href))"))!.AsArray();
            if (links.Count > 0) return links.Select(l => l!.ToString()).ToList();
        }
        return [];
    }

    /// <summary>Synchronous form of <see cref="CheckAsync"/>.</summary>
    public static SiteCheckReport Check(string siteDir, string? screenshots = null) => CheckAsync(siteDir, screenshots).GetAwaiter().GetResult();

    static IEnumerable<string> Strings(JsonNode? node) => (node as JsonArray ?? []).Select(n => n?.ToString() ?? "");
}

/// <summary>What the browser found on one page.</summary>
sealed class PageCheck(string page)
{
    readonly List<string> _failures = [];

    public string Page { get; } = page;
    public int Formulas { get; set; }
    public int KatexNodes { get; set; }
    public int CodeCells { get; set; }
    public int Charts { get; set; }
    public int Requests { get; set; }
    public int Links { get; set; }
    public bool HasPrevious { get; set; }
    public bool HasNext { get; set; }
    /// <summary>The pages the table of contents links to, in order (local paths).</summary>
    public List<string> Toc { get; set; } = [];
    public IReadOnlyList<string> Failures => _failures;
    public void Fail(string message) => _failures.Add(message);

    public override string ToString() =>
        $"{Page}: {KatexNodes}/{Formulas} formulas typeset, {CodeCells} code cells, {Charts} charts, {Requests} requests (files), {Links} links checked" +
        (_failures.Count == 0 ? ", ok" : $", {_failures.Count} failure(s):\n    " + string.Join("\n    ", _failures));
}

/// <summary>The checks of every page of a site.</summary>
sealed class SiteCheckReport(string siteDir, IReadOnlyList<PageCheck> pages)
{
    public string SiteDir { get; } = siteDir;
    public IReadOnlyList<PageCheck> Pages { get; } = pages;

    /// <summary>Every failure, prefixed with its page.</summary>
    public IEnumerable<string> Failures => Pages.SelectMany(p => p.Failures.Select(f => $"{p.Page}: {f}"));

    public override string ToString()
    {
        var sb = new StringBuilder($"Site {SiteDir}: {Pages.Count} pages, {Pages.Sum(p => p.KatexNodes)}/{Pages.Sum(p => p.Formulas)} formulas typeset, " +
                                   $"{Pages.Sum(p => p.CodeCells)} code cells, {Pages.Sum(p => p.Charts)} charts, {Failures.Count()} failure(s)\n");
        foreach (var p in Pages) sb.Append("  ").Append(p).Append('\n');
        return sb.ToString();
    }
}
