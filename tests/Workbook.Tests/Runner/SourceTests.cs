using System.Xml.Linq;
using Workbook.Runner.Sources;

namespace Workbook.Tests.Runner;

/// <summary>Every notebook has one text source (jupytext's percent format) and agrees with it.</summary>
public class SourceTests
{
    static string Notebooks => Path.Combine(TestSetup.RepoRoot, "notebooks");

    [Fact]
    public void EveryNotebookAgreesWithItsTextSource()
    {
        var problems = SourceCommands.Check(Notebooks);
        Assert.True(problems.Count == 0, string.Join("\n", problems));
        Assert.Equal(Directory.GetFiles(Notebooks, "*.ipynb", SearchOption.AllDirectories).Length,
                     Directory.GetFiles(Notebooks, "*.cs", SearchOption.AllDirectories).Length);
    }

    [Fact]
    public void CheckNamesANotebookEditedBehindItsSourceAndOneWithoutSource()
    {
        var dir = Path.Combine(Path.GetTempPath(), "wb-src-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        File.Copy(Path.Combine(Notebooks, "00-tour.cs"), Path.Combine(dir, "00-tour.cs"));
        File.WriteAllText(Path.Combine(dir, "00-tour.ipynb"), SourceCommands.NotebookJson(Path.Combine(dir, "00-tour.cs")));
        Assert.Empty(SourceCommands.Check(dir));

        File.WriteAllText(Path.Combine(dir, "00-tour.ipynb"), File.ReadAllText(Path.Combine(dir, "00-tour.ipynb")).Replace("A tour", "A trip"));
        File.Copy(Path.Combine(Notebooks, "01-attention.ipynb"), Path.Combine(dir, "01-attention.ipynb"));
        var problems = SourceCommands.Check(dir);
        Assert.Equal(2, problems.Count);
        Assert.Contains(problems, p => p.Contains("00-tour.ipynb differs from what 00-tour.cs generates", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.Contains("01-attention.ipynb has no text source 01-attention.cs", StringComparison.Ordinal));
    }

    [Fact]
    public void PercentFormatRoundTripsCellsMetadataAndMarkdown()
    {
        var text = PercentFormat.Header + "\n\n// %% [markdown]\n// # Title\n//\n// $x^2$ and `code`\n\n" +
                   "// %% tags=[\"errata-6\",\"claim\"] workbook={\"kind\":\"article\"}\nvar x = 1;\n\nx + 1\n\n// %%\n// a C# comment, not markdown\n";
        var doc = PercentFormat.Parse(text, "t.cs");
        Assert.Equal(3, doc.Elements.Count);
        Assert.Equal("markdown", doc.Elements[0].KernelName);
        Assert.Equal("# Title\n\n$x^2$ and `code`", doc.Elements[0].Contents);
        Assert.Equal("csharp", doc.Elements[1].KernelName);
        Assert.Equal("var x = 1;\n\nx + 1", doc.Elements[1].Contents);
        Assert.Equal(["errata-6", "claim"], ((IEnumerable<object>)doc.Elements[1].Metadata!["tags"]).Cast<string>());
        Assert.Equal("// a C# comment, not markdown", doc.Elements[2].Contents);
        Assert.Equal(text, PercentFormat.Write(doc));
        // The generated notebook keeps the metadata and adds the kernel names Polyglot reads.
        var json = Microsoft.DotNet.Interactive.Documents.Jupyter.Notebook.ToJupyterJson(doc);
        Assert.Contains("\"errata-6\"", json);
        Assert.Contains("\"kernelName\": \"csharp\"", json);
    }

    [Fact]
    public void MalformedSourcesAreRejectedWithTheLine()
    {
        var e = Assert.Throws<FormatException>(() => PercentFormat.Parse("var x = 1;\n", "bad.cs"));
        Assert.Contains("bad.cs, line 1", e.Message);
        e = Assert.Throws<FormatException>(() => PercentFormat.Parse(PercentFormat.Header + "\n// %% [markdown]\nnot commented\n", "md.cs"));
        Assert.Contains("not commented with '// '", e.Message);
        e = Assert.Throws<FormatException>(() => PercentFormat.Parse(PercentFormat.Header + "\n// %% tags=[oops\n1\n", "attr.cs"));
        Assert.Contains("attr.cs, line 12: the value of 'tags' is not JSON", e.Message);
    }

    [Fact]
    public void PackageVersionsInNotebooksAgreeWithTheCentralPins()
    {
        var pins = XDocument.Load(Path.Combine(TestSetup.RepoRoot, "Directory.Packages.props")).Descendants("PackageVersion")
            .ToDictionary(e => e.Attribute("Include")!.Value, e => e.Attribute("Version")!.Value, StringComparer.OrdinalIgnoreCase);
        var library = XDocument.Load(Path.Combine(TestSetup.RepoRoot, "lib", "Workbook", "Workbook.csproj")).Descendants("Version").First().Value;
        var reference = new System.Text.RegularExpressions.Regex(@"#r\s+""nuget:\s*([\w.\-]+)\s*,\s*([^""\s]+)\s*""");
        foreach (var src in Directory.GetFiles(Notebooks, "*.cs", SearchOption.AllDirectories))
            foreach (System.Text.RegularExpressions.Match m in reference.Matches(File.ReadAllText(src)))
            {
                var (id, version) = (m.Groups[1].Value, m.Groups[2].Value);
                var pinned = id.Equals("Workbook", StringComparison.OrdinalIgnoreCase) ? library
                    : pins.TryGetValue(id, out var v) ? v : null;
                Assert.True(pinned == version, $"{src}: '#r \"nuget: {id}, {version}\"' but the pin is {pinned ?? "missing from Directory.Packages.props"}");
            }
    }
}
