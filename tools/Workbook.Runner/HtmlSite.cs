using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace Workbook.Runner;

/// <summary>
/// A static, offline HTML site of executed notebooks: an index with each notebook's status and time, and a page
/// per notebook with its markdown, code and outputs. Chart outputs carry plotly.js themselves (see the library's
/// PlotlyHtml), so the pages need nothing from the network.
/// </summary>
static partial class HtmlSite
{
    const string Style = """
        <style>
        body { font-family: system-ui, sans-serif; max-width: 980px; margin: 2em auto; padding: 0 1em; color: #222; line-height: 1.5; }
        pre { background: #f6f8fa; padding: .7em; overflow-x: auto; border-radius: 4px; font-size: 88%; }
        pre.code { border-left: 3px solid #4a8; }
        pre.error { background: #fdecea; border-left: 3px solid #c33; }
        .out { margin: .3em 0 1.2em 1em; overflow-x: auto; }
        .count { color: #999; font-size: 80%; }
        table.index td, table.index th { padding: 3px 12px; text-align: left; }
        .ok { color: #272; } .fail { color: #b22; }
        code { background: #f0f0f0; padding: 0 3px; border-radius: 3px; }
        </style>
        """;

    public static void Write(string outDir, IReadOnlyList<JsonObject> reports)
    {
        var site = Path.Combine(outDir, "site");
        Directory.CreateDirectory(site);
        var index = new StringBuilder($"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>Workbook</title>{Style}</head><body>");
        index.Append("<h1>Workbook: executed notebooks</h1><table class=\"index\"><tr><th>Notebook</th><th>Status</th><th>Time</th></tr>");
        foreach (var r in reports)
        {
            var rel = r["relative"]!.GetValue<string>();
            var page = Path.ChangeExtension(rel, ".html").Replace(Path.DirectorySeparatorChar, '_');
            bool ok = r["ok"]?.GetValue<bool>() == true;
            var executed = r["executed"]?.GetValue<string>();
            if (executed is not null && File.Exists(executed))
                File.WriteAllText(Path.Combine(site, page), Page(JsonNode.Parse(File.ReadAllText(executed))!.AsObject(), rel));
            index.Append($"<tr><td><a href=\"{page}\">{Enc(rel)}</a></td><td class=\"{(ok ? "ok" : "fail")}\">{(ok ? "ok" : Enc("failed: " + r["describe"]))}</td><td>{r["seconds"]} s</td></tr>");
        }
        index.Append("</table></body></html>");
        File.WriteAllText(Path.Combine(site, "index.html"), index.ToString());
    }

    static string Join(JsonNode? node) => node switch
    {
        null => "",
        JsonArray a => string.Concat(a.Select(x => x?.GetValue<string>() ?? "")),
        _ => node.GetValue<string>(),
    };

    static string Page(JsonObject doc, string title)
    {
        var sb = new StringBuilder($"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{Enc(title)}</title>{Style}</head><body>");
        sb.Append("<p><a href=\"index.html\">← all notebooks</a></p>");
        foreach (var cell in (doc["cells"] as JsonArray ?? new JsonArray()).OfType<JsonObject>())
        {
            var type = cell["cell_type"]?.GetValue<string>();
            var source = Join(cell["source"]);
            if (type == "markdown") { sb.Append(Markdown(source)); continue; }
            if (type != "code") continue;
            var count = cell["execution_count"]?.ToString() ?? " ";
            sb.Append($"<div class=\"count\">[{count}]</div><pre class=\"code\">{Enc(source)}</pre>");
            foreach (var o in (cell["outputs"] as JsonArray ?? new JsonArray()).OfType<JsonObject>())
                sb.Append("<div class=\"out\">").Append(Output(o)).Append("</div>");
        }
        return sb.Append("</body></html>").ToString();
    }

    static string Output(JsonObject o)
    {
        switch (o["output_type"]?.GetValue<string>())
        {
            case "stream":
                return $"<pre>{Enc(Join(o["text"]))}</pre>";
            case "error":
                var tb = (o["traceback"] as JsonArray ?? new JsonArray()).Select(t => t?.GetValue<string>() ?? "");
                return $"<pre class=\"error\">{Enc(string.Join("\n", tb))}</pre>";
            default:
                var data = o["data"] as JsonObject;
                if (data is null) return "";
                if (data["text/html"] is { } html) return Join(html);
                if (data["image/png"] is { } png) return $"<img src=\"data:image/png;base64,{png.GetValue<string>().Trim()}\">";
                if (data["image/svg+xml"] is { } svg) return Join(svg);
                if (data["text/markdown"] is { } md) return Markdown(Join(md));
                return data["text/plain"] is { } text ? $"<pre>{Enc(Join(text))}</pre>" : "";
        }
    }

