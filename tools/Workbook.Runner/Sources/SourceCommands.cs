using Microsoft.DotNet.Interactive.Documents.Jupyter;
using Workbook.Runner.Execution;

namespace Workbook.Runner.Sources;

/// <summary>
/// Keeps every notebook and its text source (<c>NAME.cs</c> beside <c>NAME.ipynb</c>, <see cref="PercentFormat"/>)
/// in agreement. The source is the one that is edited and reviewed; the notebook is generated from it.
/// </summary>
public static class SourceCommands
{
    /// <summary>The committed notebook text a source produces (outputs empty, standard metadata).</summary>
    public static string NotebookJson(string sourcePath) =>
        Notebook.ToJupyterJson(PercentFormat.Parse(File.ReadAllText(sourcePath), sourcePath)) + "\n";

    /// <summary>Pairs of (source, notebook) under <paramref name="root"/>: every .cs and every .ipynb, matched by name.</summary>
    public static IReadOnlyList<(string Source, string Notebook)> Pairs(string root)
    {
        var stems = Directory.GetFiles(root, "*.cs", SearchOption.AllDirectories)
            .Concat(Directory.GetFiles(root, "*.ipynb", SearchOption.AllDirectories))
            .Where(f => !f.Contains(".ipynb_checkpoints", StringComparison.Ordinal))
            .Select(f => Path.Combine(Path.GetDirectoryName(f)!, Path.GetFileNameWithoutExtension(f)))
            .Distinct(StringComparer.Ordinal).OrderBy(s => s, StringComparer.Ordinal);
        return stems.Select(s => (s + ".cs", s + ".ipynb")).ToList();
    }

    /// <summary>Problems that make sources and notebooks disagree; empty when they agree.</summary>
    public static List<string> Check(string root)
    {
        var problems = new List<string>();
        foreach (var (source, notebook) in Pairs(root))
        {
            if (!File.Exists(source)) { problems.Add($"{notebook} has no text source {Path.GetFileName(source)}: run 'source import {notebook}'."); continue; }
            if (!File.Exists(notebook)) { problems.Add($"{source} has no notebook: run 'source build'."); continue; }
            string expected;
            try { expected = NotebookJson(source); }
            catch (FormatException e) { problems.Add(e.Message); continue; }
            if (File.ReadAllText(notebook).Replace("\r\n", "\n") != expected)
                problems.Add($"{notebook} differs from what {Path.GetFileName(source)} generates: edit the source and run 'source build', " +
                             $"or, if you edited the notebook, 'source import {notebook}'.");
        }
        return problems;
    }

    /// <summary>Runs <c>source build|import|check</c>; returns the exit code.</summary>
    public static int Run(string[] args, TextWriter output, TextWriter error)
    {
        if (args.Length == 0) { error.WriteLine("Usage: source build [DIR|FILE.cs]... | source import FILE.ipynb... | source check [DIR]"); return 2; }
        var targets = args.Length > 1 ? args[1..] : ["notebooks"];
        try
        {
            switch (args[0])
            {
                case "build":
                    foreach (var t in targets)
                        foreach (var src in Directory.Exists(t) ? Directory.GetFiles(t, "*.cs", SearchOption.AllDirectories).Order(StringComparer.Ordinal).ToArray() : [t])
                        {
                            var nb = Path.ChangeExtension(src, ".ipynb");
                            File.WriteAllText(nb, NotebookJson(src));
                            output.WriteLine($"{src} -> {nb}");
                        }
                    return 0;
                case "import":
                    if (args.Length < 2) { error.WriteLine("source import needs the notebooks to import."); return 2; }
                    foreach (var nb in targets)
                    {
                        var src = Path.ChangeExtension(nb, ".cs");
                        File.WriteAllText(src, PercentFormat.Write(NotebookRunner.Read(nb)));
                        output.WriteLine($"{nb} -> {src}");
                    }
                    return 0;
                case "check":
                    var problems = targets.SelectMany(Check).ToList();
                    foreach (var p in problems) error.WriteLine(p);
                    if (problems.Count == 0) output.WriteLine($"Every notebook in {string.Join(", ", targets)} agrees with its text source.");
                    return problems.Count == 0 ? 0 : 1;
                default:
                    error.WriteLine($"Unknown source command '{args[0]}': build, import or check.");
                    return 2;
            }
        }
        catch (Exception e) when (e is FormatException or IOException or InvalidDataException or UnauthorizedAccessException)
        {
            error.WriteLine(e.Message);
            return 1;
        }
    }
}
