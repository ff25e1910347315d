using System.Diagnostics;
using System.Text.Json.Nodes;
using Workbook.Runner.Execution;
using Workbook.Runner.Kernel;

// Workbook.Runner: executes notebooks headlessly on the real .NET Interactive kernel, one fresh kernel per notebook.
return await Workbook.Runner.RunnerCli.MainAsync(args);

namespace Workbook.Runner
{
    static class RunnerCli
    {
        const string Usage = """
            Usage: Workbook.Runner [NOTEBOOK.ipynb | FOLDER]... [options]
                   Workbook.Runner kernelspec install|uninstall [--prefix DIR]
                   Workbook.Runner source build [DIR|FILE.cs]... | import FILE.ipynb... | check [DIR]
              Executes notebooks in order (folders: every *.ipynb inside, sorted, subfolders after) on the pinned
              .NET Interactive kernel (.config/dotnet-tools.json), each on a fresh kernel, and writes the executed
              notebooks, out/report.json and an offline HTML site.
              'kernelspec install' writes that kernel's Jupyter kernelspec (.net-csharp, HTTP API on loopback only).
              'source' keeps each notebook and its text source (NAME.cs beside NAME.ipynb, jupytext's percent
              format) in agreement: build writes notebooks from sources, import the reverse, check compares.
            Options:
              --out DIR            output folder (default: out)
              --profile P          Quick or Full (default: $WORKBOOK_PROFILE, else Full)
              --cell-timeout S     seconds one cell may run (default 1800: the Full exercises train for minutes)
              --keep-going         run every notebook even after one fails
              --no-html            skip the HTML site
              --prefix DIR         (kernelspec) install into DIR/share/jupyter/kernels instead of Jupyter's user folder
            Exit code: 0 when every notebook ran, 1 when one failed, 2 for bad arguments or a missing kernel.
            """;

