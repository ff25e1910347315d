using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using Workbook.Engine;
using Workbook.Runner;

// Workbook.Runner: executes notebooks headlessly. Each notebook runs in a fresh child process (a fresh kernel),
// so notebooks cannot leak state into each other and a runaway cell is ended with its process.
return await RunnerCli.MainAsync(args);

namespace Workbook.Runner
{
    static class RunnerCli
    {
        const string Usage = """
            Usage: Workbook.Runner [NOTEBOOK.ipynb | FOLDER]... [options]
              Executes C# notebooks in order (folders: every *.ipynb inside, sorted, subfolders after) and writes
              the executed notebooks plus an offline HTML site.
            Options:
              --out DIR            output folder (default: out)
              --profile P          Quick or Full (default: $WORKBOOK_PROFILE, else Full)
              --cell-timeout S     seconds one cell may run (default 600)
              --keep-going         run every notebook even after one fails
              --no-html            skip the HTML site
            Exit code: 0 when every notebook ran, 1 when one failed, 2 for bad arguments.
            """;

        public static async Task<int> MainAsync(string[] args)
        {
            if (args.Length >= 3 && args[0] == "--child") return await ChildAsync(args[1], args[2], args.Length > 3 ? int.Parse(args[3]) : 600);

            var inputs = new List<string>();
            string outDir = "out";
            string? profile = Environment.GetEnvironmentVariable("WORKBOOK_PROFILE");
            int cellTimeout = 600;
            bool keepGoing = false, html = true;
            for (int i = 0; i < args.Length; i++)
            {
                switch (args[i])
                {
                    case "-h" or "--help": Console.WriteLine(Usage); return 0;
                    case "--out": outDir = Next(args, ref i); break;
                    case "--profile": profile = Next(args, ref i); break;
                    case "--cell-timeout": cellTimeout = int.Parse(Next(args, ref i)); break;
                    case "--keep-going": keepGoing = true; break;
                    case "--no-html": html = false; break;
                    default:
                        if (args[i].StartsWith("--", StringComparison.Ordinal)) { Console.Error.WriteLine($"Unknown option '{args[i]}'.\n{Usage}"); return 2; }
                        inputs.Add(args[i]);
                        break;
                }
            }
            if (profile is not null && !profile.Equals("Quick", StringComparison.OrdinalIgnoreCase) && !profile.Equals("Full", StringComparison.OrdinalIgnoreCase))
            {
                Console.Error.WriteLine($"--profile must be Quick or Full, got '{profile}'.");
                return 2;
            }
            if (inputs.Count == 0) inputs.Add("notebooks");
            List<(string Path, string Relative)> notebooks;
            try { notebooks = Discover(inputs); }
            catch (FileNotFoundException e) { Console.Error.WriteLine(e.Message); return 2; }
            if (notebooks.Count == 0) { Console.Error.WriteLine($"No .ipynb notebooks found in {string.Join(", ", inputs)}."); return 2; }

            outDir = Path.GetFullPath(outDir);
            Directory.CreateDirectory(outDir);
            Console.WriteLine($"Workbook runner: {notebooks.Count} notebook(s), profile {profile ?? "Full"}, output {outDir}");
            var reports = new List<JsonObject>();
            var total = Stopwatch.StartNew();
            bool allOk = true;
            foreach (var (path, rel) in notebooks)
            {
                var target = Path.Combine(outDir, "notebooks", rel);
                Directory.CreateDirectory(Path.GetDirectoryName(target)!);
                Console.WriteLine($"[{reports.Count + 1}/{notebooks.Count}] {rel}");
                var report = await RunChildAsync(path, target, profile, cellTimeout);
                report["relative"] = rel;
                reports.Add(report);
                bool ok = report["ok"]?.GetValue<bool>() == true;
                Console.WriteLine(ok ? $"  ok in {report["seconds"]}s" : $"  FAILED: {report["describe"]}");
                if (!ok) { allOk = false; if (!keepGoing) break; }
            }
            var summary = new JsonObject
            {
                ["profile"] = profile ?? "Full", ["seconds"] = Math.Round(total.Elapsed.TotalSeconds, 1), ["ok"] = allOk,
                ["notebooks"] = new JsonArray(reports.Select(r => (JsonNode)r.DeepClone()).ToArray()),
            };
            File.WriteAllText(Path.Combine(outDir, "report.json"), summary.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            if (html) HtmlSite.Write(outDir, reports);
            int passed = reports.Count(r => r["ok"]?.GetValue<bool>() == true);
            Console.WriteLine($"{passed} of {notebooks.Count} notebooks ran in {total.Elapsed.TotalSeconds:F0}s. Executed notebooks: {Path.Combine(outDir, "notebooks")}" +
                              (html ? $"; site: {Path.Combine(outDir, "site", "index.html")}" : ""));
            return allOk ? 0 : 1;
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

        static async Task<JsonObject> RunChildAsync(string notebook, string target, string? profile, int cellTimeout)
        {
            var self = typeof(RunnerCli).Assembly.Location;
            var reportFile = target + ".report.json";
            if (File.Exists(reportFile)) File.Delete(reportFile);
            var psi = new ProcessStartInfo("dotnet") { UseShellExecute = false };
            foreach (var a in new[] { self, "--child", notebook, target, cellTimeout.ToString() }) psi.ArgumentList.Add(a);
            if (profile is not null) psi.Environment["WORKBOOK_PROFILE"] = profile;
            var sw = Stopwatch.StartNew();
            using var proc = Process.Start(psi)!;
            // The child enforces the per-cell timeout; this is the backstop for a child that hangs anyway.
            var exited = await Task.Run(() => proc.WaitForExit(TimeSpan.FromSeconds(cellTimeout * 4 + 120)));
            if (!exited) { try { proc.Kill(entireProcessTree: true); } catch (InvalidOperationException) { } }
            if (File.Exists(reportFile))
            {
                var node = JsonNode.Parse(File.ReadAllText(reportFile))!.AsObject();
                File.Delete(reportFile);
                return node;
            }
            return new JsonObject
            {
                ["notebook"] = notebook, ["ok"] = false, ["seconds"] = Math.Round(sw.Elapsed.TotalSeconds, 1),
                ["describe"] = exited ? $"{notebook}: the runner process exited with code {proc.ExitCode} before reporting (crash in native code?)"
                                      : $"{notebook}: killed after {sw.Elapsed.TotalSeconds:F0}s without finishing",
            };
        }

        // One notebook in this process: execute, save the executed copy, write a report beside it.
        static async Task<int> ChildAsync(string notebook, string target, int cellTimeout)
        {
            var doc = NotebookDocument.Load(notebook);
            ConsoleRouter.Install();
            var executor = new NotebookExecutor { CellTimeout = TimeSpan.FromSeconds(cellTimeout), Progress = ConsoleRouter.OriginalOut };
            NotebookReport report;
            try { report = await executor.RunAsync(doc); }
            catch (Exception e)
            {
                report = new NotebookReport(notebook, false, 0, null, new CellError(e.GetType().Name, e.Message, null, Array.Empty<string>()), TimeSpan.Zero);
            }
            doc.Save(target);
            var json = new JsonObject
            {
                ["notebook"] = notebook, ["ok"] = report.Ok, ["cells"] = report.CellsRun, ["seconds"] = Math.Round(report.Elapsed.TotalSeconds, 1),
                ["failed_cell"] = report.FailedCell, ["line"] = report.Error?.Line, ["error"] = report.Error?.Name,
                ["message"] = report.Error?.Message, ["describe"] = report.Describe(), ["executed"] = target,
            };
            File.WriteAllText(target + ".report.json", json.ToJsonString());
            ConsoleRouter.OriginalOut.Flush();
            // Exit hard: a timed-out cell's thread may still be running.
            Environment.Exit(report.Ok ? 0 : 1);
            return 0;
        }
    }
}
