using System.Text.Json.Nodes;
using SkiaSharp;
using Workbook.Plots;
using Workbook.Runner.Site;

namespace Workbook.Tests.Site;

/// <summary>
/// Small executed notebooks, written as the real .NET Interactive kernel writes them (its outputs copied from a run:
/// the kernel bootstrap, "Installed Packages", dni-plaintext values with their style block, compile errors as a
/// stderr stream plus an error, runtime errors with the stack repeated in the traceback), and the library's own
/// chart and DataFrame outputs. Together they cover math, tables, code, charts, DataFrames, errors, images, links
/// between chapters and solutions, and one formula KaTeX cannot parse.
/// </summary>
static class SiteFixture
{
    /// <summary>The formula KaTeX must reject, in page 02, cell 3.</summary>
    public const string BadFormula = @"\frac{1}{";

    /// <summary>A long C# line that must wrap rather than hide.</summary>
    public static readonly string LongLine = "var longLine = \"" + string.Concat(Enumerable.Repeat("wrap me ", 40)) + "\";";

    public static SiteInfo Info => new("Quick", new DateTimeOffset(2026, 3, 14, 9, 26, 0, TimeSpan.Zero), "0.1.0", "0.107.0");

    /// <summary>Writes the notebooks under <paramref name="dir"/>: committed sources (with an image in data/) and executed copies.</summary>
    public static List<SitePage> Write(string dir)
    {
        var src = Path.Combine(dir, "src");
        var run = Path.Combine(dir, "run");
        Directory.CreateDirectory(Path.Combine(src, "data"));
        Directory.CreateDirectory(Path.Combine(src, "solutions"));
        Directory.CreateDirectory(Path.Combine(run, "solutions"));
        File.WriteAllBytes(Path.Combine(src, "data", "dot.png"), Png(SKColors.SteelBlue));

        var chart = PlotlyHtml.ToHtml(Plot.Line([0, 1, 2, 3], [1, 4, 9, 16], title: "squares"), includeLibrary: true);
        var chartNoLibrary = PlotlyHtml.ToHtml(Plot.Line([0, 1, 2], [3, 1, 2], title: "second chart"), includeLibrary: false);
        var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"40\" height=\"20\"><rect width=\"40\" height=\"20\" fill=\"orange\"/></svg>";

        var alpha = new[]
        {
            Md("# 01 · Alpha\n\nTake self-attention $y = \\mathrm{MHA}(x, x, x)$ with $\\sqrt{d_k}$, scores $Q K^\\top$, $\\operatorname{softmax}$ over $\\mathbb{R}^{n}$ and $a \\odot b$. " +
               "Then read [chapter 02](02-beta.ipynb), the [solutions](solutions/01-alpha-solutions.ipynb#part-1) or [the project](https://example.org/workbook)."),
            Md("## Display math\n\n$$\\begin{aligned} x &\\leftarrow \\mathrm{LN}_1\\big(x + \\mathrm{MHA}(x, x, x)\\big) \\\\ x &\\leftarrow \\mathrm{LN}_2\\big(x + \\mathrm{FFN}(x)\\big) \\end{aligned}$$\n\n" +
               "$$\n\\begin{pmatrix} \\cos\\omega k & \\sin\\omega k \\\\ -\\sin\\omega k & \\cos\\omega k \\end{pmatrix}, \\qquad \\frac{\\partial L}{\\partial w} = \\sum_{i=0}^{d/2-1} \\lVert x_i \\rVert\n$$"),
            Md("## Tables and images\n\n| Type | Formula |\n|---|---|\n| `LayerNorm` | $\\frac{x - \\mu}{\\sqrt{\\sigma^2 + \\epsilon}}$ |\n| **bold** ~~gone~~ | $\\lceil d/2 \\rceil$ |\n\n" +
               "![a dot](data/dot.png) and raw <img src=\"data/dot.png\" width=\"12\" alt=\"raw dot\">; see https://example.org too."),
            Code(1, "#r \"nuget: Workbook, 0.1.0\"",
                Display(("text/html", KernelBootstrap)),
                Display(("text/html", "<div><div><strong>Installed Packages</strong><ul><li><span>Workbook, 0.1.0</span></li></ul></div></div>")),
                Display(("text/plain", "Loading extensions from `/home/reader/.nuget/packages/microsoft.data.analysis/0.23.1/interactive-extensions/dotnet/Microsoft.Data.Analysis.Interactive.dll`"))),
            Code(2, "1 + 1", Result(2, ("text/html", "<div class=\"dni-plaintext\"><pre>2</pre></div>" + DniStyle), ("text/plain", "2"))),
            Code(3, LongLine + "\nlongLine.Length", Result(3, ("text/plain", string.Concat(Enumerable.Repeat("an output line that is long ", 20))))),
            Code(4, "using Workbook.Plots;\nPlot.Line(new double[] { 0, 1, 2, 3 }, new double[] { 1, 4, 9, 16 }, title: \"squares\")", Result(4, ("text/html", chart), ("text/plain", "GenericChart"))),
            Code(5, "new DataFrame(new DoubleDataFrameColumn(\"v\", new[] { 1.5, 2.5 }))",
                Result(5, ("text/html", "<table id=\"table_639317374064910695\"><thead><tr><th><i>index</i></th><th>v</th></tr></thead><tbody><tr><td><i><div class=\"dni-plaintext\"><pre>0</pre></div></i></td><td><div class=\"dni-plaintext\"><pre>1.5</pre></div></td></tr><tr><td><i><div class=\"dni-plaintext\"><pre>1</pre></div></i></td><td><div class=\"dni-plaintext\"><pre>2.5</pre></div></td></tr></tbody></table>" + DniStyle))),
            Code(6, "for (int i = 0; i <= 100; i += 50) Console.Write($\"\\rprogress {i}%\");\nConsole.WriteLine();\nConsole.Error.WriteLine(\"careful\");",
                Stream("stdout", "\rprogress 0%\rprogress 50%"), Stream("stdout", "\rprogress 100%\n"), Stream("stderr", "careful\n")),
            Code(7, "undefinedThing + 1", Stream("stderr", "\n(1,1): error CS0103: The name 'undefinedThing' does not exist in the current context\n\n"), Error("Error", "compilation error")),
            Code(8, "throw new InvalidOperationException(\"bad thing\");", Error("Error", RuntimeTrace, [RuntimeTrace, "   at Submission#9.<<Initialize>>d__0.MoveNext()", "--- End of stack trace from previous location ---"])),
            Code(9, "display(image); display(svg);", Display(("image/png", Convert.ToBase64String(Png(SKColors.Crimson))), ("text/plain", "image")), Display(("image/svg+xml", svg), ("text/plain", "svg"))),
            Code(10, "var d = display(\"first\"); d.Update(\"final value\");", Display(("text/plain", "final value"))),
            Code(11, "Markdown($\"Result: $\\\\alpha = {0.5}$\")", Display(("text/markdown", "Result: $\\alpha = 0.5$, **done**."))),
        };
        var beta = new[]
        {
            Md("# 02 · Beta\n\nBack to [chapter 01](01-alpha.ipynb#display-math). Good: $e^{i\\pi} + 1 = 0$."),
            Code(1, "Plot.Line(x, y, title: \"second chart\")", Result(1, ("text/html", chartNoLibrary))),
            Md($"A formula KaTeX cannot parse: ${BadFormula}$, and a good one after it: $\\tanh(x)$."),
            Code(2, "throw new Exception(\"boom\");", Error("Exception", "boom", ["\u001b[0;31mException\u001b[0m: boom", "   at \u001b[1mSubmission#3\u001b[22m"])),
        };
        var solutions = new[]
        {
            Md("# 01 · Alpha — solutions\n\nSolutions to the exercises of [01 · Alpha](../01-alpha.ipynb).\n\n## Part 1\n\nThe answer is $42$."),
            Code(1, "var answer = 6 * 7;\nanswer", Result(1, ("text/plain", "42"))),
        };
        var pages = new List<SitePage>();
        void Add(string rel, JsonObject[] cells, bool ok, double seconds, string? failure)
        {
            var source = Path.Combine(src, rel);
            var executed = Path.Combine(run, rel);
            File.WriteAllText(source, Notebook(cells.Select(c => Strip(c)).ToArray()));
            File.WriteAllText(executed, Notebook(cells));
            pages.Add(new SitePage(executed, rel, ok, seconds, failure) { SourcePath = source });
        }
        Add("01-alpha.ipynb", alpha, true, 3.2, null);
        Add("02-beta.ipynb", beta, false, 1.5, "02-beta.ipynb, cell 4, line 1: Exception: boom");
        Add("solutions/01-alpha-solutions.ipynb", solutions, true, 0.8, null);
        return pages;
    }

