using System.Text.RegularExpressions;
using Workbook.Runner.Site;
using static Workbook.Tests.Runner.NotebookFixture;

namespace Workbook.Tests.Site;

/// <summary>The offline book built from executed notebooks, checked as files and in headless Chromium.</summary>
public class SiteTests
{
    [Fact]
    public async Task FixtureBookTypesetsHighlightsDrawsAndNavigatesOfflineInChromium()
    {
        var dir = TempDir();
        var pages = SiteFixture.Write(dir);
        var site = Path.Combine(dir, "site");
        var result = HtmlSite.Build(site, pages, SiteFixture.Info);

        // The build reports the one formula KaTeX cannot parse, with notebook, cell and formula, and nothing else.
        var problem = Assert.Single(result.Problems);
        Assert.Equal(SiteProblemKind.MathError, problem.Kind);
        Assert.Equal("02-beta.ipynb", problem.Notebook);
        Assert.Equal(3, problem.Cell);
        Assert.Equal(SiteFixture.BadFormula, problem.Source);
        Assert.Contains("KaTeX parse error", problem.Message);
        Assert.Equal(Path.Combine(site, "index.html"), result.IndexPath);
        Assert.Equal(3, result.Pages.Count);

        var alpha = File.ReadAllText(Path.Combine(site, "01-alpha.html"));
        var beta = File.ReadAllText(Path.Combine(site, "02-beta.html"));
        var solutions = File.ReadAllText(Path.Combine(site, "solutions", "01-alpha-solutions.html"));
        // Links between chapters reach their pages, from solutions/ and back, fragments kept.
        Assert.Contains("href=\"02-beta.html\"", alpha);
        Assert.Contains("href=\"solutions/01-alpha-solutions.html#part-1\"", alpha);
        Assert.Contains("href=\"01-alpha.html#display-math\"", beta);
        Assert.Contains("href=\"../01-alpha.html\"", solutions);
        // The data/ image is copied into the site, for the Markdown image and the raw <img> alike.
        var media = Assert.Single(Directory.GetFiles(Path.Combine(site, "media")));
        Assert.Equal(File.ReadAllBytes(Path.Combine(dir, "src", "data", "dot.png")), File.ReadAllBytes(media));
        Assert.Equal(2, Regex.Matches(alpha, $"src=\"media/{Regex.Escape(Path.GetFileName(media))}\"").Count);
        // The kernel's bootstrap (CDN require.js, HTTP probes) is gone; the rest of the #r cell's outputs stay.
        Assert.DoesNotContain("probeAddresses", alpha);
        Assert.DoesNotContain("cdnjs", alpha);
        Assert.Contains("Installed Packages", alpha);
        Assert.Contains("Loading extensions from", alpha);
        // plotly.js is written once as a site asset, not inlined: pages stay small.
        Assert.DoesNotContain("data-wb-plotly", alpha);
        Assert.True(alpha.Length < 200_000, $"page 01 is {alpha.Length} characters: plotly.js was not stripped");
        var plotly = Assert.Single(Directory.GetFiles(Path.Combine(site, "assets"), "plotly-*.js"));
        Assert.True(new FileInfo(plotly).Length > 1_000_000);
        Assert.Contains($"<script src=\"assets/{Path.GetFileName(plotly)}\"></script>", beta); // the chart without its own copy gets it too
        Assert.DoesNotContain("<script src=\"assets/plotly", solutions);                      // no charts, no plotly.js
        // The style block the kernel repeats with every value appears once.
        Assert.Single(Regex.Matches(alpha, Regex.Escape(".dni-code-hint {")));
        // The runtime error's stack is shown once (the kernel repeats it in the traceback); the compile error has its stderr and its name.
        Assert.Single(Regex.Matches(alpha, Regex.Escape("Submission#9.&lt;&lt;Initialize&gt;&gt;d__0.MoveNext()")));
        Assert.Contains("error CS0103: The name &#39;undefinedThing&#39; does not exist", alpha);
        Assert.Contains("compilation error", alpha);
        // Carriage returns overwrite as in a terminal: only the last progress state shows.
        Assert.Contains("progress 100%", alpha);
        Assert.DoesNotContain("progress 50%", alpha);
        // Outputs as the kernel gave them: final display value, Markdown output typeset, images inline.
        Assert.Contains("final value", alpha);
        Assert.Contains("data:image/png;base64,", alpha);
        Assert.Contains("data:image/svg+xml;base64,", alpha);
        Assert.Contains("<strong>done</strong>", alpha);
        // Every page states profile, run time, date and versions; a failed notebook says so with its failure.
        foreach (var page in new[] { alpha, beta, solutions })
            foreach (var fact in new[] { "<dt>Profile</dt><dd>Quick</dd>", "<dt>Date</dt><dd>2026-03-14 09:26 UTC</dd>", "<dt>Workbook</dt><dd>0.1.0</dd>", "<dt>TorchSharp</dt><dd>0.107.0</dd>" })
                Assert.Contains(fact, page);
        Assert.Contains("<dt>Run time</dt><dd>3.2 s</dd>", alpha);
        Assert.Contains("02-beta.ipynb, cell 4, line 1: Exception: boom", beta);
        // ANSI colours in a traceback become styles; no escape character reaches the page.
        Assert.Contains("<span style=\"color:var(--ansi-red);\">Exception</span>: boom\n   at <span style=\"font-weight:bold;\">Submission#3</span>", beta);
        Assert.False(beta.Contains('\u001b'), "an escape character reached page 02");
        // The table of contents nests the solutions under their chapter and marks them.
        Assert.Matches("<li class=\"wb-toc-item wb-current\"><a href=\"01-alpha.html\"[^>]*>01 · Alpha</a>.*?<ol class=\"wb-toc-solutions\">\\s*<li class=\"wb-toc-item wb-toc-solution\"><a href=\"solutions/01-alpha-solutions.html\"", alpha.ReplaceLineEndings(" "));
        Assert.Contains("wb-badge wb-solution", solutions);

        var report = await SiteChecks.CheckAsync(site);
        var checks = report.ToString();
        // In the browser: everything passes except the formula KaTeX rejected, which shows as a visible error.
        var failure = Assert.Single(report.Failures);
        Assert.StartsWith("02-beta.html: formula without a KaTeX node: \\frac{1}{", failure);
        var a = report.Pages.Single(p => p.Page == "01-alpha.html");
        Assert.True(a.Formulas == 11 && a.KatexNodes == 11, checks); // 6 inline, 2 display, 2 in the table, 1 in a Markdown output
        Assert.True(a.CodeCells == 11 && a.Charts == 1, checks);
        var b = report.Pages.Single(p => p.Page == "02-beta.html");
        Assert.True(b.Charts == 1 && b.Formulas == 3 && b.KatexNodes == 2, checks);
        Assert.Equal(4, report.Pages.Count);
        Assert.All(report.Pages, p => Assert.True(p.Requests > 0 && p.Links > 0, checks)); // it did look: requests were seen (all file://) and links followed
        Assert.Contains("wb-math-error", beta);
        Assert.Contains("KaTeX parse error", beta);

        // Search, from a solutions page: a heading of another page and a word that only occurs in code.
        var hits = await SiteChecks.SearchAsync(Path.Combine(site, "solutions", "01-alpha-solutions.html"), "tables images");
        Assert.StartsWith(new Uri(Path.Combine(site, "01-alpha.html")).AbsoluteUri + "#tables-and-images", hits.FirstOrDefault() ?? "(no hit)");
        hits = await SiteChecks.SearchAsync(Path.Combine(site, "index.html"), "undefinedThing");
        Assert.Contains(new Uri(Path.Combine(site, "01-alpha.html")).AbsoluteUri + "#tables-and-images", hits);
    }

