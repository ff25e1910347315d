using System.Collections.Immutable;
using System.Reflection;
using System.Runtime.InteropServices;
using System.Runtime.Loader;
using System.Text;
using System.Text.RegularExpressions;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Scripting;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using Microsoft.CodeAnalysis.Scripting;

namespace Workbook.Engine;

/// <summary>The outcome of one cell.</summary>
/// <param name="Ok">True when the cell ran to the end.</param>
/// <param name="Error">What went wrong, when not ok.</param>
/// <param name="Elapsed">Wall time, directives and restore included.</param>
public sealed record CellResult(bool Ok, CellError? Error, TimeSpan Elapsed);

/// <summary>
/// Members every cell can call without a prefix, as in a Polyglot C# cell: <c>display(value)</c>, <c>HTML(text)</c>.
/// </summary>
public class ScriptGlobals
{
    internal ScriptSession? Session;

    /// <summary>Displays a value now; the returned handle's <c>Update</c> replaces it later.</summary>
    public DisplayedValue display(object? value, params string[] mimeTypes) => Session!.Display(value, mimeTypes);

    /// <summary>Marks a string as HTML to display as such.</summary>
    public Microsoft.AspNetCore.Html.IHtmlContent HTML(string html) => new Microsoft.AspNetCore.Html.HtmlString(html);
}

/// <summary>
/// A C# interactive session: cells run in order on Roslyn scripting with state carried across them, directives
/// restore packages and add references, console output and displays go to an <see cref="IOutputSink"/>.
/// One session is one notebook run (the runner starts a fresh process per notebook, like a fresh kernel).
/// </summary>
public sealed class ScriptSession
{
    static readonly string[] DefaultImports =
    {
        "System", "System.IO", "System.Collections.Generic", "System.Linq", "System.Text", "System.Threading",
        "System.Threading.Tasks", "System.Net.Http", "Microsoft.DotNet.Interactive.Formatting",
    };

    static readonly Dictionary<string, string> AssemblyPaths = new(StringComparer.OrdinalIgnoreCase);
    static readonly List<string> NativeDirectories = new();
    static bool _hooksInstalled;

    readonly string _baseDirectory;
    readonly PackageRestorer _restorer;
    readonly ScriptGlobals _globals = new();
    readonly List<MetadataReference> _references = new();
    readonly List<PackageReference> _packages = new();
    readonly List<string> _sources = new();
    ScriptState<object?>? _state;
    ScriptOptions _options;
    IOutputSink? _sink;
    int _displayCounter;
    int _cellCounter;

    /// <summary>Creates a session whose relative paths resolve against <paramref name="baseDirectory"/> (the notebook's folder).</summary>
    public ScriptSession(string baseDirectory, PackageRestorer? restorer = null, TextWriter? log = null)
    {
        _baseDirectory = Path.GetFullPath(baseDirectory);
        _restorer = restorer ?? new PackageRestorer();
        Log = log;
        _globals.Session = this;
        InstallHooks();
        ConsoleRouter.Install();
        foreach (var path in FrameworkReferencePaths()) _references.Add(MetadataReference.CreateFromFile(path));
        _references.Add(MetadataReference.CreateFromFile(typeof(ScriptGlobals).Assembly.Location));
        _references.Add(MetadataReference.CreateFromFile(typeof(Microsoft.DotNet.Interactive.Formatting.Formatter).Assembly.Location));
        _references.Add(MetadataReference.CreateFromFile(typeof(Microsoft.AspNetCore.Html.IHtmlContent).Assembly.Location));
        _options = ScriptOptions.Default
            .WithReferences(_references)
            .WithImports(DefaultImports)
            .WithLanguageVersion(LanguageVersion.Latest)
            .WithEmitDebugInformation(true)
            .WithFileEncoding(Encoding.UTF8)
            .WithAllowUnsafe(true)
            .WithMetadataResolver(ScriptMetadataResolver.Default.WithBaseDirectory(_baseDirectory).WithSearchPaths(_baseDirectory));
    }

    /// <summary>Progress lines (restores) go here; null for silence.</summary>
    public TextWriter? Log { get; set; }

    /// <summary>Number of cells executed so far.</summary>
    public int ExecutionCount => _cellCounter;

