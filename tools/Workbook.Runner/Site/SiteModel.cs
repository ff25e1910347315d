namespace Workbook.Runner.Site;

/// <summary>One executed notebook to publish as a page of the site.</summary>
/// <param name="NotebookPath">The executed nbformat-4 <c>.ipynb</c> file. It may be missing for a notebook whose run crashed:
/// the page then shows the failure only.</param>
/// <param name="RelativePath">Where the notebook sits in the workbook, with forward or platform slashes, e.g.
/// <c>01-attention.ipynb</c> or <c>solutions/01-attention-solutions.ipynb</c>. The page keeps the same place in the site
/// (<c>solutions/01-attention-solutions.html</c>), so links between notebooks keep working.</param>
/// <param name="Ok">Whether every cell ran.</param>
/// <param name="Seconds">How long the notebook ran.</param>
/// <param name="Failure">What went wrong, shown on the page and in the table of contents when <paramref name="Ok"/> is false.</param>
public sealed record SitePage(string NotebookPath, string RelativePath, bool Ok, double Seconds, string? Failure = null)
{
    /// <summary>The notebook as committed, if it lives elsewhere than <see cref="NotebookPath"/>: relative images and
    /// files in its Markdown (<c>../data/x.png</c>) are resolved against its folder first.</summary>
    public string? SourcePath { get; init; }
}

/// <summary>What every page states about the run that produced it.</summary>
/// <param name="Profile">The run profile, <c>Quick</c> or <c>Full</c>.</param>
/// <param name="Date">When the workbook ran.</param>
/// <param name="LibraryVersion">The Workbook library version the notebooks loaded.</param>
/// <param name="TorchSharpVersion">The TorchSharp version the notebooks loaded.</param>
public sealed record SiteInfo(string Profile, DateTimeOffset Date, string LibraryVersion, string TorchSharpVersion)
{
    /// <summary>The book's title, on the index page and in every page's sidebar.</summary>
    public string Title { get; init; } = "Workbook";
}

/// <summary>What kind of thing went wrong while building the site.</summary>
public enum SiteProblemKind
{
    /// <summary>KaTeX could not parse a formula; the page shows it in red with KaTeX's message.</summary>
    MathError,
    /// <summary>KaTeX parsed a formula but warned (strict mode: e.g. a Unicode character in math mode).</summary>
    MathWarning,
    /// <summary>A link to a notebook or file that is not part of the site.</summary>
    BrokenLink,
    /// <summary>An image that could not be found or read.</summary>
    MissingImage,
    /// <summary>An output refers to a resource on the network, which an offline page cannot load.</summary>
    NetworkResource,
    /// <summary>A chart output whose plotly.js was not carried by any notebook of the site.</summary>
    MissingPlotly,
    /// <summary>The executed notebook is missing or is not a readable nbformat-4 file.</summary>
    UnreadableNotebook,
}

/// <summary>One problem found while building the site.</summary>
/// <param name="Kind">What went wrong.</param>
/// <param name="Notebook">The notebook's relative path.</param>
/// <param name="Cell">The cell, 1-based over all cells of the notebook (as the runner counts them); null for the notebook as a whole.</param>
/// <param name="Message">What went wrong, e.g. KaTeX's parse error.</param>
/// <param name="Source">The offending text: the formula, the link target, the URL.</param>
public sealed record SiteProblem(SiteProblemKind Kind, string Notebook, int? Cell, string Message, string? Source = null)
{
    /// <summary>One line for a console: <c>notebook, cell N: kind: message: source</c>.</summary>
    public override string ToString() =>
        $"{Notebook}{(Cell is { } c ? $", cell {c}" : "")}: {Kind}: {Message}{(Source is null ? "" : $": {Source}")}";
}

/// <summary>What <see cref="HtmlSite.Build"/> wrote and what it found wrong.</summary>
public sealed class SiteBuildResult
{
    internal SiteBuildResult(string siteDir, string indexPath, IReadOnlyList<string> pages, IReadOnlyList<SiteProblem> problems, int formulas)
    {
        SiteDir = siteDir;
        IndexPath = indexPath;
        Pages = pages;
        Problems = problems;
        Formulas = formulas;
    }

    /// <summary>The site's folder (absolute).</summary>
    public string SiteDir { get; }

    /// <summary>The book's front page, <c>index.html</c>.</summary>
    public string IndexPath { get; }

    /// <summary>Every notebook page written, in book order (absolute paths).</summary>
    public IReadOnlyList<string> Pages { get; }

    /// <summary>Everything that went wrong, in page and cell order.</summary>
    public IReadOnlyList<SiteProblem> Problems { get; }

    /// <summary>How many formulas were typeset (including those that failed).</summary>
    public int Formulas { get; }

    /// <summary>The formulas KaTeX could not parse.</summary>
    public IEnumerable<SiteProblem> MathErrors => Problems.Where(p => p.Kind == SiteProblemKind.MathError);
}
