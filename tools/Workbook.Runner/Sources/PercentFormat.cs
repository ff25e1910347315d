using System.Security.Cryptography;
using System.Text;
using Microsoft.DotNet.Interactive.Documents;

namespace Workbook.Runner.Sources;

/// <summary>
/// Jupytext's "percent" format for C# notebooks: the text source of every notebook. A YAML header in
/// <c>//</c> comments names the kernelspec; each cell starts with a marker line, <c>// %%</c> for C# and
/// <c>// %% [markdown]</c> for Markdown (whose lines are commented with <c>// </c>); cell metadata follows the
/// marker as <c>key=JSON</c> pairs, e.g. <c>// %% tags=["errata-6"]</c>. Jupytext reads and writes the same files.
/// The notebook metadata (kernelspec, language, Polyglot's kernel list) is the workbook's standard one, written
/// here once.
/// </summary>
public static class PercentFormat
{
    const string Marker = "// %%";
    const string MarkdownTag = "[markdown]";

    /// <summary>The header every source starts with (jupytext's YAML front matter, commented).</summary>
    public const string Header = """
        // ---
        // jupyter:
        //   jupytext:
        //     text_representation:
        //       extension: .cs
        //       format_name: percent
        //   kernelspec:
        //     display_name: .NET (C#)
        //     language: C#
        //     name: .net-csharp
        // ---
        """;

    /// <summary>Cell metadata keys the notebook writer owns (kernel names, timing), never kept in the source.</summary>
    static readonly HashSet<string> Generated = new(StringComparer.Ordinal) { "dotnet_interactive", "polyglot_notebook", "execution" };

    /// <summary>Parses a source into a notebook without outputs.</summary>
    /// <param name="text">The source text.</param>
    /// <param name="path">Its file name, for error messages.</param>
    /// <exception cref="FormatException">The text is not a percent-format C# notebook; the message names the line.</exception>
    public static InteractiveDocument Parse(string text, string path)
    {
        var lines = text.Replace("\r\n", "\n").Split('\n');
        var header = Header.Replace("\r\n", "\n").Split('\n');
        for (int i = 0; i < header.Length; i++)
            if (i >= lines.Length || lines[i] != header[i])
                throw new FormatException($"{path}, line {i + 1}: expected the percent-format header line '{header[i]}', found '{(i < lines.Length ? lines[i] : "end of file")}'.");

        var doc = new InteractiveDocument();
        foreach (var (k, v) in StandardMetadata()) doc.Metadata[k] = v;
        InteractiveDocumentElement? cell = null;
        var body = new List<string>();
        int cellLine = 0;
        void Flush()
        {
            if (cell is null) return;
            while (body.Count > 0 && body[^1].Length == 0) body.RemoveAt(body.Count - 1);
            while (body.Count > 0 && body[0].Length == 0) body.RemoveAt(0);
            if (cell.KernelName == "markdown")
                for (int j = 0; j < body.Count; j++)
                    body[j] = body[j] == "//" ? "" : body[j].StartsWith("// ", StringComparison.Ordinal) ? body[j][3..]
                        : throw new FormatException($"{path}: a Markdown line of the cell at line {cellLine} is not commented with '// ': '{body[j]}'.");
            cell.Contents = string.Join("\n", body);
            cell.Id = CellId(doc.Elements.Count, cell.KernelName!, cell.Contents);
            doc.Elements.Add(cell);
            body.Clear();
        }
        for (int i = header.Length; i < lines.Length; i++)
        {
            var line = lines[i];
            if (line == Marker || line.StartsWith(Marker + " ", StringComparison.Ordinal))
            {
                Flush();
                cellLine = i + 1;
                var rest = line[Marker.Length..].Trim();
                bool markdown = rest.StartsWith(MarkdownTag, StringComparison.Ordinal);
                if (markdown) rest = rest[MarkdownTag.Length..].Trim();
                cell = new InteractiveDocumentElement("", markdown ? "markdown" : "csharp")
                {
                    Metadata = ParseAttributes(rest, path, i + 1),
                };
                continue;
            }
            if (cell is null)
            {
                if (line.Length == 0) continue;
                throw new FormatException($"{path}, line {i + 1}: text before the first '{Marker}' cell marker: '{line}'.");
            }
            body.Add(line);
        }
        Flush();
        return doc;
    }

