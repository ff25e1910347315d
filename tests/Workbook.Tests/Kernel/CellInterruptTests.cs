using System.Diagnostics;
using Workbook.Engine;

namespace Workbook.Tests.Kernel;

/// <summary>
/// The engine's cooperative interrupt, which the kernel's interrupt_request and SIGINT use: loop bodies get a check
/// without changing line numbers, an interrupted loop stops within the grace period and the session keeps its state,
/// and compile errors still point at the columns the reader wrote.
/// </summary>
public class CellInterruptTests
{
    sealed class Capture : IOutputSink
    {
        public readonly List<string> Results = new();
        public void Stream(string name, string text) { }
        public void Display(MimeBundle data, string displayId) { }
        public void UpdateDisplay(MimeBundle data, string displayId) { }
        public void Result(MimeBundle data) => Results.Add(data["text/plain"]);
    }

    [Fact]
    public void InstrumentAddsAChecktoEveryLoopBodyAndKeepsLines()
    {
        var code = "for (int i = 0; i < 3; i++)\n    total += i;\nwhile (go) { step(); }\ndo x++; while (x < 9);\nforeach (var v in vs) { }\nvar s = \"for (;;) {}\";";
        var instrumented = CellInterrupt.Instrument(code);
        Assert.Equal(code.Count(c => c == '\n'), instrumented.Count(c => c == '\n'));
        var lines = instrumented.Split('\n');
        const string check = "if (global::Workbook.Engine.CellInterrupt.Pending != 0) global::Workbook.Engine.CellInterrupt.Check();";
        Assert.Equal("    {" + check + "total += i;}", lines[1]);
        Assert.Equal("while (go) {" + check + " step(); }", lines[2]);
        Assert.Equal("do {" + check + "x++;} while (x < 9);", lines[3]);
        Assert.Equal("foreach (var v in vs) {" + check + " }", lines[4]);
        Assert.Equal("var s = \"for (;;) {}\";", lines[5]); // a loop in a string is text, not a loop
        Assert.Equal("var none = 1;", CellInterrupt.Instrument("var none = 1;"));
    }

    [Fact]
    public async Task InterruptedLoopStopsWithItsLineAndTheSessionKeepsItsState()
    {
        var session = new ScriptSession(Path.GetTempPath());
        var sink = new Capture();
        Assert.True((await session.ExecuteAsync("long calls = 0;\nvoid Spin()\n{\n    while (true) calls++;\n}", sink)).Ok);

        foreach (var cell in new[] { "long spins = 0;\nfor (;;) { spins++; }", "Spin();" })
        {
            using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(700));
            var clock = Stopwatch.StartNew();
            var result = await session.ExecuteAsync(cell, sink, TimeSpan.FromMinutes(1), cts.Token);
            Assert.False(result.Ok);
            Assert.Equal("Interrupted", result.Error!.Name);
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(0.7) + ScriptSession.InterruptGrace, $"took {clock.Elapsed}");
        }
        Assert.True((await session.ExecuteAsync("spins > 1000 && calls > 1000", sink)).Ok);
        Assert.Equal("True", sink.Results.Last());
    }

    [Fact]
    public async Task InterruptReportsTheLineTheLoopWasOn()
    {
        var session = new ScriptSession(Path.GetTempPath());
        using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(500));
        var result = await session.ExecuteAsync("var n = 0L;\n\nwhile (true)\n{\n    n++;\n}", new Capture(), null, cts.Token);
        Assert.Equal("Interrupted", result.Error!.Name);
        Assert.InRange(result.Error.Line ?? 0, 3, 5); // the loop's check sits on the brace line, its body below
    }

    [Fact]
    public async Task CompileErrorsInLoopsReportTheColumnsAsWritten()
    {
        var session = new ScriptSession(Path.GetTempPath());
        var code = "for (int i = 0; i < 2; i++) { int wrong = \"text\"; }";
        var result = await session.ExecuteAsync(code, new Capture());
        Assert.Equal("CompilationError", result.Error!.Name);
        var column = code.IndexOf("\"text\"", StringComparison.Ordinal) + 1;
        Assert.Contains($"(1,{column}): error CS0029", result.Error.Traceback[0]);
    }
}
