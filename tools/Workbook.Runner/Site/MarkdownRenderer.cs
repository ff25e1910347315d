using System.Net;
using System.Text;
using System.Text.RegularExpressions;
using Markdig;
using Markdig.Extensions.AutoIdentifiers;
using Markdig.Extensions.Mathematics;
using Markdig.Renderers;
using Markdig.Renderers.Html;
using Markdig.Syntax;
using Markdig.Syntax.Inlines;

namespace Workbook.Runner.Site;

/// <summary>
/// Notebook Markdown as Jupyter renders it, through Markdig: CommonMark plus pipe tables, strikethrough and other
/// emphasis extras, autolinks, task lists and <c>$…$</c>/<c>$$…$$</c> math, which KaTeX typesets here. Links and
/// images are handed to the page so that notebook links reach their pages and local images travel with the site.
/// </summary>
sealed partial class MarkdownRenderer
{
    readonly MarkdownPipeline _pipeline = new MarkdownPipelineBuilder()
        .UseMathematics()
        .UsePipeTables()
        .UseEmphasisExtras()
        .UseAutoLinks()
        .UseTaskLists()
        .UseAutoIdentifiers(AutoIdentifierOptions.GitHub)
        .Build();

    readonly MathRenderer _math;

    public MarkdownRenderer(MathRenderer math) => _math = math;

    /// <summary>Renders one Markdown text (a cell or a <c>text/markdown</c> output) to HTML.</summary>
    public string Render(string markdown, MarkdownContext context)
    {
        var doc = Markdown.Parse(markdown, _pipeline);
        foreach (var link in doc.Descendants<LinkInline>())
        {
            if (link.Url is null) continue;
            link.Url = link.IsImage ? context.Image(link.Url) : context.Link(link.Url);
        }
        foreach (var heading in doc.Descendants<HeadingBlock>())
        {
            var attributes = heading.GetAttributes();
            var id = context.UniqueId(attributes.Id ?? "section");
            attributes.Id = id;
            context.Headings.Add(new Heading(heading.Level, id, PlainText(heading.Inline)));
        }
        context.Sections(doc, this);
        var html = ToHtml(doc, context, plain: false);
        // Raw HTML images (<img src="data/x.png" width=300>) are not in the syntax tree; resolve them in the output.
        if (doc.Descendants<HtmlBlock>().Any() || doc.Descendants<HtmlInline>().Any())
            html = RawImage().Replace(html, m => context.IsRewritten(m.Groups[2].Value)
                ? m.Value
                : m.Groups[1].Value + Html.Encode(context.Image(WebUtility.HtmlDecode(m.Groups[2].Value))) + m.Groups[3].Value);
        return html;
    }

    /// <summary>A block's text without markup (math as TeX), for the search index.</summary>
    public string PlainText(Block block, MarkdownContext context) => ToHtml(block, context, plain: true);

    string ToHtml(MarkdownObject node, MarkdownContext context, bool plain)
    {
        using var writer = new StringWriter();
        var renderer = new HtmlRenderer(writer);
        if (plain)
        {
            renderer.EnableHtmlForBlock = false;
            renderer.EnableHtmlForInline = false;
            renderer.EnableHtmlEscape = false;
        }
        _pipeline.Setup(renderer);
        renderer.ObjectRenderers.Replace<HtmlMathInlineRenderer>(new KatexInline(_math, context, plain));
        renderer.ObjectRenderers.Replace<HtmlMathBlockRenderer>(new KatexBlock(_math, context, plain));
        renderer.Render(node);
        writer.Flush();
        return writer.ToString();
    }

    static string PlainText(ContainerInline? inline)
    {
        var sb = new StringBuilder();
        void Walk(Inline? i)
        {
            for (; i is not null; i = i.NextSibling)
            {
                switch (i)
                {
                    case LiteralInline l: sb.Append(l.Content.ToString()); break;
                    case CodeInline c: sb.Append(c.Content); break;
                    case MathInline m: sb.Append(m.Content.ToString()); break;
                    case LineBreakInline: sb.Append(' '); break;
                    case ContainerInline c: Walk(c.FirstChild); break;
                }
            }
        }
        Walk(inline?.FirstChild);
        return sb.ToString().Trim();
    }