    public const string RuntimeTrace = "System.InvalidOperationException: bad thing\n   at Submission#9.<<Initialize>>d__0.MoveNext()\n--- End of stack trace from previous location ---";

    // .NET Interactive's first output of a session (abridged): it probes the live kernel and loads require.js from a CDN.
    const string KernelBootstrap = """

        <div>
            <div id='dotnet-interactive-this-cell-$CACHE_BUSTER$' style='display: none'>
                The below script needs to be able to find the current output cell; this is an easy method to get it.
            </div>
            <script type='text/javascript'>
        async function probeAddresses(probingAddresses) { return fetch(`${probingAddresses[0]}discovery`, { method: 'POST' }); }
        function loadDotnetInteractiveApi() { probeAddresses(["http://127.0.0.1:2048/"]); }
        if ((typeof(require) !==  typeof(Function)) || (typeof(require.config) !== typeof(Function))) {
            let require_script = document.createElement('script');
            require_script.setAttribute('src', 'https://cdnjs.cloudflare.com/ajax/libs/require.js/2.3.6/require.min.js');
            require_script.onload = function() { loadDotnetInteractiveApi(); };
            document.getElementsByTagName('head')[0].appendChild(require_script);
        }
            </script>
        </div>
        """;

    const string DniStyle = "<style>\r\n.dni-code-hint {\r\n    font-style: italic;\r\n    overflow: hidden;\r\n    white-space: nowrap;\r\n}\r\n.dni-treeview {\r\n    white-space: nowrap;\r\n}\r\ntable td {\r\n    text-align: start;\r\n}\r\n</style>";

