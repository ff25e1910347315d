using System.Text.Json.Nodes;

namespace Workbook.Runner.Site;

/// <summary>The parts of an nbformat-4 notebook that a page shows, read with System.Text.Json.</summary>
sealed class NotebookFile
{
    NotebookFile(List<NotebookCell> cells, string? language)
    {
        Cells = cells;
        Language = language;
    }

    /// <summary>The cells in order.</summary>
    public IReadOnlyList<NotebookCell> Cells { get; }

    /// <summary>The notebook's default language (<c>metadata.language_info.name</c> or the Polyglot default kernel).</summary>
    public string? Language { get; }

    /// <summary>Reads a notebook; throws <see cref="InvalidDataException"/> naming the file when it is not nbformat 4.</summary>
    public static NotebookFile Load(string path)
    {
        JsonNode? root;
        try { root = JsonNode.Parse(File.ReadAllText(path), documentOptions: new JsonDocumentOptions { MaxDepth = 256 }); }
        catch (JsonException e) { throw new InvalidDataException($"{path} is not valid JSON: {e.Message}", e); }
        if (root is not JsonObject nb) throw new InvalidDataException($"{path}: expected a JSON object at the top level.");
        if (nb["nbformat"]?.GetValueKind() != JsonValueKind.Number || nb["nbformat"]!.GetValue<int>() != 4)
            throw new InvalidDataException($"{path}: expected nbformat 4, found {nb["nbformat"]?.ToJsonString() ?? "no nbformat field"}.");
        if (nb["cells"] is not JsonArray cells) throw new InvalidDataException($"{path}: expected a 'cells' array.");
        var meta = nb["metadata"] as JsonObject;
        var language = Text(meta?["polyglot_notebook"]?["defaultKernelName"]) is { Length: > 0 } k ? k : Text(meta?["language_info"]?["name"]);
        var list = new List<NotebookCell>();
        foreach (var c in cells.OfType<JsonObject>())
        {
            var type = Text(c["cell_type"]) ?? "";
            var outputs = (c["outputs"] as JsonArray)?.OfType<JsonObject>().ToList() ?? [];
            var kernel = Text(c["metadata"]?["polyglot_notebook"]?["kernelName"]) ?? Text(c["metadata"]?["dotnet_interactive"]?["language"]);
            int? count = c["execution_count"] is JsonValue v && v.GetValueKind() == JsonValueKind.Number ? v.GetValue<int>() : null;
            list.Add(new NotebookCell(type, Text(c["source"]) ?? "", outputs, count, kernel, c["attachments"] as JsonObject));
        }
        return new NotebookFile(list, language);
    }

    /// <summary>nbformat's multiline string: a string or an array of strings to concatenate.</summary>
    public static string? Text(JsonNode? node) => node switch
    {
        null => null,
        JsonArray a => string.Concat(a.Select(x => x is JsonValue s && s.GetValueKind() == JsonValueKind.String ? s.GetValue<string>() : x?.ToJsonString())),
        JsonValue s when s.GetValueKind() == JsonValueKind.String => s.GetValue<string>(),
        _ => node.ToJsonString(),
    };
}

/// <summary>One cell: its type, source, outputs and, for code, the kernel that ran it.</summary>
sealed record NotebookCell(string Type, string Source, IReadOnlyList<JsonObject> Outputs, int? ExecutionCount, string? Kernel, JsonObject? Attachments);
