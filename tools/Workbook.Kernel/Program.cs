using Workbook.Engine;
using Workbook.Kernel;

// Workbook.Kernel: the Jupyter kernel front end of the Workbook engine (the runner is the other one).
return KernelCli.Run(args);

namespace Workbook.Kernel
{
    static class KernelCli
    {
        const string Usage = """
            Usage:
              Workbook.Kernel CONNECTION_FILE
                  Runs the kernel (this is what Jupyter starts, with the connection file it wrote).
              Workbook.Kernel install [--prefix DIR] [--name NAME] [--display-name TEXT]
                  Writes the kernelspec NAME (default .net-csharp, the name our notebooks use) into Jupyter's user data
                  folder, or into DIR/share/jupyter/kernels with --prefix. A kernelspec of the same name already there
                  (Polyglot's) is kept aside and restored by uninstall; --name installs beside it instead.
              Workbook.Kernel uninstall [--prefix DIR] [--name NAME]
                  Removes it.
            From the repository: dotnet run -c Release --project tools/Workbook.Kernel -- install
            Environment: WORKBOOK_KERNEL_LOG=FILE also writes the kernel log (stderr) to FILE.
            Exit codes: 0 ok, 1 failure, 2 bad arguments.
            """;

        public static int Run(string[] args)
        {
            if (args.Length == 0 || args[0] is "-h" or "--help") { Console.WriteLine(Usage); return args.Length == 0 ? 2 : 0; }
            try
            {
                return args[0] switch
                {
                    "install" => Install(args[1..], uninstall: false),
                    "uninstall" => Install(args[1..], uninstall: true),
                    _ when args.Length == 1 && !args[0].StartsWith('-') => RunKernel(args[0]),
                    _ => BadArguments($"Unknown arguments '{string.Join(' ', args)}'."),
                };
            }
            catch (ArgumentException e) { return BadArguments(e.Message); }
        }

        static int BadArguments(string message)
        {
            Console.Error.WriteLine(message);
            Console.Error.WriteLine(Usage);
            return 2;
        }

        static int Install(string[] args, bool uninstall)
        {
            string? prefix = null;
            string name = KernelSpecInstaller.DefaultName, display = KernelSpecInstaller.DefaultDisplayName;
            for (int i = 0; i < args.Length; i++)
            {
                string Value() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"Option {args[i]} needs a value.");
                switch (args[i])
                {
                    case "--prefix": prefix = Value(); break;
                    case "--name": name = Value(); break;
                    case "--display-name" when !uninstall: display = Value(); break;
                    case "--user": prefix = null; break;
                    default: throw new ArgumentException($"Unknown option '{args[i]}'.");
                }
            }
            if (uninstall) return KernelSpecInstaller.Uninstall(name, prefix, Console.Out) ? 0 : 1;
            KernelSpecInstaller.Install(name, prefix, display, Console.Out);
            return 0;
        }

        static int RunKernel(string connectionFile)
        {
            var log = new KernelLog(Console.Error); // the real stderr, before the engine routes Console to cells
            ConnectionInfo connection;
            try { connection = ConnectionInfo.Load(connectionFile); }
            catch (Exception e) when (e is IOException or InvalidDataException)
            {
                log.Error(e.Message);
                return 1;
            }
            AppDomain.CurrentDomain.UnhandledException += (_, e) =>
                log.Error($"unhandled exception on a background thread ends the kernel: {e.ExceptionObject}");
            TaskScheduler.UnobservedTaskException += (_, e) =>
            {
                log.Warn($"a task a cell started failed unobserved: {e.Exception.GetBaseException().Message}");
                e.SetObserved();
            };
            // No stdin channel: Jupyter gives the kernel a pipe nobody writes, so Console.ReadLine() would hang; it reads end of input instead.
            Console.SetIn(TextReader.Null);
            var session = new ScriptSession(Environment.CurrentDirectory, new PackageRestorer(), new StringWriterLog(log));
            var code = new KernelServer(connection, session, log).Run();
            // Exit even if a cell left a foreground thread running.
            Environment.Exit(code);
            return code;
        }

        /// <summary>Package restore progress lines go to the kernel log.</summary>
        sealed class StringWriterLog : TextWriter
        {
            readonly KernelLog _log;
            readonly System.Text.StringBuilder _line = new();
            public StringWriterLog(KernelLog log) => _log = log;
            public override System.Text.Encoding Encoding => System.Text.Encoding.UTF8;
            public override void Write(char value)
            {
                if (value == '\n') { _log.Info(_line.ToString().Trim()); _line.Clear(); }
                else if (value != '\r') _line.Append(value);
            }
        }
    }
}