    static byte[] Png(SKColor colour)
    {
        using var bitmap = new SKBitmap(16, 16);
        bitmap.Erase(colour);
        using var image = SKImage.FromBitmap(bitmap);
        using var data = image.Encode(SKEncodedImageFormat.Png, 100);
        return data.ToArray();
    }

    static JsonArray Lines(string s)
    {
        var arr = new JsonArray();
        int start = 0;
        for (int i = 0; i < s.Length; i++)
            if (s[i] == '\n') { arr.Add(s[start..(i + 1)]); start = i + 1; }
        if (start < s.Length) arr.Add(s[start..]);
        return arr;
    }

    static JsonObject Md(string source) => new() { ["cell_type"] = "markdown", ["metadata"] = new JsonObject(), ["source"] = Lines(source) };

    static JsonObject Code(int count, string source, params JsonObject[] outputs) => new()
    {
        ["cell_type"] = "code", ["execution_count"] = count,
        ["metadata"] = new JsonObject { ["polyglot_notebook"] = new JsonObject { ["kernelName"] = "csharp" } },
        ["source"] = Lines(source), ["outputs"] = new JsonArray(outputs.Select(o => (JsonNode)o).ToArray()),
    };

    static JsonObject Strip(JsonObject cell)
    {
        var copy = cell.DeepClone().AsObject();
        if (copy["outputs"] is not null) { copy["outputs"] = new JsonArray(); copy["execution_count"] = null; }
        return copy;
    }

    static JsonObject Bundle(params (string Mime, string Text)[] data)
    {
        var o = new JsonObject();
        foreach (var (mime, text) in data) o[mime] = Lines(text);
        return o;
    }

    static JsonObject Result(int count, params (string, string)[] data) =>
        new() { ["output_type"] = "execute_result", ["execution_count"] = count, ["data"] = Bundle(data), ["metadata"] = new JsonObject() };

    static JsonObject Display(params (string, string)[] data) =>
        new() { ["output_type"] = "display_data", ["data"] = Bundle(data), ["metadata"] = new JsonObject() };

    static JsonObject Stream(string name, string text) => new() { ["output_type"] = "stream", ["name"] = name, ["text"] = Lines(text) };

    static JsonObject Error(string ename, string evalue, string[]? traceback = null) => new()
    {
        ["output_type"] = "error", ["ename"] = ename, ["evalue"] = evalue,
        ["traceback"] = new JsonArray((traceback ?? []).Select(t => (JsonNode)JsonValue.Create(t)!).ToArray()),
    };

    static string Notebook(JsonObject[] cells) => new JsonObject
    {
        ["cells"] = new JsonArray(cells.Select(c => (JsonNode)c.DeepClone()).ToArray()),
        ["metadata"] = new JsonObject
        {
            ["kernelspec"] = new JsonObject { ["display_name"] = ".NET (C#)", ["language"] = "C#", ["name"] = ".net-csharp" },
            ["language_info"] = new JsonObject { ["name"] = "C#", ["file_extension"] = ".cs", ["mimetype"] = "text/x-csharp", ["pygments_lexer"] = "csharp" },
        },
        ["nbformat"] = 4, ["nbformat_minor"] = 5,
    }.ToJsonString();
}
