using Microsoft.DotNet.Interactive.Formatting;

namespace Workbook.Engine;

/// <summary>MIME type to content, as Jupyter's display messages carry it.</summary>
public sealed class MimeBundle : Dictionary<string, string>
{
    /// <summary>Formats a value for display: its preferred MIME types (or <paramref name="mimeTypes"/>) plus text/plain.</summary>
    public static MimeBundle Format(object? value, IReadOnlyCollection<string>? mimeTypes = null)
    {
        var bundle = new MimeBundle();
        if (value is null)
        {
            bundle["text/plain"] = Formatter.NullString;
            return bundle;
        }
        var types = mimeTypes is { Count: > 0 } ? mimeTypes : Formatter.GetPreferredMimeTypesFor(value.GetType());
        foreach (var t in types) bundle[t] = Formatter.ToDisplayString(value, t);
        if (!bundle.ContainsKey("text/plain"))
            bundle["text/plain"] = value is string s ? s : Formatter.ToDisplayString(value, "text/plain");
        return bundle;
    }
}

/// <summary>Where a running cell's outputs go: the runner stores them in the notebook, the kernel sends them to Jupyter.</summary>
public interface IOutputSink
{
    /// <summary>Text written to stdout ("stdout") or stderr ("stderr").</summary>
    void Stream(string name, string text);

    /// <summary>A <c>display(...)</c> call; <paramref name="displayId"/> identifies it for later updates.</summary>
    void Display(MimeBundle data, string displayId);

    /// <summary>A <c>handle.Update(...)</c> of an earlier display, possibly from a later cell.</summary>
    void UpdateDisplay(MimeBundle data, string displayId);

    /// <summary>The value of the cell's trailing expression.</summary>
    void Result(MimeBundle data);
}

/// <summary>The handle <c>display(...)</c> returns: <c>.Update(value)</c> replaces what it shows.</summary>
public sealed class DisplayedValue
{
    readonly Func<IOutputSink?> _sink;
    readonly IReadOnlyCollection<string>? _mimeTypes;

    internal DisplayedValue(string displayId, Func<IOutputSink?> sink, IReadOnlyCollection<string>? mimeTypes)
    {
        DisplayId = displayId;
        _sink = sink;
        _mimeTypes = mimeTypes;
    }

    /// <summary>The display id (Jupyter's <c>transient.display_id</c>).</summary>
    public string DisplayId { get; }

    /// <summary>Replaces the displayed value with <paramref name="value"/>.</summary>
    public void Update(object? value) => _sink()?.UpdateDisplay(MimeBundle.Format(value, _mimeTypes), DisplayId);
}

/// <summary>An error in a cell, located for the reader.</summary>
/// <param name="Name">Exception type name, or "CompilationError" / "Timeout" / "DirectiveError".</param>
/// <param name="Message">The message.</param>
/// <param name="Line">1-based line in the cell, when known.</param>
/// <param name="Traceback">Lines of detail (diagnostics or the stack trace).</param>
public sealed record CellError(string Name, string Message, int? Line, IReadOnlyList<string> Traceback)
{
    /// <summary>"line 3: message".</summary>
    public override string ToString() => Line is { } l ? $"line {l}: {Name}: {Message}" : $"{Name}: {Message}";
}
