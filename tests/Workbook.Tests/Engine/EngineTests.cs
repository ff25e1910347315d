using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Workbook.Engine;
using static Workbook.Tests.Engine.NotebookFixture;

namespace Workbook.Tests.Engine;

/// <summary>The execution engine on fixture notebooks, in this process.</summary>
public class EngineTests
{
    [Fact]
    public void StateCarriesAcrossCellsAndTrailingExpressionsAreResults()
    {
        var dir = TempDir();
        var path = Write(dir, "state.ipynb",
            "md:# A title",
            "var x = 20;\nint Twice(int v) => 2 * v;",
            "Console.WriteLine(\"hello\");\nConsole.Write(\"wor\");\nConsole.WriteLine(\"ld\");\nTwice(x) + 2",
            "x = 1; // no trailing expression");
        var (report, doc) = RunInProcess(path);
        Assert.True(report.Ok, report.Describe());
        Assert.Equal(3, report.CellsRun);
        var outs = Outputs(doc, 2);
        Assert.Equal("stream", outs[0]["output_type"]!.GetValue<string>());
        Assert.Equal("hello\nworld\n", NotebookDocument.JoinSource(outs[0]["text"]));
        Assert.Equal("execute_result", outs[1]["output_type"]!.GetValue<string>());
        Assert.Equal("42", MimeText(outs[1], "text/plain"));
        Assert.Equal(2, outs[1]["execution_count"]!.GetValue<int>());
        Assert.Empty(Outputs(doc, 3));
        Assert.Equal(3, doc.Cells[3].Json["execution_count"]!.GetValue<int>());
        Assert.NotNull(doc.Cells[3].Json["metadata"]!["execution"]!["shell.execute_reply"]);
    }

    [Fact]
    public void DisplayHandlesUpdateTheirOutputEvenFromALaterCell()
    {
        var dir = TempDir();
        var path = Write(dir, "display.ipynb",
            "var h = display(\"first\");\nfor (int i = 1; i <= 3; i++) h.Update($\"step {i}\");\nvar other = display(HTML(\"<b>bold</b>\"));",
            "h.Update(\"final\");");
        var (report, doc) = RunInProcess(path);
        Assert.True(report.Ok, report.Describe());
        var outs = Outputs(doc, 0);
        Assert.Equal(2, outs.Count);
        Assert.Equal("display_data", outs[0]["output_type"]!.GetValue<string>());
        Assert.Equal("final", MimeText(outs[0], "text/plain"));
        Assert.Equal("<b>bold</b>", MimeText(outs[1], "text/html"));
        Assert.Empty(Outputs(doc, 1));
    }

    [Fact]
    public void NuGetReferenceIsRestoredAndUsable()
    {
        var dir = TempDir();
        var path = Write(dir, "nuget.ipynb",
            "#r \"nuget: Newtonsoft.Json, 13.0.3\"\nusing Newtonsoft.Json;",
            "JsonConvert.SerializeObject(new { a = 1, b = new[] { 2, 3 } })");
        var (report, doc) = RunInProcess(path);
        Assert.True(report.Ok, report.Describe());
        Assert.Equal("{\"a\":1,\"b\":[2,3]}", MimeText(Outputs(doc, 1)[0], "text/plain"));
    }

    [Fact]
    public void UnknownPackageFailsWithNuGetsError()
    {
        var dir = TempDir();
        var path = Write(dir, "bad.ipynb", "var ok = 1;", "#r \"nuget: Workbook.NoSuchPackage.Anywhere, 9.9.9\"");
        var (report, _) = RunInProcess(path);
        Assert.False(report.Ok);
        Assert.Equal(2, report.FailedCell);
        Assert.Equal("PackageRestoreError", report.Error!.Name);
        Assert.Contains("Workbook.NoSuchPackage.Anywhere", report.Error.Message);
    }

