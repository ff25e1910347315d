using Jint;
using Jint.Runtime;

namespace Workbook.Runner.Site;

/// <summary>
/// Typesets TeX with KaTeX when the site is built, in a JavaScript interpreter (Jint) running the vendored
/// <c>katex.min.js</c>. Pages then need only KaTeX's CSS and fonts, and a formula KaTeX cannot parse is found here,
/// where it can be reported with its notebook and cell, instead of in a reader's browser.
/// </summary>
sealed class MathRenderer
{
    const string Glue = """
        var __wbWarnings = [];
        function __wbRender(tex, display) {
          __wbWarnings = [];
          var html = katex.renderToString(tex, {
            displayMode: display, throwOnError: true, output: 'htmlAndMathml',
            strict: function (code, message) { __wbWarnings.push(code + ': ' + message); return 'ignore'; }
          });
          return JSON.stringify({ html: html, warnings: __wbWarnings });
        }
        """;

    // Loading katex.min.js into the interpreter takes a second or two: one engine serves every build of the process.
    static readonly Lazy<(Jint.Engine Engine, Jint.Native.JsValue Render)> Katex = new(() =>
    {
        // Strict mode off: the minified bundle is written for browsers' sloppy-mode globals.
        var engine = new Jint.Engine(o => o.Strict(false).LimitRecursion(4096).TimeoutInterval(TimeSpan.FromSeconds(30)));
        engine.Execute("var window = this, self = this;");
        engine.Execute(SiteAssets.Text("vendor/katex/katex.min.js"));
        engine.Execute(Glue);
        return (engine, engine.GetValue("__wbRender"));
    });

    readonly Dictionary<(string Tex, bool Display), Rendered> _cache = new();

    /// <summary>How many formulas were typeset (including failures; repeats counted).</summary>
    public int Count { get; private set; }

    /// <summary>A formula's HTML, or a visible error; a parse error or warning is returned for the caller to report.</summary>
    public Rendered Render(string tex, bool display)
    {
        Count++;
        if (_cache.TryGetValue((tex, display), out var hit)) return hit;
        Rendered result;
        try
        {
            var (engine, render) = Katex.Value;
            string json;
            // Jint engines are single-threaded; builds on several threads take turns.
            lock (engine) json = engine.Invoke(render, tex, display).AsString();
            using var doc = JsonDocument.Parse(json);
            var html = doc.RootElement.GetProperty("html").GetString()!;
            var warnings = doc.RootElement.GetProperty("warnings").EnumerateArray().Select(w => w.GetString()!).ToList();
            result = new Rendered(Wrap(html, display, null), null, warnings);
        }
        catch (JavaScriptException e)
        {
            var message = e.Message;
            var shown = $"<span class=\"wb-math-error-tex\">{Html.Encode(tex)}</span> <span class=\"wb-math-error-message\">{Html.Encode(message)}</span>";
            result = new Rendered(Wrap(shown, display, message), message, []);
        }
        _cache[(tex, display)] = result;
        return result;
    }

    static string Wrap(string inner, bool display, string? error)
    {
        var tag = display ? "div" : "span";
        var cls = "wb-math" + (display ? " wb-math-display" : "") + (error is null ? "" : " wb-math-error");
        var title = error is null ? "" : $" title=\"{Html.Encode(error)}\"";
        return $"<{tag} class=\"{cls}\"{title}>{inner}</{tag}>";
    }

    /// <summary>A typeset formula: its HTML, KaTeX's parse error if it failed, and strict-mode warnings.</summary>
    public sealed record Rendered(string Html, string? Error, IReadOnlyList<string> Warnings);
}