    /// <summary>Writes a notebook as a source: its cells, their metadata (but not the generated keys), no outputs.</summary>
    public static string Write(InteractiveDocument doc)
    {
        var sb = new StringBuilder(Header.Replace("\r\n", "\n")).Append('\n');
        foreach (var cell in doc.Elements)
        {
            bool markdown = cell.KernelName == "markdown";
            sb.Append('\n').Append(Marker);
            if (markdown) sb.Append(' ').Append(MarkdownTag);
            foreach (var (k, v) in (cell.Metadata ?? new Dictionary<string, object>()).Where(kv => !Generated.Contains(kv.Key)).OrderBy(kv => kv.Key, StringComparer.Ordinal))
                sb.Append(' ').Append(k).Append('=').Append(JsonSerializer.Serialize(v));
            sb.Append('\n');
            var contents = cell.Contents.Replace("\r\n", "\n").Trim('\n');
            if (contents.Length == 0) continue;
            foreach (var line in contents.Split('\n'))
                sb.Append(markdown ? (line.Length == 0 ? "//" : "// " + line) : line).Append('\n');
        }
        return sb.ToString();
    }

    /// <summary>The notebook-level metadata every workbook notebook carries.</summary>
    public static Dictionary<string, object> StandardMetadata() => new()
    {
        ["kernelspec"] = new Dictionary<string, object> { ["display_name"] = ".NET (C#)", ["language"] = "C#", ["name"] = ".net-csharp" },
        ["language_info"] = new Dictionary<string, object>
        {
            ["file_extension"] = ".cs", ["mimetype"] = "text/x-csharp", ["name"] = "C#", ["pygments_lexer"] = "csharp", ["version"] = "12.0",
        },
        ["polyglot_notebook"] = new Dictionary<string, object>
        {
            ["kernelInfo"] = new Dictionary<string, object>
            {
                ["defaultKernelName"] = "csharp",
                ["items"] = new List<object> { new Dictionary<string, object> { ["aliases"] = new List<object>(), ["name"] = "csharp" } },
            },
        },
    };

    /// <summary>A stable cell id: the first 8 hex digits of SHA-1 over position, kind and text.</summary>
    static string CellId(int index, string kind, string contents) =>
        Convert.ToHexStringLower(SHA1.HashData(Encoding.UTF8.GetBytes($"{index}\n{kind}\n{contents}")))[..8];

    /// <summary>Parses <c>key=JSON key2=JSON …</c> after a cell marker.</summary>
    static Dictionary<string, object>? ParseAttributes(string text, string path, int line)
    {
        if (text.Length == 0) return null;
        var result = new Dictionary<string, object>(StringComparer.Ordinal);
        var bytes = Encoding.UTF8.GetBytes(text);
        int pos = 0;
        while (pos < bytes.Length)
        {
            while (pos < bytes.Length && bytes[pos] == (byte)' ') pos++;
            if (pos >= bytes.Length) break;
            int eq = Array.IndexOf(bytes, (byte)'=', pos);
            if (eq <= pos) throw new FormatException($"{path}, line {line}: expected key=JSON after the cell marker, found '{Encoding.UTF8.GetString(bytes, pos, bytes.Length - pos)}'.");
            var key = Encoding.UTF8.GetString(bytes, pos, eq - pos);
            var reader = new Utf8JsonReader(bytes.AsSpan(eq + 1), new JsonReaderOptions { AllowMultipleValues = true });
            try
            {
                if (!reader.Read()) throw new JsonException("no value");
                reader.Skip();
            }
            catch (JsonException e)
            {
                throw new FormatException($"{path}, line {line}: the value of '{key}' is not JSON ({e.Message}).", e);
            }
            int length = (int)reader.BytesConsumed;
            using var value = JsonDocument.Parse(bytes.AsMemory(eq + 1, length));
            result[key] = ToPlain(value.RootElement);
            pos = eq + 1 + length;
        }
        return result;
    }

    /// <summary>JSON as the plain dictionaries, lists, strings, numbers and booleans the notebook writer serializes.</summary>
    static object ToPlain(JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.Object => e.EnumerateObject().ToDictionary(p => p.Name, p => ToPlain(p.Value)),
        JsonValueKind.Array => e.EnumerateArray().Select(ToPlain).ToList(),
        JsonValueKind.String => e.GetString()!,
        JsonValueKind.Number => e.TryGetInt64(out var l) ? l : e.GetDouble(),
        JsonValueKind.True => true,
        JsonValueKind.False => false,
        _ => throw new FormatException($"null is not a cell metadata value: '{e.GetRawText()}'."),
    };
}