        public static async Task<int> MainAsync(string[] args)
        {
            if (args.Length > 0 && args[0] == "kernelspec") return await KernelSpecAsync(args[1..]);
            if (args.Length > 0 && args[0] == "source") return Sources.SourceCommands.Run(args[1..], Console.Out, Console.Error);
            var inputs = new List<string>();
            string outDir = "out";
            string? profile = Environment.GetEnvironmentVariable("WORKBOOK_PROFILE");
            int cellTimeout = 1800; // the longest Full cells (solutions 03 and 06) ran 485-600+ s on a loaded 2-core VM
            bool keepGoing = false, html = true;
            try
            {
                for (int i = 0; i < args.Length; i++)
                {
                    switch (args[i])
                    {
                        case "-h" or "--help": Console.WriteLine(Usage); return 0;
                        case "--out": outDir = Next(args, ref i); break;
                        case "--profile": profile = Next(args, ref i); break;
                        case "--cell-timeout":
                            var s = Next(args, ref i);
                            if (!int.TryParse(s, out cellTimeout) || cellTimeout <= 0) throw new ArgumentException($"--cell-timeout must be a positive number of seconds, got '{s}'.");
                            break;
                        case "--keep-going": keepGoing = true; break;
                        case "--no-html": html = false; break;
                        default:
                            if (args[i].StartsWith("--", StringComparison.Ordinal)) throw new ArgumentException($"Unknown option '{args[i]}'.");
                            inputs.Add(args[i]);
                            break;
                    }
                }
                if (!string.IsNullOrEmpty(profile) && !profile.Equals("Quick", StringComparison.OrdinalIgnoreCase) && !profile.Equals("Full", StringComparison.OrdinalIgnoreCase))
                    throw new ArgumentException($"--profile must be Quick or Full, got '{profile}'.");
            }
            catch (ArgumentException e) { Console.Error.WriteLine($"{e.Message}\n{Usage}"); return 2; }
            profile = string.IsNullOrEmpty(profile) ? "Full" : char.ToUpperInvariant(profile[0]) + profile[1..].ToLowerInvariant();

            if (inputs.Count == 0) inputs.Add("notebooks");
            List<(string Path, string Relative)> notebooks;
            try { notebooks = Discover(inputs); }
            catch (FileNotFoundException e) { Console.Error.WriteLine(e.Message); return 2; }
            if (notebooks.Count == 0) { Console.Error.WriteLine($"No .ipynb notebooks found in {string.Join(", ", inputs)}."); return 2; }

            KernelTool tool;
            try
            {
                tool = KernelTool.Locate();
                await tool.RestoreAsync();
            }
            catch (Exception e) when (e is FileNotFoundException or InvalidOperationException) { Console.Error.WriteLine(e.Message); return 2; }

            outDir = Path.GetFullPath(outDir);
            Directory.CreateDirectory(outDir);
            Console.WriteLine($"Workbook runner: {notebooks.Count} notebook(s), profile {profile}, kernel {KernelTool.PackageId} {tool.Version}, output {outDir}");
            var runner = new NotebookRunner
            {
                Tool = tool, CellTimeout = TimeSpan.FromSeconds(cellTimeout), Progress = Console.Out,
                Environment = new Dictionary<string, string?> { ["WORKBOOK_PROFILE"] = profile },
            };
            var reports = new List<JsonObject>();
            var total = Stopwatch.StartNew();
            bool allOk = true;
            foreach (var (path, rel) in notebooks)
            {
                var target = Path.Combine(outDir, "notebooks", rel);
                Console.WriteLine($"[{reports.Count + 1}/{notebooks.Count}] {rel}");
                NotebookResult result;
                try
                {
                    var (r, executed) = await runner.RunAsync(path);
                    NotebookRunner.Write(executed, target);
                    result = r;
                }
                catch (InvalidDataException e)
                {
                    result = new NotebookResult(path, false, 0, 0, TimeSpan.Zero, TimeSpan.Zero, new CellFailure(0, null, "InvalidNotebook", e.Message, [e.Message]));
                }
                reports.Add(Report(result, rel, target));
                Console.WriteLine(result.Ok ? $"  ok in {result.Elapsed.TotalSeconds:F1}s (kernel start {result.KernelStart.TotalSeconds:F1}s)" : $"  FAILED: {result.Describe()}");
                if (!result.Ok) { allOk = false; if (!keepGoing) break; }
            }
            var summary = new JsonObject
            {
                ["profile"] = profile, ["seconds"] = Math.Round(total.Elapsed.TotalSeconds, 1), ["ok"] = allOk,
                ["kernel"] = $"{KernelTool.PackageId} {tool.Version}",
                ["notebooks"] = new JsonArray(reports.Select(r => (JsonNode)r.DeepClone()).ToArray()),
            };
            File.WriteAllText(Path.Combine(outDir, "report.json"), summary.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            if (html) HtmlSite.Write(outDir, reports);
            int passed = reports.Count(r => r["ok"]?.GetValue<bool>() == true);
            Console.WriteLine($"{passed} of {notebooks.Count} notebooks ran in {total.Elapsed.TotalSeconds:F0}s. Executed notebooks: {Path.Combine(outDir, "notebooks")}" +
                              (html ? $"; site: {Path.Combine(outDir, "site", "index.html")}" : ""));
            return allOk ? 0 : 1;
        }

        static JsonObject Report(NotebookResult r, string rel, string executed) => new()
        {
            ["notebook"] = r.Notebook, ["relative"] = rel, ["ok"] = r.Ok, ["cells"] = r.CellsRun, ["code_cells"] = r.CodeCells,
            ["seconds"] = Math.Round(r.Elapsed.TotalSeconds, 1), ["kernel_start_s"] = Math.Round(r.KernelStart.TotalSeconds, 2),
            ["failed_cell"] = r.Failure?.Cell, ["line"] = r.Failure?.Line, ["error"] = r.Failure?.Name, ["message"] = r.Failure?.Message,
            ["describe"] = r.Describe(), ["executed"] = File.Exists(executed) ? executed : null,
        };

        static async Task<int> KernelSpecAsync(string[] args)
        {
            string? prefix = null;
            string? verb = null;
            for (int i = 0; i < args.Length; i++)
            {
                if (args[i] == "--prefix" && i + 1 < args.Length) prefix = args[++i];
                else if (args[i] is "install" or "uninstall" && verb is null) verb = args[i];
                else { Console.Error.WriteLine($"Unknown kernelspec argument '{args[i]}'.\n{Usage}"); return 2; }
            }
            try
            {
                if (verb == "uninstall") { KernelSpec.Uninstall(prefix, Console.Out); return 0; }
                if (verb != "install") { Console.Error.WriteLine(Usage); return 2; }
                var tool = KernelTool.Locate();
                await tool.RestoreAsync();
                await KernelSpec.InstallAsync(tool, prefix, Console.Out);
                return 0;
            }
            catch (Exception e) when (e is FileNotFoundException or InvalidOperationException or IOException or UnauthorizedAccessException)
            {
                Console.Error.WriteLine(e.Message);
                return 2;
            }
        }

        static string Next(string[] args, ref int i) =>
            i + 1 < args.Length ? args[++i] : throw new ArgumentException($"Option {args[i]} needs a value.");

        static List<(string, string)> Discover(IEnumerable<string> inputs)
        {
            var list = new List<(string, string)>();
            foreach (var input in inputs)
            {
                if (File.Exists(input)) { list.Add((Path.GetFullPath(input), Path.GetFileName(input))); continue; }
                if (!Directory.Exists(input)) throw new FileNotFoundException($"No notebook or folder '{input}'.");
                var root = Path.GetFullPath(input);
                var files = Directory.GetFiles(root, "*.ipynb", SearchOption.AllDirectories)
                    .Where(f => !f.Contains(".ipynb_checkpoints", StringComparison.Ordinal))
                    .Select(f => (f, Path.GetRelativePath(root, f)))
                    .OrderBy(p => p.Item2.Count(c => c == Path.DirectorySeparatorChar)).ThenBy(p => p.Item2, StringComparer.Ordinal);
                list.AddRange(files);
            }
            return list;
        }
    }
}
