using Microsoft.DotNet.Interactive.Documents;
using Microsoft.DotNet.Interactive.Events;
using Microsoft.DotNet.Interactive.Formatting;

namespace Workbook.Runner.Execution;

/// <summary>
/// Turns a notebook's kernel events into nbformat outputs, the way a notebook front end shows them: standard
/// output and error as streams, <c>display(…)</c> as display data (replaced in place by a later <c>.Update(…)</c>,
/// whichever cell it comes from), the trailing expression as the execute result, and a failure as an error.
/// </summary>
sealed class CellOutputs
{
    readonly Dictionary<string, DisplayElement> _displays = new(StringComparer.Ordinal);
    readonly object _gate = new();
    InteractiveDocumentElement? _cell;
    int _executionCount;

    /// <summary>Directs the following events to <paramref name="cell"/>, whose outputs are cleared.</summary>
    public void Begin(InteractiveDocumentElement cell, int executionCount)
    {
        lock (_gate)
        {
            _cell = cell;
            _executionCount = executionCount;
            cell.Outputs.Clear();
            cell.ExecutionOrder = executionCount;
        }
    }

    /// <summary>Error diagnostics of the running cell, in order (for the failing line).</summary>
    public List<Microsoft.DotNet.Interactive.Diagnostic> Errors { get; } = new();

    /// <summary>Adds what <paramref name="ev"/> shows to the current cell (or updates an earlier display).</summary>
    public void Add(KernelEvent ev)
    {
        lock (_gate)
        {
            switch (ev)
            {
                case DisplayedValueUpdated u when u.ValueId is { } id && _displays.TryGetValue(id, out var shown):
                    shown.Data.Clear();
                    foreach (var (k, v) in Data(u.FormattedValues)) shown.Data[k] = v;
                    break;
                case DisplayedValueUpdated u:
                    // An update of a display this notebook never showed: show it, as a front end would.
                    Display(u.FormattedValues, u.ValueId);
                    break;
                case DisplayedValueProduced d:
                    Display(d.FormattedValues, d.ValueId);
                    break;
                case ReturnValueProduced r when _cell is not null:
                    var result = new ReturnValueElement { ExecutionOrder = _executionCount };
                    foreach (var (k, v) in Data(r.FormattedValues)) result.Data[k] = v;
                    if (result.Data.Count > 0) _cell.Outputs.Add(result);
                    break;
                case StandardOutputValueProduced o:
                    Stream("stdout", o.FormattedValues);
                    break;
                case StandardErrorValueProduced e:
                    Stream("stderr", e.FormattedValues);
                    break;
                case ErrorProduced e:
                    Stream("stderr", e.FormattedValues);
                    break;
                case DiagnosticsProduced diag:
                    Errors.AddRange(diag.Diagnostics.Where(x => x.Severity == Microsoft.CodeAnalysis.DiagnosticSeverity.Error));
                    break;
            }
        }
    }

    /// <summary>Adds an error output to the current cell.</summary>
    public void Fail(CellFailure failure)
    {
        lock (_gate)
            _cell?.Outputs.Add(new ErrorElement(failure.Message, failure.Name, failure.Traceback.ToArray()));
    }

    void Display(IReadOnlyCollection<FormattedValue> values, string? valueId)
    {
        if (_cell is null) return;
        var data = Data(values);
        if (data.Count == 0) return;
        var element = new DisplayElement(data);
        _cell.Outputs.Add(element);
        if (valueId is not null) _displays[valueId] = element;
    }

    void Stream(string name, IReadOnlyCollection<FormattedValue> values)
    {
        if (_cell is null) return;
        var text = values.FirstOrDefault(v => v.MimeType == PlainTextFormatter.MimeType)?.Value ?? values.FirstOrDefault()?.Value ?? "";
        if (text.Length == 0) return;
        // Consecutive writes to one stream are one output, as in Jupyter.
        if (_cell.Outputs.Count > 0 && _cell.Outputs[^1] is TextElement last && last.Name == name)
            _cell.Outputs[^1] = new TextElement(last.Text + text, name);
        else
            _cell.Outputs.Add(new TextElement(text, name));
    }

    static Dictionary<string, object> Data(IReadOnlyCollection<FormattedValue> values)
    {
        var data = new Dictionary<string, object>(StringComparer.Ordinal);
        foreach (var v in values.Where(v => !v.SuppressDisplay))
            data[v.MimeType] = v.MimeType == JsonFormatter.MimeType && TryParse(v.Value) is { } json ? json : v.Value;
        return data;
    }

    static object? TryParse(string json)
    {
        try { return JsonSerializer.Deserialize<JsonElement>(json); }
        catch (JsonException) { return null; }
    }
}
