using System.Text;

namespace Workbook.Runner.Site;

/// <summary>HTML escaping of the five markup characters only; other characters stay as they are (the pages are UTF-8).</summary>
static class Html
{
    /// <summary>Escapes <c>&amp; &lt; &gt; " '</c>.</summary>
    public static string Encode(string? text)
    {
        if (string.IsNullOrEmpty(text)) return "";
        if (text.AsSpan().IndexOfAny("&<>\"'") < 0) return text;
        var sb = new StringBuilder(text.Length + 16);
        foreach (var c in text)
        {
            sb.Append(c switch
            {
                '&' => "&amp;",
                '<' => "&lt;",
                '>' => "&gt;",
                '"' => "&quot;",
                '\'' => "&#39;",
                _ => null,
            } ?? c.ToString());
        }
        return sb.ToString();
    }
}
