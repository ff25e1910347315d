using System.Reflection;
using Microsoft.DotNet.Interactive.Formatting;

namespace Workbook.Runtime;

/// <summary>
/// A display whose <c>Update</c> replaces what it shows, on the real .NET Interactive kernel.
/// <para>
/// The kernel's own <c>display(x)</c> (dotnet-interactive 1.0.712001) publishes one <see cref="DisplayedValue"/>
/// and returns another (Formatting's <c>DisplayExtensions.Display</c> constructs two), so <c>.Update(y)</c> names
/// a display id no front end has seen: VS Code appends a second output, JupyterLab drops the update, and a
/// progress line never moves. The kernel's <c>KernelInvocationContext.Display</c> returns the object it
/// published; this calls it. The kernel assembly is found at run time rather than referenced, because it would
/// bring the C# compiler into every restore of this library; outside a kernel (tests, programs) this falls back
/// to Formatting's <c>Display</c>, which writes to the console.
/// </para>
/// </summary>
static class KernelDisplay
{
    static readonly Lazy<(PropertyInfo Current, MethodInfo Display)?> Kernel = new(Find);

    /// <summary>Shows <paramref name="value"/> and returns the handle that updates that same output.</summary>
    public static DisplayedValue Show(object? value, string[] mimeTypes)
    {
        var boxed = value ?? Formatter.NullString;
        if (Kernel.Value is { } k && k.Current.GetValue(null) is { } context
            && k.Display.Invoke(null, [context, boxed, mimeTypes]) is DisplayedValue shown)
            return shown;
        return boxed.Display(mimeTypes);
    }

    static (PropertyInfo, MethodInfo)? Find()
    {
        var asm = AppDomain.CurrentDomain.GetAssemblies().FirstOrDefault(a => a.GetName().Name == "Microsoft.DotNet.Interactive");
        var contextType = asm?.GetType("Microsoft.DotNet.Interactive.KernelInvocationContext");
        var current = contextType?.GetProperty("Current", BindingFlags.Public | BindingFlags.Static);
        var display = asm?.GetType("Microsoft.DotNet.Interactive.KernelInvocationContextExtensions")?
            .GetMethod("Display", BindingFlags.Public | BindingFlags.Static, [contextType!, typeof(object), typeof(string[])]);
        return current is not null && display is not null && display.ReturnType == typeof(DisplayedValue) ? (current, display) : null;
    }
}
