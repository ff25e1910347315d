using System.Text.RegularExpressions;

namespace Workbook.Runner.Site;

/// <summary>One page of the book: where it is, its title, and where it sits in the table of contents.</summary>
sealed class BookEntry
{
    public required SitePage Page { get; init; }

    /// <summary>The notebook's path in the workbook, forward slashes, e.g. <c>solutions/01-attention-solutions.ipynb</c>.</summary>
    public required string Notebook { get; init; }

    /// <summary>The page's path in the site, e.g. <c>solutions/01-attention-solutions.html</c>.</summary>
    public string Html => Notebook[..^".ipynb".Length] + ".html";

    public string Title { get; set; } = "";

    /// <summary>A worked-solutions page (in a <c>solutions</c> folder or named <c>*-solutions</c>).</summary>
    public bool IsSolution { get; init; }

    /// <summary>The chapter a solutions page belongs to, when there is one.</summary>
    public BookEntry? Chapter { get; set; }

    public List<BookEntry> Solutions { get; } = [];

    /// <summary>The executed notebook, once read (null when it is missing or unreadable).</summary>
    public NotebookFile? Loaded { get; set; }
}

/// <summary>The pages in reading order: each chapter followed by its solutions, which the table of contents nests under it.</summary>
sealed partial class Book
{
    Book(List<BookEntry> top, List<BookEntry> order)
    {
        TopLevel = top;
        Order = order;
    }

    /// <summary>Table-of-contents roots: chapters, and solutions pages that have no chapter in the site.</summary>
    public IReadOnlyList<BookEntry> TopLevel { get; }

    /// <summary>Every page in reading order (previous/next follow it).</summary>
    public IReadOnlyList<BookEntry> Order { get; }

    /// <summary>Finds the page of a notebook path (forward slashes, normalized).</summary>
    public BookEntry? Find(string notebook) => Order.FirstOrDefault(e => string.Equals(e.Notebook, notebook, StringComparison.Ordinal));

    public static Book Create(IReadOnlyList<SitePage> pages)
    {
        var entries = new List<BookEntry>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var p in pages)
        {
            var rel = Normalize(p.RelativePath);
            if (!seen.Add(rel)) throw new ArgumentException($"pages: '{rel}' appears twice; each notebook must have one page.", nameof(pages));
            var stem = Path.GetFileNameWithoutExtension(rel);
            bool solution = rel.Split('/')[..^1].Any(d => d.Contains("solution", StringComparison.OrdinalIgnoreCase)) || stem.EndsWith("-solutions", StringComparison.OrdinalIgnoreCase);
            entries.Add(new BookEntry { Page = p, Notebook = rel, IsSolution = solution, Title = stem });
        }
        var top = new List<BookEntry>();
        foreach (var e in entries)
        {
            if (e.IsSolution)
            {
                var stem = SolutionsSuffix().Replace(Path.GetFileNameWithoutExtension(e.Notebook), "");
                e.Chapter = entries.FirstOrDefault(c => !c.IsSolution && Path.GetFileNameWithoutExtension(c.Notebook) == stem);
            }
            if (e.Chapter is null) top.Add(e); else e.Chapter.Solutions.Add(e);
        }
        var order = new List<BookEntry>();
        foreach (var e in top) { order.Add(e); order.AddRange(e.Solutions); }
        return new Book(top, order);
    }

    /// <summary>A relative notebook path with forward slashes; rejects rooted paths, <c>..</c> and non-notebooks.</summary>
    public static string Normalize(string relativePath)
    {
        if (string.IsNullOrWhiteSpace(relativePath)) throw new ArgumentException("pages: a page has an empty RelativePath; expected e.g. '01-attention.ipynb'.", nameof(relativePath));
        var rel = relativePath.Replace('\\', '/');
        if (Path.IsPathRooted(rel) || rel.StartsWith('/') || rel.Split('/').Any(s => s is ".." or ""))
            throw new ArgumentException($"pages: RelativePath must be a relative path inside the workbook without '..', e.g. 'solutions/01-attention-solutions.ipynb'; got '{relativePath}'.", nameof(relativePath));
        if (!rel.EndsWith(".ipynb", StringComparison.OrdinalIgnoreCase))
            throw new ArgumentException($"pages: RelativePath must name an .ipynb notebook; got '{relativePath}'.", nameof(relativePath));
        return string.Join('/', rel.Split('/').Where(s => s != "."));
    }

    /// <summary>The URL of <paramref name="to"/> (site path) from the page at <paramref name="from"/> (site path).</summary>
    public static string Href(string from, string to)
    {
        var fromDir = from.Split('/')[..^1];
        var target = to.Split('/');
        int common = 0;
        while (common < fromDir.Length && common < target.Length - 1 && fromDir[common] == target[common]) common++;
        var parts = Enumerable.Repeat("..", fromDir.Length - common).Concat(target[common..]);
        return string.Join('/', parts);
    }

    /// <summary>The prefix that leads from a page to the site root, e.g. <c>../</c> for <c>solutions/x.html</c>.</summary>
    public static string Root(string page) => string.Concat(Enumerable.Repeat("../", page.Count(c => c == '/')));

    [GeneratedRegex("-solutions?$", RegexOptions.IgnoreCase)]
    private static partial Regex SolutionsSuffix();
}