    [Fact]
    public void BuildRejectsBadPagesByNameAndReplacesItsOwnEarlierBuild()
    {
        var dir = TempDir();
        var pages = SiteFixture.Write(dir);
        var site = Path.Combine(dir, "site");
        var e = Assert.Throws<ArgumentException>(() => HtmlSite.Build(site, [], SiteFixture.Info));
        Assert.Contains("pages", e.Message);
        e = Assert.Throws<ArgumentException>(() => HtmlSite.Build(site, [pages[0] with { RelativePath = "../x.ipynb" }], SiteFixture.Info));
        Assert.Contains("'../x.ipynb'", e.Message);
        e = Assert.Throws<ArgumentException>(() => HtmlSite.Build(site, [pages[0], pages[0]], SiteFixture.Info));
        Assert.Contains("appears twice", e.Message);
        e = Assert.Throws<ArgumentException>(() => HtmlSite.Build(site, [pages[0] with { RelativePath = "notes.txt" }], SiteFixture.Info));
        Assert.Contains(".ipynb", e.Message);

        HtmlSite.Build(site, pages, SiteFixture.Info);
        var mine = Path.Combine(site, "keep-me.txt");
        File.WriteAllText(mine, "not the site's");
        // A rebuild with fewer pages removes the pages and assets of the earlier build, and nothing else.
        var second = HtmlSite.Build(site, [pages[2]], SiteFixture.Info);
        Assert.False(File.Exists(Path.Combine(site, "01-alpha.html")));
        Assert.False(Directory.Exists(Path.Combine(site, "media")));
        Assert.Empty(Directory.GetFiles(Path.Combine(site, "assets"), "plotly-*.js"));
        Assert.True(File.Exists(Path.Combine(site, "solutions", "01-alpha-solutions.html")));
        Assert.True(File.Exists(mine));
        // The chapter is not in this site: its link is reported, not silently broken.
        var broken = Assert.Single(second.Problems);
        Assert.Equal(SiteProblemKind.BrokenLink, broken.Kind);
        Assert.Equal(("solutions/01-alpha-solutions.ipynb", 1, "../01-alpha.ipynb"), (broken.Notebook, broken.Cell, broken.Source));

        // A notebook that crashed before saving still gets a page with its failure; a missing one that "ran" is reported.
        var crashed = HtmlSite.Build(site, [pages[0] with { NotebookPath = Path.Combine(dir, "nothing.ipynb"), Ok = false, Failure = "killed after 600s" }], SiteFixture.Info);
        Assert.Empty(crashed.Problems);
        Assert.Contains("killed after 600s", File.ReadAllText(Path.Combine(site, "01-alpha.html")));
        var missing = HtmlSite.Build(site, [pages[0] with { NotebookPath = Path.Combine(dir, "nothing.ipynb") }], SiteFixture.Info);
        Assert.Equal(SiteProblemKind.UnreadableNotebook, Assert.Single(missing.Problems).Kind);
    }

