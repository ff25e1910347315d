using System.Reflection;

namespace Workbook.Runner.Site;

/// <summary>The files under <c>Site/Assets</c>, embedded in the runner assembly so a site builds from anywhere.</summary>
static class SiteAssets
{
    const string Prefix = "Workbook.Runner.Site.Assets/";

    // Resource names carry the folder separator of the machine that built the assembly; pages use forward slashes.
    static readonly Dictionary<string, string> Resources = typeof(SiteAssets).Assembly.GetManifestResourceNames()
        .Where(n => n.StartsWith(Prefix, StringComparison.Ordinal))
        .ToDictionary(n => n[Prefix.Length..].Replace('\\', '/'), n => n, StringComparer.Ordinal);

    /// <summary>Every embedded asset, by its path under <c>Assets/</c> (forward slashes).</summary>
    public static IEnumerable<string> Names => Resources.Keys.Order(StringComparer.Ordinal);

    /// <summary>An asset's bytes.</summary>
    public static byte[] Bytes(string name)
    {
        using var stream = Open(name);
        using var copy = new MemoryStream();
        stream.CopyTo(copy);
        return copy.ToArray();
    }

    /// <summary>An asset's text (UTF-8).</summary>
    public static string Text(string name)
    {
        using var reader = new StreamReader(Open(name));
        return reader.ReadToEnd();
    }

    static Stream Open(string name) =>
        (Resources.TryGetValue(name, out var resource) ? typeof(SiteAssets).Assembly.GetManifestResourceStream(resource) : null)
        ?? throw new FileNotFoundException($"Site asset '{name}' is not embedded in {Assembly.GetExecutingAssembly().GetName().Name}; expected one of: {string.Join(", ", Names)}.");
}