    /// <summary>Runs one cell's C# source, sending its outputs to <paramref name="sink"/>.</summary>
    /// <param name="source">The cell text, directives included.</param>
    /// <param name="sink">Where outputs go.</param>
    /// <param name="timeout">Stop waiting after this long and report a timeout (the cell's thread cannot be killed; the caller should end the process).</param>
    /// <param name="cancellation">Cancels the wait (interrupt); the script sees it through <see cref="CancellationToken"/> checks only.</param>
    public async Task<CellResult> ExecuteAsync(string source, IOutputSink sink, TimeSpan? timeout = null, CancellationToken cancellation = default)
    {
        var started = DateTime.UtcNow;
        _cellCounter++;
        _sink = sink;
        var cellFile = $"cell{_cellCounter}.csx";
        try
        {
            var parsed = CellDirectives.Parse(source, _baseDirectory);
            if (parsed.Errors.Count > 0)
            {
                var (line, msg) = parsed.Errors[0];
                return Fail(new CellError("DirectiveError", msg, line, parsed.Errors.Select(e => $"line {e.Line}: {e.Message}").ToList()), started);
            }
            try { ApplyDirectives(parsed); }
            catch (PackageRestoreException e)
            {
                return Fail(new CellError("PackageRestoreError", e.Message, parsed.Packages.FirstOrDefault()?.Line, e.Message.Split('\n')), started);
            }
            if (string.IsNullOrWhiteSpace(StripComments(parsed.Code))) return new CellResult(true, null, DateTime.UtcNow - started);

            var options = _options.WithFilePath(cellFile);
            // Loops get interrupt checks (same lines, see CellInterrupt); the cell's flow is marked before it starts.
            var code = CellInterrupt.Instrument(parsed.Code);
            var cellRun = CellInterrupt.Begin();
            Task<ScriptState<object?>> run;
            using (ConsoleRouter.Route(sink))
            {
                try
                {
                    // catchException keeps the session's state when a cell throws, as a kernel does.
                    run = Task.Run(() => _state is null
                        ? CSharpScript.Create<object?>(code, options, typeof(ScriptGlobals)).RunAsync(_globals, _ => true, cancellation)
                        : _state.ContinueWithAsync<object?>(code, options, _ => true, cancellation), CancellationToken.None);
                    var completed = await Task.WhenAny(run, Task.Delay(timeout ?? Timeout.InfiniteTimeSpan, cancellation)).ConfigureAwait(false);
                    if (completed != run && cancellation.IsCancellationRequested)
                    {
                        // Interrupt: the cell's loops stop at their next check; a cell stuck in one long call is abandoned.
                        CellInterrupt.Interrupt(cellRun, run);
                        await Task.WhenAny(run, Task.Delay(InterruptGrace)).ConfigureAwait(false);
                    }
                    if (!run.IsCompleted)
                    {
                        var why = cancellation.IsCancellationRequested ? "Interrupted" : "Timeout";
                        var msg = cancellation.IsCancellationRequested
                            ? $"The cell was interrupted but did not stop within {InterruptGrace.TotalSeconds:F0} s (it is blocked in a call that cannot be interrupted); it keeps running in the background and its variables are not updated."
                            : $"The cell did not finish within {timeout!.Value.TotalSeconds:F0} s.";
                        return Fail(new CellError(why, msg, null, new[] { msg }), started);
                    }
                    var state = await run.ConfigureAwait(false);
                    if (state.Exception is { } thrown)
                    {
                        _state = state;
                        var error = RuntimeError(thrown, cellFile);
                        return Fail(thrown is CellInterruptedException ? error with { Name = "Interrupted" } : error, started);
                    }
                    _state = state;
                }
                catch (CompilationErrorException e)
                {
                    // Report the diagnostics of the cell as written (the inserted interrupt checks shift columns).
                    var diagnostics = code == parsed.Code ? e.Diagnostics : Diagnose(parsed.Code, options) is { Length: > 0 } d ? d : e.Diagnostics;
                    var errors = diagnostics.Where(d => d.Severity == DiagnosticSeverity.Error).ToList();
                    var first = errors.FirstOrDefault() ?? diagnostics.First();
                    int line = first.Location.GetLineSpan().StartLinePosition.Line + 1;
                    return Fail(new CellError("CompilationError", $"{first.Id}: {first.GetMessage()}", line,
                        errors.Select(d => $"({d.Location.GetLineSpan().StartLinePosition.Line + 1},{d.Location.GetLineSpan().StartLinePosition.Character + 1}): error {d.Id}: {d.GetMessage()}").ToList()), started);
                }
                catch (Exception e)
                {
                    var ex = e is AggregateException { InnerExceptions.Count: 1 } ae ? ae.InnerException! : e;
                    var error = RuntimeError(ex, cellFile);
                    return Fail(ex is OperationCanceledException && cancellation.IsCancellationRequested ? error with { Name = "Interrupted" } : error, started);
                }

                if (HasTrailingExpression(parsed.Code) && _state.ReturnValue is { } value)
                    sink.Result(MimeBundle.Format(value));
            }
            return new CellResult(true, null, DateTime.UtcNow - started);
        }
        finally
        {
            Console.Out.Flush();
        }
    }

