using System.Text.RegularExpressions;

namespace Workbook.Tests;

/// <summary>The code is laid out so a reader can find it: each namespace is its folder.</summary>
public class LayoutTests
{
    static readonly Regex Namespace = new(@"^namespace\s+([\w.]+)", RegexOptions.Multiline);

    /// <summary>
    /// The namespace a file declares must be its project's root namespace plus its folder: <c>lib/Workbook/Gpt/X.cs</c>
    /// declares <c>Workbook.Gpt</c>, <c>tools/Workbook.Doctor/Checks/X.cs</c> declares <c>Workbook.Doctor.Checks</c>.
    /// </summary>
    [Theory]
    [InlineData("lib/Workbook", "Workbook")]
    [InlineData("tools/Workbook.Runner", "Workbook.Runner")]
    [InlineData("tools/Workbook.Doctor", "Workbook.Doctor")]
    [InlineData("tools/Workbook.Bench", "Workbook.Bench")]
    [InlineData("tests/Workbook.Tests", "Workbook.Tests")]
    public void EveryNamespaceIsItsFolder(string project, string rootNamespace)
    {
        var root = Path.Combine(TestSetup.RepoRoot, project);
        var wrong = new List<string>();
        foreach (var file in Directory.GetFiles(root, "*.cs", SearchOption.AllDirectories))
        {
            var rel = Path.GetRelativePath(root, file).Replace('\\', '/');
            if (rel.StartsWith("obj/", StringComparison.Ordinal) || rel.StartsWith("bin/", StringComparison.Ordinal)) continue;
            var folder = Path.GetDirectoryName(rel)!.Replace('\\', '/');
            var expected = folder.Length == 0 ? rootNamespace : rootNamespace + "." + folder.Replace('/', '.');
            foreach (Match m in Namespace.Matches(File.ReadAllText(file)))
                if (m.Groups[1].Value != expected) wrong.Add($"{project}/{rel} declares {m.Groups[1].Value}, its folder says {expected}");
        }
        Assert.True(wrong.Count == 0, string.Join("\n", wrong));
    }

    /// <summary>The doctor's checks are the doctor's: no notebook uses them, so the package every notebook loads has none.</summary>
    [Fact]
    public void TheLibraryCarriesNoDoctorChecks()
    {
        var namespaces = typeof(Notebook).Assembly.GetExportedTypes().Select(t => t.Namespace ?? "").Distinct().ToList();
        Assert.DoesNotContain(namespaces, n => n.Contains("Preflight", StringComparison.Ordinal) || n.Contains("Doctor", StringComparison.Ordinal));
        Assert.Contains("Workbook.Runtime", namespaces);
    }
}