    [Fact]
    public void DllReferenceResolvesRelativeToTheNotebook()
    {
        var dir = TempDir();
        Directory.CreateDirectory(Path.Combine(dir, "lib"));
        var source = "namespace Fixture { public static class Greeter { public static string Hello(string n) => \"Hello, \" + n + \"!\"; } }";
        var compilation = CSharpCompilation.Create("Greeter", new[] { CSharpSyntaxTree.ParseText(source) },
            new[] { MetadataReference.CreateFromFile(typeof(object).Assembly.Location) }, new CSharpCompilationOptions(OutputKind.DynamicallyLinkedLibrary));
        var emit = compilation.Emit(Path.Combine(dir, "lib", "Greeter.dll"));
        Assert.True(emit.Success);
        var path = Write(dir, "dll.ipynb", "#r \"lib/Greeter.dll\"\nFixture.Greeter.Hello(\"reader\")");
        var (report, doc) = RunInProcess(path);
        Assert.True(report.Ok, report.Describe());
        Assert.Equal("Hello, reader!", MimeText(Outputs(doc, 0)[0], "text/plain"));
    }

    [Fact]
    public void CompileErrorNamesCellAndLine()
    {
        var dir = TempDir();
        var path = Write(dir, "compile.ipynb", "md:intro", "var a = 1;", "var b = 2;\n\nint c = \"text\";", "var never = 3;");
        var (report, doc) = RunInProcess(path);
        Assert.False(report.Ok);
        Assert.Equal(3, report.FailedCell);
        Assert.Equal(3, report.Error!.Line);
        Assert.Equal("CompilationError", report.Error.Name);
        Assert.Contains("CS0029", report.Error.Message);
        Assert.Contains("cell 3, line 3", report.Describe());
        var err = Outputs(doc, 2).Single();
        Assert.Equal("error", err["output_type"]!.GetValue<string>());
        Assert.Null(doc.Cells[3].Json["execution_count"]?.GetValue<int?>());
    }

    [Fact]
    public void RuntimeErrorNamesCellAndLineAndKeepsEarlierOutput()
    {
        var dir = TempDir();
        var path = Write(dir, "runtime.ipynb", "var xs = new int[2];", "Console.WriteLine(\"before\");\nvar i = 5;\nxs[i] = 1;");
        var (report, doc) = RunInProcess(path);
        Assert.False(report.Ok);
        Assert.Equal(2, report.FailedCell);
        Assert.Equal(3, report.Error!.Line);
        Assert.Equal("IndexOutOfRangeException", report.Error.Name);
        var outs = Outputs(doc, 1);
        Assert.Equal("before\n", NotebookDocument.JoinSource(outs[0]["text"]));
        Assert.Contains("line 3", NotebookDocument.JoinSource(outs[1]["traceback"]));
    }

    [Fact]
    public void SlowCellTimesOut()
    {
        var dir = TempDir();
        var path = Write(dir, "slow.ipynb", "System.Threading.Thread.Sleep(30_000);");
        var (report, _) = RunInProcess(path, TimeSpan.FromSeconds(2));
        Assert.False(report.Ok);
        Assert.Equal("Timeout", report.Error!.Name);
        Assert.True(report.Elapsed < TimeSpan.FromSeconds(20));
    }

    [Fact]
    public void DirectivesAreParsedAndLinesKept()
    {
        var parsed = CellDirectives.Parse("#!csharp\n#i \"nuget: ../pkgs\"\n#r \"nuget: A.B, 1.2.3\"\n#r \"nuget:C\"\n#r \"x/y.dll\"\nvar z = 1;", "/base/nb");
        Assert.Equal(new[] { "", "", "", "", "", "var z = 1;" }, parsed.Code.Split('\n'));
        Assert.Equal(new[] { ("A.B", "1.2.3", 3), ("C", (string?)null, 4) }, parsed.Packages.Select(p => (p.Id, p.Version, p.Line)));
        Assert.Equal("/base/pkgs", Assert.Single(parsed.Sources));
        Assert.Equal("/base/nb/x/y.dll", Assert.Single(parsed.AssemblyPaths));
        Assert.Contains("Unsupported magic", CellDirectives.Parse("#!fsharp\nlet x = 1", "/").Errors.Single().Message);
    }
}