    /// <summary>How long an interrupted cell gets to reach a loop check before it is abandoned.</summary>
    public static TimeSpan InterruptGrace { get; set; } = TimeSpan.FromSeconds(3);

    ImmutableArray<Diagnostic> Diagnose(string code, ScriptOptions options)
    {
        var script = _state is null ? CSharpScript.Create<object?>(code, options, typeof(ScriptGlobals)) : _state.Script.ContinueWith<object?>(code, options);
        return script.Compile().Where(d => d.Severity == DiagnosticSeverity.Error).ToImmutableArray();
    }

    // ---- Editor services (the Jupyter kernel's completion and inspection) ----

    /// <summary>
    /// Compiles <paramref name="code"/> as the next cell without running it, so editor services can read its semantic
    /// model: the previous cells' variables, usings and references are in scope. Directive lines are blanked with
    /// spaces, so positions in the compilation's single syntax tree are positions in <paramref name="code"/>.
    /// </summary>
    public Compilation CompileForEditor(string code)
    {
        var text = CellDirectives.MaskDirectives(code);
        var options = _options.WithFilePath($"cell{_cellCounter + 1}.csx");
        var script = _state is null ? CSharpScript.Create<object?>(text, options, typeof(ScriptGlobals)) : _state.Script.ContinueWith<object?>(text, options);
        return script.GetCompilation();
    }

    /// <summary>The current value of a variable a previous cell declared, for inspection.</summary>
    public bool TryGetVariable(string name, out object? value)
    {
        var variable = _state?.GetVariable(name);
        value = variable?.Value;
        return variable is not null;
    }

    static CellResult Fail(CellError error, DateTime started) => new(false, error, DateTime.UtcNow - started);

    internal DisplayedValue Display(object? value, string[] mimeTypes)
    {
        var id = $"wb-{Environment.ProcessId}-{Interlocked.Increment(ref _displayCounter)}";
        var types = mimeTypes.Length > 0 ? mimeTypes : null;
        _sink?.Display(MimeBundle.Format(value, types), id);
        return new DisplayedValue(id, () => _sink, types);
    }

    void ApplyDirectives(ParsedCell parsed)
    {
        foreach (var s in parsed.Sources) if (!_sources.Contains(s)) _sources.Add(s);
        var added = new List<string>();
        foreach (var path in parsed.AssemblyPaths)
        {
            if (!File.Exists(path)) throw new PackageRestoreException($"#r: assembly '{path}' does not exist.");
            added.Add(path);
        }
        if (parsed.Packages.Count > 0)
        {
            foreach (var p in parsed.Packages)
            {
                _packages.RemoveAll(x => x.Id.Equals(p.Id, StringComparison.OrdinalIgnoreCase));
                _packages.Add(p);
            }
            Log?.WriteLine($"    restoring {string.Join(", ", parsed.Packages.Select(p => $"{p.Id} {p.Version}"))}");
            var result = _restorer.Restore(_packages, _sources, Log);
            added.AddRange(result.Assemblies);
            lock (NativeDirectories)
                foreach (var d in result.NativeDirectories) if (!NativeDirectories.Contains(d)) NativeDirectories.Add(d);
        }
        if (added.Count == 0) return;
        var known = new HashSet<string>(_references.OfType<PortableExecutableReference>().Select(r => r.FilePath!), StringComparer.Ordinal);
        lock (AssemblyPaths)
            foreach (var path in added)
            {
                var name = AssemblyName.GetAssemblyName(path).Name!;
                // A name the process already has (the engine's own Formatting, say) keeps that copy: one type identity.
                var loaded = AppDomain.CurrentDomain.GetAssemblies().FirstOrDefault(a => a.GetName().Name == name && !a.IsDynamic);
                var refPath = loaded is not null && !string.IsNullOrEmpty(loaded.Location) ? loaded.Location : path;
                AssemblyPaths.TryAdd(name, refPath);
                if (known.Add(refPath)) _references.Add(MetadataReference.CreateFromFile(refPath));
            }
        _options = _options.WithReferences(_references);
    }

    // Everything a cell references loads into the default context, so the engine and the cells share one copy of
    // each assembly (one Formatter, one TorchSharp). Roslyn's loader consults the default context first.
    static void InstallHooks()
    {
        if (_hooksInstalled) return;
        _hooksInstalled = true;
        AssemblyLoadContext.Default.Resolving += (ctx, name) =>
        {
            string? path;
            lock (AssemblyPaths) AssemblyPaths.TryGetValue(name.Name ?? "", out path);
            return path is not null && File.Exists(path) ? ctx.LoadFromAssemblyPath(path) : null;
        };
        AssemblyLoadContext.Default.ResolvingUnmanagedDll += (assembly, name) =>
        {
            string[] dirs;
            lock (NativeDirectories) dirs = NativeDirectories.ToArray();
            foreach (var dir in dirs)
                foreach (var candidate in NativeFileNames(name))
                {
                    var file = Path.Combine(dir, candidate);
                    if (File.Exists(file) && NativeLibrary.TryLoad(file, out var handle)) return handle;
                }
            return IntPtr.Zero;
        };
    }

