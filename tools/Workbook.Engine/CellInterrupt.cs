using System.ComponentModel;
using System.Text;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;

namespace Workbook.Engine;

/// <summary>Thrown inside a cell's loop when the cell is interrupted (Jupyter's interrupt, the kernel's SIGINT).</summary>
public sealed class CellInterruptedException : OperationCanceledException
{
    /// <summary>Creates the exception.</summary>
    public CellInterruptedException() : base("The cell was interrupted.") { }
}

/// <summary>
/// Cooperative interruption of a running cell. .NET cannot abort a thread, so the engine makes cells interruptible
/// the way a debugger's "break" would need them to be: before compiling a cell it inserts a call to
/// <see cref="Check"/> at the top of every loop body (for, foreach, while, do), guarded by a test of
/// <see cref="Pending"/> so that it costs one volatile read while nothing is interrupted. Which cell is running flows with the execution context, so a loop inside a method
/// defined in an earlier cell, or on a task the cell started, stops too; code stuck in one long call (a
/// <c>Thread.Sleep</c>, a native kernel) cannot be stopped and is abandoned instead (see <see cref="ScriptSession"/>).
/// </summary>
public static class CellInterrupt
{
    /// <summary>The running cell, as seen by code executing on its behalf.</summary>
    internal sealed class Run
    {
        volatile bool _interrupted;
        public bool Interrupted => _interrupted;
        public void Interrupt() => _interrupted = true;
    }

    static readonly AsyncLocal<Run?> Current = new();

    /// <summary>
    /// Number of interrupted cells whose code may still be running; the engine maintains it, the inserted checks read
    /// it. Cells compile without JIT optimisation (debug scripts), so the check tests this field inline and calls
    /// <see cref="Check"/> only when it is not 0: a field load per iteration instead of a call.
    /// </summary>
    [EditorBrowsable(EditorBrowsableState.Never)]
    public static volatile int Pending;

    /// <summary>Throws <see cref="CellInterruptedException"/> when the cell this code runs for was interrupted.</summary>
    /// <remarks>The engine inserts calls to this method; notebook code may call it too, in a long recursion say.</remarks>
    [EditorBrowsable(EditorBrowsableState.Never)]
    public static void Check()
    {
        if (Pending != 0 && Current.Value is { Interrupted: true })
            throw new CellInterruptedException();
    }

    /// <summary>Marks the calling flow as running a new cell; the caller must start the cell's work after this call.</summary>
    internal static Run Begin()
    {
        var run = new Run();
        Current.Value = run;
        return run;
    }

    /// <summary>Interrupts <paramref name="run"/>; <paramref name="finished"/> completes when its code has stopped.</summary>
    internal static void Interrupt(Run run, Task finished)
    {
        if (run.Interrupted) return;
#pragma warning disable CS0420 // Interlocked operations on a volatile field are atomic and fenced
        Interlocked.Increment(ref Pending);
        run.Interrupt();
        finished.ContinueWith(_ => Interlocked.Decrement(ref Pending), TaskScheduler.Default);
#pragma warning restore CS0420
    }

    const string CheckCall = "if (global::Workbook.Engine.CellInterrupt.Pending != 0) global::Workbook.Engine.CellInterrupt.Check();";

    /// <summary>
    /// Returns <paramref name="code"/> with a <see cref="Check"/> call at the top of each loop body. Only text inside
    /// lines is inserted (no newline), so line numbers in diagnostics and stack traces stay those of the cell.
    /// </summary>
    public static string Instrument(string code)
    {
        var tree = CSharpSyntaxTree.ParseText(code, CSharpParseOptions.Default.WithKind(SourceCodeKind.Script).WithLanguageVersion(LanguageVersion.Latest));
        var inserts = new List<(int Position, string Text)>();
        foreach (var node in tree.GetRoot().DescendantNodes())
        {
            StatementSyntax? body = node switch
            {
                ForStatementSyntax f => f.Statement,
                CommonForEachStatementSyntax f => f.Statement,
                WhileStatementSyntax w => w.Statement,
                DoStatementSyntax d => d.Statement,
                _ => null,
            };
            if (body is null || body.IsMissing) continue;
            if (body is BlockSyntax block)
            {
                if (block.OpenBraceToken.IsMissing) continue;
                inserts.Add((block.OpenBraceToken.Span.End, CheckCall));
            }
            else
            {
                inserts.Add((body.SpanStart, "{" + CheckCall));
                inserts.Add((body.Span.End, "}"));
            }
        }
        if (inserts.Count == 0) return code;
        var text = new StringBuilder(code);
        // From the end, so earlier positions stay valid; at one position, the later-added "}" goes first.
        foreach (var (position, insert) in inserts.Select((x, i) => (x, i)).OrderByDescending(p => p.x.Position).ThenBy(p => p.i).Select(p => p.x))
            text.Insert(position, insert);
        return text.ToString();
    }
}