    [GeneratedRegex("(<img\\b[^>]*?\\bsrc=\")([^\"]*)(\")", RegexOptions.IgnoreCase)]
    private static partial Regex RawImage();

    sealed class KatexInline(MathRenderer math, MarkdownContext context, bool plain) : HtmlObjectRenderer<MathInline>
    {
        protected override void Write(HtmlRenderer renderer, MathInline obj)
        {
            var tex = obj.Content.ToString();
            if (plain) { renderer.Write(tex); return; }
            // $$…$$ inside a paragraph is display math in Jupyter too.
            renderer.Write(context.Math(math, tex, display: obj.DelimiterCount >= 2));
        }
    }

    sealed class KatexBlock(MathRenderer math, MarkdownContext context, bool plain) : HtmlObjectRenderer<MathBlock>
    {
        protected override void Write(HtmlRenderer renderer, MathBlock obj)
        {
            var tex = obj.Lines.ToString();
            if (plain) { renderer.WriteLine(tex); return; }
            renderer.Write(context.Math(math, tex, display: true));
        }
    }
}

/// <summary>A heading of a page: its level, anchor and text.</summary>
sealed record Heading(int Level, string Id, string Text);

/// <summary>What the Markdown renderer needs from the page it renders for.</summary>
sealed class MarkdownContext
{
    readonly HashSet<string> _ids = new(StringComparer.Ordinal);
    readonly HashSet<string> _rewritten = new(StringComparer.Ordinal);

    /// <summary>The notebook's relative path, for problems.</summary>
    public required string Notebook { get; init; }

    /// <summary>The cell being rendered, 1-based.</summary>
    public int Cell { get; set; }

    /// <summary>Rewrites a link target (a notebook link becomes its page).</summary>
    public required Func<string, string> LinkResolver { get; init; }

    /// <summary>Rewrites an image source to a file in the site or a data URI.</summary>
    public required Func<string, string> ImageResolver { get; init; }

    /// <summary>Receives problems.</summary>
    public required Action<SiteProblem> Report { get; init; }

    /// <summary>Called with each parsed document, to collect search sections.</summary>
    public Action<MarkdownDocument, MarkdownRenderer> Sections { get; init; } = (_, _) => { };

    /// <summary>The attachments of the cell being rendered (<c>attachment:</c> images).</summary>
    public System.Text.Json.Nodes.JsonObject? CurrentAttachments { get; set; }

    /// <summary>The page's headings, in order.</summary>
    public List<Heading> Headings { get; } = [];

    /// <summary>Typesets a formula and reports a parse error or warning with this notebook and cell.</summary>
    public string Math(MathRenderer math, string tex, bool display)
    {
        var r = math.Render(tex, display);
        if (r.Error is not null) Report(new SiteProblem(SiteProblemKind.MathError, Notebook, Cell, r.Error, tex));
        foreach (var w in r.Warnings) Report(new SiteProblem(SiteProblemKind.MathWarning, Notebook, Cell, w, tex));
        return r.Html;
    }

    /// <summary>The link target for the page.</summary>
    public string Link(string url) => LinkResolver(url);

    /// <summary>The image source for the page; remembered so raw-HTML rewriting leaves it alone.</summary>
    public string Image(string url)
    {
        var resolved = ImageResolver(url);
        _rewritten.Add(resolved);
        return resolved;
    }

    /// <summary>Whether a source was produced by <see cref="Image"/>.</summary>
    public bool IsRewritten(string url) => _rewritten.Contains(WebUtility.HtmlDecode(url));

    /// <summary>An id not yet used on the page (headings of different cells may repeat).</summary>
    public string UniqueId(string id)
    {
        var candidate = id;
        for (int n = 1; !_ids.Add(candidate); n++) candidate = $"{id}-{n}";
        return candidate;
    }
}