    static string Enc(string s) => WebUtility.HtmlEncode(s);

    [GeneratedRegex(@"`([^`]+)`")] private static partial Regex InlineCode();
    [GeneratedRegex(@"\*\*(.+?)\*\*")] private static partial Regex Bold();
    [GeneratedRegex(@"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])")] private static partial Regex Italic();
    [GeneratedRegex(@"\[([^\]]+)\]\(([^)\s]+)\)")] private static partial Regex Link();
    [GeneratedRegex(@"^(#{1,6})\s+(.*)$")] private static partial Regex Heading();
    [GeneratedRegex(@"^\s*([-*+]|\d+\.)\s+(.*)$")] private static partial Regex ListItem();

    /// <summary>A small Markdown subset: headings, paragraphs, lists, fenced code, tables, quotes, inline code, emphasis, links. Math stays as TeX text.</summary>
    public static string Markdown(string md)
    {
        var lines = md.Replace("\r\n", "\n").Split('\n');
        var sb = new StringBuilder();
        var para = new List<string>();
        string? listTag = null;
        void FlushPara()
        {
            if (para.Count > 0) sb.Append("<p>").Append(Inline(string.Join(" ", para))).Append("</p>\n");
            para.Clear();
        }
        void CloseList()
        {
            if (listTag is not null) sb.Append($"</{listTag}>\n");
            listTag = null;
        }
        for (int i = 0; i < lines.Length; i++)
        {
            var line = lines[i];
            if (line.TrimStart().StartsWith("```", StringComparison.Ordinal))
            {
                FlushPara(); CloseList();
                var code = new List<string>();
                for (i++; i < lines.Length && !lines[i].TrimStart().StartsWith("```", StringComparison.Ordinal); i++) code.Add(lines[i]);
                sb.Append("<pre>").Append(Enc(string.Join("\n", code))).Append("</pre>\n");
                continue;
            }
            if (string.IsNullOrWhiteSpace(line)) { FlushPara(); CloseList(); continue; }
            Match m;
            if ((m = Heading().Match(line)).Success)
            {
                FlushPara(); CloseList();
                int level = m.Groups[1].Length;
                sb.Append($"<h{level}>{Inline(m.Groups[2].Value)}</h{level}>\n");
                continue;
            }
            if (line.TrimStart().StartsWith('|') && i + 1 < lines.Length && lines[i + 1].Contains("---"))
            {
                FlushPara(); CloseList();
                sb.Append("<table class=\"index\"><tr>");
                foreach (var h in Cells(line)) sb.Append("<th>").Append(Inline(h)).Append("</th>");
                sb.Append("</tr>");
                for (i += 2; i < lines.Length && lines[i].TrimStart().StartsWith('|'); i++)
                {
                    sb.Append("<tr>");
                    foreach (var c in Cells(lines[i])) sb.Append("<td>").Append(Inline(c)).Append("</td>");
                    sb.Append("</tr>");
                }
                i--;
                sb.Append("</table>\n");
                continue;
            }
            if ((m = ListItem().Match(line)).Success)
            {
                FlushPara();
                var tag = char.IsDigit(m.Groups[1].Value[0]) ? "ol" : "ul";
                if (listTag != tag) { CloseList(); sb.Append($"<{tag}>"); listTag = tag; }
                sb.Append("<li>").Append(Inline(m.Groups[2].Value)).Append("</li>\n");
                continue;
            }
            if (line.StartsWith('>')) { FlushPara(); CloseList(); sb.Append("<blockquote>").Append(Inline(line.TrimStart('>', ' '))).Append("</blockquote>\n"); continue; }
            if (listTag is not null && line.StartsWith("  ", StringComparison.Ordinal)) { sb.Append(Inline(line.Trim())).Append('\n'); continue; }
            CloseList();
            para.Add(line.Trim());
        }
        FlushPara(); CloseList();
        return sb.ToString();
    }

    static IEnumerable<string> Cells(string row) => row.Trim().Trim('|').Split('|').Select(c => c.Trim());

    static string Inline(string text)
    {
        var codes = new List<string>();
        text = InlineCode().Replace(text, m => { codes.Add(m.Groups[1].Value); return $"\u0001{codes.Count - 1}\u0001"; });
        text = Enc(text);
        text = Bold().Replace(text, "<strong>$1</strong>");
        text = Italic().Replace(text, "<em>$1</em>");
        text = Link().Replace(text, "<a href=\"$2\">$1</a>");
        return Regex.Replace(text, "\u0001(\\d+)\u0001", m => $"<code>{Enc(codes[int.Parse(m.Groups[1].Value)])}</code>");
    }
}
