namespace Workbook.Kernel;

/// <summary>
/// The kernel's own log: stderr (Jupyter shows a kernel's stderr in its server console; tests capture it) and, when
/// the environment variable WORKBOOK_KERNEL_LOG names a file, that file too. Cells' console output never comes here.
/// </summary>
public sealed class KernelLog
{
    readonly TextWriter _stderr;
    readonly string? _file;
    readonly object _gate = new();

    /// <summary>Logs to <paramref name="stderr"/> (the process's real stderr) and to $WORKBOOK_KERNEL_LOG if set.</summary>
    public KernelLog(TextWriter stderr)
    {
        _stderr = stderr;
        var file = Environment.GetEnvironmentVariable("WORKBOOK_KERNEL_LOG");
        _file = string.IsNullOrWhiteSpace(file) ? null : file;
    }

    /// <summary>Normal events: start, interrupts, shutdown.</summary>
    public void Info(string message) => Write("info", message);

    /// <summary>Rejected or unsupported messages.</summary>
    public void Warn(string message) => Write("warn", message);

    /// <summary>Failures of the kernel itself.</summary>
    public void Error(string message) => Write("error", message);

    void Write(string level, string message)
    {
        var line = $"[workbook-kernel {DateTime.UtcNow:HH:mm:ss.fff} {level}] {message}";
        lock (_gate)
        {
            try
            {
                _stderr.WriteLine(line);
                _stderr.Flush();
                if (_file is not null) File.AppendAllText(_file, line + Environment.NewLine);
            }
            catch (IOException) { } // a closed stderr must not take the kernel down
        }
    }
}
