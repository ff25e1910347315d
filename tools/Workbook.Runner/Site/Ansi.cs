using System.Text;

namespace Workbook.Runner.Site;

/// <summary>Terminal text as Jupyter shows it: carriage returns and backspaces applied, ANSI colours as spans.</summary>
static partial class Ansi
{
    static readonly string[] Names = ["black", "red", "green", "yellow", "blue", "magenta", "cyan", "white"];

    /// <summary>Applies <c>\r</c> (back to the line's start, overwriting) and <c>\b</c> (one back), as a terminal would.</summary>
    public static string ApplyControlCharacters(string text)
    {
        if (text.IndexOfAny(['\r', '\b']) < 0) return text;
        var lines = text.Replace("\r\n", "\n").Split('\n');
        var sb = new StringBuilder();
        var line = new StringBuilder();
        for (int l = 0; l < lines.Length; l++)
        {
            if (l > 0) sb.Append('\n');
            line.Clear();
            int cursor = 0;
            foreach (var ch in lines[l])
            {
                switch (ch)
                {
                    case '\r': cursor = 0; break;
                    case '\b': cursor = Math.Max(0, cursor - 1); break;
                    default:
                        if (cursor < line.Length) line[cursor] = ch; else line.Append(ch);
                        cursor++;
                        break;
                }
            }
            sb.Append(line);
        }
        return sb.ToString();
    }

    /// <summary>The text without escape sequences.</summary>
    public static string Strip(string text) => text.Contains('\u001b') ? EscapeSequence().Replace(text, "") : text;

    [System.Text.RegularExpressions.GeneratedRegex("\u001b(?:\\[[0-9;?]*[A-Za-z]|.)?")]
    private static partial System.Text.RegularExpressions.Regex EscapeSequence();

    /// <summary>HTML-encodes terminal text, turning SGR colour and bold codes into spans and dropping other escape sequences.</summary>
    public static string ToHtml(string text)
    {
        text = ApplyControlCharacters(text);
        if (!text.Contains('\u001b')) return Html.Encode(text);
        var sb = new StringBuilder();
        string? fg = null, bg = null;
        bool bold = false, underline = false, open = false;
        int i = 0;
        while (i < text.Length)
        {
            int esc = text.IndexOf('\u001b', i);
            if (esc < 0) esc = text.Length;
            if (esc > i) sb.Append(Html.Encode(text[i..esc]));
            if (esc >= text.Length) break;
            // ESC [ params letter; anything else after ESC is dropped with the ESC.
            int j = esc + 1;
            if (j < text.Length && text[j] == '[')
            {
                j++;
                int p = j;
                while (j < text.Length && (char.IsDigit(text[j]) || text[j] == ';' || text[j] == '?')) j++;
                if (j < text.Length && text[j] == 'm')
                {
                    Apply(text[p..j], ref fg, ref bg, ref bold, ref underline);
                    if (open) { sb.Append("</span>"); open = false; }
                    var style = Style(fg, bg, bold, underline);
                    if (style.Length > 0) { sb.Append("<span style=\"").Append(style).Append("\">"); open = true; }
                }
                i = Math.Min(j + 1, text.Length);
            }
            else i = Math.Min(j + 1, text.Length);
        }
        if (open) sb.Append("</span>");
        return sb.ToString();
    }

    static void Apply(string parameters, ref string? fg, ref string? bg, ref bool bold, ref bool underline)
    {
        var codes = parameters.Length == 0 ? [0] : parameters.Split(';').Select(s => int.TryParse(s, out var v) ? v : 0).ToArray();
        for (int k = 0; k < codes.Length; k++)
        {
            int c = codes[k];
            switch (c)
            {
                case 0: fg = bg = null; bold = underline = false; break;
                case 1: bold = true; break;
                case 4: underline = true; break;
                case 22: bold = false; break;
                case 24: underline = false; break;
                case >= 30 and <= 37: fg = Colour(c - 30, false); break;
                case >= 90 and <= 97: fg = Colour(c - 90, true); break;
                case 39: fg = null; break;
                case >= 40 and <= 47: bg = Colour(c - 40, false); break;
                case >= 100 and <= 107: bg = Colour(c - 100, true); break;
                case 49: bg = null; break;
                case 38 or 48:
                    string? extended = null;
                    if (k + 2 < codes.Length && codes[k + 1] == 5) { extended = Xterm(codes[k + 2]); k += 2; }
                    else if (k + 4 < codes.Length && codes[k + 1] == 2) { extended = $"rgb({codes[k + 2]},{codes[k + 3]},{codes[k + 4]})"; k += 4; }
                    if (c == 38) fg = extended; else bg = extended;
                    break;
            }
        }
    }

    static string Colour(int index, bool bright) => $"var(--ansi-{(bright ? "bright-" : "")}{Names[index]})";

    static string Xterm(int n)
    {
        if (n < 8) return Colour(n, false);
        if (n < 16) return Colour(n - 8, true);
        if (n < 232)
        {
            n -= 16;
            int[] levels = [0, 95, 135, 175, 215, 255];
            return $"rgb({levels[n / 36]},{levels[n / 6 % 6]},{levels[n % 6]})";
        }
        int grey = 8 + (n - 232) * 10;
        return $"rgb({grey},{grey},{grey})";
    }

    static string Style(string? fg, string? bg, bool bold, bool underline)
    {
        var sb = new StringBuilder();
        if (fg is not null) sb.Append("color:").Append(fg).Append(';');
        if (bg is not null) sb.Append("background:").Append(bg).Append(';');
        if (bold) sb.Append("font-weight:bold;");
        if (underline) sb.Append("text-decoration:underline;");
        return sb.ToString();
    }
}
