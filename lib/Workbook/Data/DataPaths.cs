namespace Workbook.Data;

/// <summary>
/// Finds the repository's <c>data/</c> folder, where the datasets, vocabularies and checkpoints the notebooks
/// use are kept so that everything works offline. Looks at <c>WORKBOOK_DATA</c>, then walks up from the current
/// directory and from the library's location to a folder that has <c>data/</c> beside <c>notebooks/</c> or <c>lib/</c>.
/// </summary>
public static class DataPaths
{
    /// <summary>The data folder, or null when none is found.</summary>
    public static string? TryFindDataDirectory()
    {
        var env = Environment.GetEnvironmentVariable("WORKBOOK_DATA");
        if (!string.IsNullOrWhiteSpace(env)) return Directory.Exists(env) ? Path.GetFullPath(env) : null;
        foreach (var start in new[] { Directory.GetCurrentDirectory(), AppContext.BaseDirectory, Path.GetDirectoryName(typeof(DataPaths).Assembly.Location) })
        {
            if (string.IsNullOrEmpty(start)) continue;
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
            {
                var data = Path.Combine(dir.FullName, "data");
                if (Directory.Exists(data) && (Directory.Exists(Path.Combine(dir.FullName, "notebooks")) || Directory.Exists(Path.Combine(dir.FullName, "lib"))))
                    return data;
            }
        }
        return null;
    }

    /// <summary>The data folder.</summary>
    /// <exception cref="DirectoryNotFoundException">No data folder was found; the message says how to point to one.</exception>
    public static string DataDirectory => TryFindDataDirectory() ?? throw new DirectoryNotFoundException(
        $"The Workbook data folder was not found from '{Directory.GetCurrentDirectory()}'. Run from inside the repository " +
        "(notebooks/ and data/ side by side) or set WORKBOOK_DATA to the folder's path.");

    /// <summary>A file inside the data folder, checked to exist: <c>DataPaths.File("fashion-mnist", "train-images-idx3-ubyte.gz")</c>.</summary>
    /// <exception cref="FileNotFoundException">The file is missing; the message names the full path.</exception>
    public static string File(params string[] parts)
    {
        var path = Path.Combine(new[] { DataDirectory }.Concat(parts).ToArray());
        if (!System.IO.File.Exists(path))
            throw new FileNotFoundException($"Data file '{path}' is missing. The repository's data/ folder ships it: " +
                "restore it with 'git checkout -- data' (or 'git lfs pull' if your clone skipped large files).", path);
        return path;
    }
}