    static IEnumerable<string> NativeFileNames(string name)
    {
        yield return name;
        if (OperatingSystem.IsWindows()) { yield return name + ".dll"; yield break; }
        var ext = OperatingSystem.IsMacOS() ? ".dylib" : ".so";
        yield return name + ext;
        if (!name.StartsWith("lib", StringComparison.Ordinal)) { yield return "lib" + name + ext; yield return "lib" + name; }
    }

    static IEnumerable<string> FrameworkReferencePaths()
    {
        var tpa = (AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES") as string ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries);
        var shared = Path.GetDirectoryName(typeof(object).Assembly.Location)!;
        return tpa.Where(p => Path.GetDirectoryName(p) == shared && IsManaged(p));
    }

    static bool IsManaged(string path)
    {
        try { AssemblyName.GetAssemblyName(path); return true; }
        catch (BadImageFormatException) { return false; }
    }

    static bool HasTrailingExpression(string code)
    {
        var tree = CSharpSyntaxTree.ParseText(code, CSharpParseOptions.Default.WithKind(SourceCodeKind.Script));
        var last = tree.GetCompilationUnitRoot().Members.LastOrDefault();
        return last is GlobalStatementSyntax { Statement: ExpressionStatementSyntax e } && e.SemicolonToken.IsMissing;
    }

    static string StripComments(string code) => Regex.Replace(code, @"//[^\n]*|/\*.*?\*/", "", RegexOptions.Singleline);

    static CellError RuntimeError(Exception e, string cellFile)
    {
        var trace = (e.StackTrace ?? "").Split('\n').Select(l => l.TrimEnd()).Where(l => l.Length > 0).ToList();
        int? line = null;
        var m = Regex.Match(e.StackTrace ?? "", Regex.Escape(cellFile) + @":line (\d+)");
        if (m.Success) line = int.Parse(m.Groups[1].Value);
        var lines = new List<string> { $"{e.GetType().FullName}: {e.Message}" };
        lines.AddRange(trace.Where(l => !l.Contains("Microsoft.CodeAnalysis.Scripting", StringComparison.Ordinal) && !l.Contains("System.Runtime.CompilerServices", StringComparison.Ordinal)));
        for (var inner = e.InnerException; inner is not null; inner = inner.InnerException)
            lines.Add($" ---> {inner.GetType().FullName}: {inner.Message}");
        return new CellError(e.GetType().Name, e.Message, line, lines);
    }
}

/// <summary>Sends Console.Out/Console.Error of a running cell to its sink; the engine's own output is kept aside.</summary>
public static class ConsoleRouter
{
    static readonly AsyncLocal<IOutputSink?> Current = new();
    static IOutputSink? _fallback;
    static bool _installed;

    /// <summary>The process's real stdout, for the runner's progress lines.</summary>
    public static TextWriter OriginalOut { get; private set; } = Console.Out;

    /// <summary>The process's real stderr.</summary>
    public static TextWriter OriginalError { get; private set; } = Console.Error;

    /// <summary>Redirects Console once per process.</summary>
    public static void Install()
    {
        if (_installed) return;
        _installed = true;
        OriginalOut = Console.Out;
        OriginalError = Console.Error;
        Console.SetOut(new SinkWriter("stdout"));
        Console.SetError(new SinkWriter("stderr"));
    }

    /// <summary>Routes console output to <paramref name="sink"/> until disposed (threads the cell starts follow it).</summary>
    public static IDisposable Route(IOutputSink sink)
    {
        Current.Value = sink;
        _fallback = sink;
        return new Reset();
    }

    sealed class Reset : IDisposable
    {
        public void Dispose() { Current.Value = null; }
    }

    sealed class SinkWriter : TextWriter
    {
        readonly string _name;
        public SinkWriter(string name) => _name = name;
        public override Encoding Encoding => Encoding.UTF8;
        public override void Write(char value) => Write(value.ToString());
        public override void Write(string? value)
        {
            if (string.IsNullOrEmpty(value)) return;
            var sink = Current.Value ?? _fallback;
            if (sink is not null) sink.Stream(_name, value);
            else (_name == "stdout" ? OriginalOut : OriginalError).Write(value);
        }
        public override void Write(char[] buffer, int index, int count) => Write(new string(buffer, index, count));
        public override void WriteLine(string? value) => Write((value ?? "") + "\n");
    }
}