    [Fact]
    public async Task ChecksCatchNetworkRequestsRawTexPlainCodeUndrawnChartsAndDeadLinks()
    {
        var dir = TempDir();
        var site = Path.Combine(dir, "site");
        HtmlSite.Build(site, SiteFixture.Write(dir), SiteFixture.Info);
        // Spoil pages the way a broken generator would, and expect the browser checks to say so.
        var alphaPath = Path.Combine(site, "01-alpha.html");
        var alpha = File.ReadAllText(alphaPath);
        alpha = alpha.Replace("</article>", "<section class=\"wb-cell wb-md\"><p>raw $x^2$ left</p></section></article>")
                     .Replace("</head>", "<script src=\"https://cdn.example.org/lib.js\"></script></head>");
        alpha = Regex.Replace(alpha, "<code class=\"wb-hl\" data-lang=\"csharp\">", "<code class=\"wb-plain\">");
        File.WriteAllText(alphaPath, alpha);
        var betaPath = Path.Combine(site, "02-beta.html");
        File.WriteAllText(betaPath, File.ReadAllText(betaPath).Replace("<script src=\"assets/plotly", "<script src=\"assets/no-plotly"));
        File.Delete(Path.Combine(site, "solutions", "01-alpha-solutions.html"));

        var failures = (await SiteChecks.CheckAsync(site)).Failures.ToList();
        var all = string.Join("\n", failures);
        Assert.Contains(failures, f => f.StartsWith("01-alpha.html: network request: https://cdn.example.org/lib.js", StringComparison.Ordinal));
        Assert.Contains(failures, f => f.StartsWith("01-alpha.html: element loads from the network: https://cdn.example.org/lib.js", StringComparison.Ordinal));
        Assert.Contains(failures, f => f == "01-alpha.html: TeX delimiter '$' left in rendered text: \"raw $x^2$ left\"");
        Assert.True(failures.Count(f => f.StartsWith("01-alpha.html: code cell without highlight markup", StringComparison.Ordinal)) >= 8, all);
        Assert.Contains(failures, f => f.StartsWith("02-beta.html: chart drew no SVG", StringComparison.Ordinal));
        Assert.Contains(failures, f => f.StartsWith("02-beta.html: a resource failed to load: file:", StringComparison.Ordinal) && f.Contains("no-plotly", StringComparison.Ordinal));
        Assert.Contains(failures, f => f.StartsWith("index.html: link to a page that does not exist: file:", StringComparison.Ordinal) && f.Contains("01-alpha-solutions.html", StringComparison.Ordinal));
    }
}
