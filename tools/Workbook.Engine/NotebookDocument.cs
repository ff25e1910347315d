using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Workbook.Engine;

/// <summary>One cell of a notebook.</summary>
public sealed class NotebookCell
{
    internal NotebookCell(JsonObject json, int index) { Json = json; Index = index; }

    /// <summary>The cell's JSON, edited in place when outputs are written.</summary>
    public JsonObject Json { get; }

    /// <summary>Zero-based position in the notebook.</summary>
    public int Index { get; }

    /// <summary>"code", "markdown" or "raw".</summary>
    public string CellType => Json["cell_type"]?.GetValue<string>() ?? "raw";

    /// <summary>The cell's source text (nbformat stores it as a string or a list of lines).</summary>
    public string Source => NotebookDocument.JoinSource(Json["source"]);

    /// <summary>The cell's language: from the cell metadata (Polyglot or dotnet_interactive), a <c>#!lang</c> first line, else the notebook default.</summary>
    public string Language(string notebookDefault)
    {
        var meta = Json["metadata"];
        var lang = meta?["polyglot_notebook"]?["kernelName"]?.GetValue<string>()
                   ?? meta?["dotnet_interactive"]?["language"]?.GetValue<string>();
        var first = Source.Split('\n', 2)[0].Trim();
        if (first.StartsWith("#!", StringComparison.Ordinal) && CellDirectives.LanguageMagic(first[2..]) is { } magic) lang = magic;
        return CellDirectives.NormaliseLanguage(lang ?? notebookDefault);
    }
}

/// <summary>
/// An nbformat 4 notebook as JSON, read and written without losing fields this code does not know. Executing a
/// notebook fills in cell outputs, execution counts and per-cell timing, as Jupyter's own tools do.
/// </summary>
public sealed class NotebookDocument
{
    NotebookDocument(string path, JsonObject root)
    {
        Path = path;
        Root = root;
        var cells = root["cells"] as JsonArray ?? throw new InvalidDataException($"'{path}' has no 'cells' array: is it an .ipynb notebook?");
        Cells = cells.Select((c, i) => new NotebookCell(c as JsonObject ?? throw new InvalidDataException($"'{path}': cell {i + 1} is not an object."), i)).ToList();
    }

    /// <summary>Where the notebook was read from.</summary>
    public string Path { get; }

    /// <summary>The whole notebook JSON.</summary>
    public JsonObject Root { get; }

    /// <summary>The cells in order.</summary>
    public IReadOnlyList<NotebookCell> Cells { get; }

    /// <summary>The notebook's default cell language (Polyglot metadata, then kernelspec language), normalised, e.g. "csharp".</summary>
    public string DefaultLanguage
    {
        get
        {
            var meta = Root["metadata"];
            var lang = meta?["polyglot_notebook"]?["kernelInfo"]?["defaultKernelName"]?.GetValue<string>()
                       ?? meta?["kernelspec"]?["language"]?.GetValue<string>()
                       ?? meta?["language_info"]?["name"]?.GetValue<string>() ?? "csharp";
            return CellDirectives.NormaliseLanguage(lang);
        }
    }

    /// <summary>The kernelspec name, e.g. ".net-csharp".</summary>
    public string? KernelName => Root["metadata"]?["kernelspec"]?["name"]?.GetValue<string>();

    /// <summary>Reads a notebook file.</summary>
    /// <exception cref="FileNotFoundException">No such file.</exception>
    /// <exception cref="InvalidDataException">Not JSON, or not an nbformat 4 notebook.</exception>
    public static NotebookDocument Load(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"Notebook not found: '{path}'.", path);
        JsonNode? node;
        try { node = JsonNode.Parse(File.ReadAllText(path)); }
        catch (JsonException e) { throw new InvalidDataException($"'{path}' is not valid JSON: {e.Message}", e); }
        if (node is not JsonObject root) throw new InvalidDataException($"'{path}' is not a notebook (top level is not an object).");
        var major = root["nbformat"]?.GetValue<int>() ?? 0;
        if (major != 4) throw new InvalidDataException($"'{path}' is nbformat {major}; only nbformat 4 is supported.");
        return new NotebookDocument(System.IO.Path.GetFullPath(path), root);
    }

    /// <summary>Number of outputs stored in code cells (committed notebooks should have none).</summary>
    public int OutputCount => Cells.Where(c => c.CellType == "code").Sum(c => (c.Json["outputs"] as JsonArray)?.Count ?? 0);

    /// <summary>Removes every output and execution count (a fresh run starts from a clean notebook).</summary>
    public void ClearOutputs()
    {
        foreach (var c in Cells.Where(c => c.CellType == "code"))
        {
            c.Json["outputs"] = new JsonArray();
            c.Json["execution_count"] = null;
        }
    }

    /// <summary>Writes the notebook as nbformat 4 JSON (one-space indent, as Jupyter writes it).</summary>
    public void Save(string path)
    {
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path))!);
        var json = Root.ToJsonString(new JsonSerializerOptions { WriteIndented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping });
        File.WriteAllText(path, json + "\n", new UTF8Encoding(false));
    }

    /// <summary>nbformat multiline strings: a string or a list of strings.</summary>
    public static string JoinSource(JsonNode? node) => node switch
    {
        null => "",
        JsonArray a => string.Concat(a.Select(x => x?.GetValue<string>() ?? "")),
        _ => node.GetValue<string>(),
    };

    /// <summary>Splits text into nbformat's list-of-lines form (each line keeps its newline).</summary>
    public static JsonArray SplitLines(string text)
    {
        var arr = new JsonArray();
        int start = 0;
        for (int i = 0; i < text.Length; i++)
            if (text[i] == '\n') { arr.Add(text[start..(i + 1)]); start = i + 1; }
        if (start < text.Length) arr.Add(text[start..]);
        return arr;
    }
}
