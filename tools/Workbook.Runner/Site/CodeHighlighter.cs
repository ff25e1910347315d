using System.Text;
using TextMateSharp.Grammars;
using TextMateSharp.Registry;
using TextMateSharp.Themes;

namespace Workbook.Runner.Site;

/// <summary>
/// Highlights code when the site is built with TextMate grammars (the ones VS Code uses) and VS Code's Light+ colours.
/// Each token colour becomes a CSS class (<c>hl-0000ff</c>, plus <c>hl-i</c>/<c>hl-b</c> for italic and bold), and
/// <see cref="Css"/> defines the classes that were used.
/// </summary>
sealed class CodeHighlighter
{
    readonly RegistryOptions _options = new(ThemeName.LightPlus);
    readonly Registry _registry;
    readonly Theme _theme;
    readonly Dictionary<string, IGrammar?> _grammars = new(StringComparer.OrdinalIgnoreCase);
    readonly SortedSet<string> _colours = new(StringComparer.Ordinal);
    readonly int _defaultForeground;

    public CodeHighlighter()
    {
        _registry = new Registry(_options);
        _theme = _registry.GetTheme();
        _defaultForeground = _theme.GetGuiColorDictionary().TryGetValue("editor.foreground", out var fg) ? _theme.GetColorId(fg) : -1;
    }

    /// <summary>The CSS for every token class emitted so far.</summary>
    public string Css => string.Concat(_colours.Select(c => $".hl-{c}{{color:#{c}}}\n")) + ".hl-i{font-style:italic}\n.hl-b{font-weight:bold}\n";

    /// <summary>
    /// The code as a <c>pre</c> block; highlighted when the language has a grammar (Polyglot kernel names such as
    /// <c>csharp</c>, <c>fsharp</c>, <c>pwsh</c>, <c>javascript</c>, <c>html</c>, <c>sql</c> are understood).
    /// </summary>
    public string Highlight(string code, string? language)
    {
        var lang = Normalize(language);
        var grammar = lang is null ? null : Grammar(lang);
        var sb = new StringBuilder();
        sb.Append($"<pre class=\"wb-src\"><code class=\"{(grammar is null ? "wb-plain" : "wb-hl")}\" data-lang=\"{Html.Encode(lang ?? "text")}\">");
        if (grammar is null) sb.Append(Html.Encode(code));
        else AppendTokens(sb, grammar, code);
        return sb.Append("</code></pre>").ToString();
    }

    void AppendTokens(StringBuilder sb, IGrammar grammar, string code)
    {
        IStateStack? state = null;
        var lines = code.Replace("\r\n", "\n").Split('\n');
        for (int l = 0; l < lines.Length; l++)
        {
            var line = lines[l];
            if (l > 0) sb.Append('\n');
            var result = grammar.TokenizeLine(line, state, TimeSpan.FromSeconds(2));
            state = result.RuleStack;
            foreach (var token in result.Tokens)
            {
                int start = Math.Min(token.StartIndex, line.Length), end = Math.Min(token.EndIndex, line.Length);
                if (end <= start) continue;
                var text = Html.Encode(line[start..end]);
                var cls = ClassFor(token.Scopes);
                if (cls is null) sb.Append(text);
                else sb.Append("<span class=\"").Append(cls).Append("\">").Append(text).Append("</span>");
            }
        }
    }

    string? ClassFor(List<string> scopes)
    {
        int foreground = -1, style = -1;
        foreach (var rule in _theme.Match(scopes))
        {
            if (foreground == -1 && rule.foreground > 0) foreground = rule.foreground;
            if (style == -1 && rule.fontStyle > 0) style = (int)rule.fontStyle;
        }
        var classes = new List<string>(3);
        if (foreground > 0 && foreground != _defaultForeground)
        {
            var colour = _theme.GetColor(foreground).TrimStart('#').ToLowerInvariant();
            _colours.Add(colour);
            classes.Add("hl-" + colour);
        }
        if (style > 0 && (style & (int)FontStyle.Italic) != 0) classes.Add("hl-i");
        if (style > 0 && (style & (int)FontStyle.Bold) != 0) classes.Add("hl-b");
        return classes.Count == 0 ? null : string.Join(' ', classes);
    }

    IGrammar? Grammar(string language)
    {
        if (_grammars.TryGetValue(language, out var g)) return g;
        var scope = _options.GetScopeByLanguageId(language);
        return _grammars[language] = scope is null ? null : _registry.LoadGrammar(scope);
    }

    static string? Normalize(string? language) => language?.Trim().ToLowerInvariant() switch
    {
        null or "" => null,
        "c#" or "cs" or "csharp" or ".net-csharp" => "csharp",
        "f#" or "fs" or "fsharp" or ".net-fsharp" => "fsharp",
        "pwsh" or "powershell" or ".net-pwsh" => "powershell",
        "js" or "javascript" => "javascript",
        var other => other,
    };
}
