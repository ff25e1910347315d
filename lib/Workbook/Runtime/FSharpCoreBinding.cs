using System.Reflection;
using System.Runtime.Loader;

namespace Workbook.Runtime;

/// <summary>
/// Lets Plotly.NET run inside the .NET Interactive kernel. The kernel (dotnet-interactive 1.0.712001) loads its own
/// FSharp.Core, assembly version 10.0.0.0 (file version 10.1.x), into the default load context for its F# kernel.
/// Plotly.NET 6.0.0 and DynamicObj 8.0.0 are compiled against FSharp.Core 10.1.0.0; an assembly name can be loaded
/// only once per load context, so the runtime cannot bind the 10.1 copy that <c>#r "nuget:"</c> restored, and the
/// first chart fails with <c>FileNotFoundException: FSharp.Core, Version=10.1.0.0</c>. This handler answers that
/// request with the FSharp.Core already loaded (the same major version, which is all Plotly.NET uses of it).
/// In a process that loads FSharp.Core 10.1 normally (tests, tools) the request never fails and the handler never runs.
/// </summary>
public static class FSharpCoreBinding
{
    static int _installed;

    /// <summary>True once a request was answered with the loaded FSharp.Core (for the setup summary and tests).</summary>
    public static bool Redirected { get; private set; }

    // Runs when the Workbook assembly loads, so the handler is in place before any method that mentions a
    // Plotly.NET type is compiled (the JIT resolves FSharp.Core then, before a static constructor could run).
#pragma warning disable CA2255 // a library module initializer is intended here: it must precede every Plotly.NET use
    [System.Runtime.CompilerServices.ModuleInitializer]
    internal static void OnLoad() => Install();
#pragma warning restore CA2255

    /// <summary>Installs the handler on <see cref="AssemblyLoadContext.Default"/>; idempotent.</summary>
    public static void Install()
    {
        if (Interlocked.Exchange(ref _installed, 1) == 1) return;
        AssemblyLoadContext.Default.Resolving += Resolve;
    }

    static Assembly? Resolve(AssemblyLoadContext context, AssemblyName requested)
    {
        if (!string.Equals(requested.Name, "FSharp.Core", StringComparison.OrdinalIgnoreCase)) return null;
        var loaded = context.Assemblies.FirstOrDefault(a => string.Equals(a.GetName().Name, "FSharp.Core", StringComparison.OrdinalIgnoreCase))
                     ?? TryLoadHostCopy(context);
        // Only a lower version of the same major line: anything else is a real mismatch and should fail as it would.
        if (loaded?.GetName().Version is not { } have || requested.Version is not { } want || have.Major != want.Major || have >= want) return null;
        Redirected = true;
        return loaded;
    }

    // The host's own FSharp.Core (its trusted platform assemblies), by simple name: binds without a version check.
    static Assembly? TryLoadHostCopy(AssemblyLoadContext context)
    {
        try { return context.LoadFromAssemblyName(new AssemblyName("FSharp.Core")); }
        catch (Exception e) when (e is FileNotFoundException or FileLoadException or BadImageFormatException) { return null; }
    }
}
