using System.Reflection;
using TorchSharp;
using Workbook.Plots;

namespace Workbook;

/// <summary>How much work a notebook does: <c>Quick</c> (CI, smoke runs) or <c>Full</c> (the real results).</summary>
public enum RunProfile
{
    /// <summary>Small data and few epochs: every notebook in a minute or two. CI runs this.</summary>
    Quick,
    /// <summary>The sizes the notebooks' claims are made at.</summary>
    Full,
}

/// <summary>What <see cref="Notebook.Setup"/> did; displays as a small table.</summary>
/// <param name="TorchSharpVersion">TorchSharp's assembly version.</param>
/// <param name="LibTorchVersion">The libtorch version TorchSharp was built for.</param>
/// <param name="Device">The device notebooks should use.</param>
/// <param name="Threads">Intra-op threads.</param>
/// <param name="Seed">The seed every RNG got.</param>
/// <param name="Profile">Quick or Full.</param>
/// <param name="NativeFix">What the libstdc++ fix did.</param>
/// <param name="DataDirectory">The data folder found, or null.</param>
public sealed record SetupSummary(string TorchSharpVersion, string LibTorchVersion, string Device, int Threads, int Seed,
    RunProfile Profile, string NativeFix, string? DataDirectory);

/// <summary>
/// The one entry point of a notebook's first cell: <c>Notebook.Setup(seed: 42)</c>. It makes TorchSharp load
/// (<see cref="Runtime.TorchRuntime"/>), registers the display formatters, picks the device, seeds every RNG,
/// sets threads, and checks that the loaded library matches the sources in the checkout.
/// Environment: <c>WORKBOOK_PROFILE</c> (Quick|Full, default Full), <c>WORKBOOK_DEVICE</c> (cpu|cuda|cuda:N,
/// default cuda when available), <c>WORKBOOK_THREADS</c> (default: all cores).
/// </summary>
public static class Notebook
{
    static torch.Device? _device;

    /// <summary>The run profile from <c>WORKBOOK_PROFILE</c>; Full when unset.</summary>
    public static RunProfile Profile => ParseProfile(Environment.GetEnvironmentVariable("WORKBOOK_PROFILE"));

    /// <summary>The device chosen by <see cref="Setup"/> (CPU before it runs).</summary>
    public static torch.Device Device => _device ?? torch.CPU;

    /// <summary>The seed of the last <see cref="Setup"/>.</summary>
    public static int Seed { get; private set; } = 42;

    /// <summary>A seeded .NET random generator for C# code (shuffles, sampling), reset by <see cref="Setup"/>.</summary>
    public static Random Random { get; private set; } = new(42);

    /// <summary>Picks the value for the current profile: <c>Notebook.Pick(quick: 1, full: 10)</c>.</summary>
    public static T Pick<T>(T quick, T full) => Profile == RunProfile.Quick ? quick : full;

    /// <summary>Parses a profile name, case-insensitively; null or empty means Full.</summary>
    /// <exception cref="ArgumentException">The name is neither Quick nor Full.</exception>
    public static RunProfile ParseProfile(string? value)
    {
        if (string.IsNullOrWhiteSpace(value)) return RunProfile.Full;
        return Enum.TryParse<RunProfile>(value.Trim(), ignoreCase: true, out var p) ? p
            : throw new ArgumentException($"WORKBOOK_PROFILE must be 'Quick' or 'Full', got '{value}'.", nameof(value));
    }

    /// <summary>Prepares the notebook session; call it in the first cell.</summary>
    /// <param name="seed">Seed for torch (CPU and CUDA) and for <see cref="Random"/>.</param>
    /// <param name="device">Overrides <c>WORKBOOK_DEVICE</c>: "cpu", "cuda" or "cuda:N".</param>
    /// <param name="threads">Overrides <c>WORKBOOK_THREADS</c>.</param>
    /// <param name="checkStale">Compare the loaded library with lib/ sources of the checkout (on by default).</param>
    public static SetupSummary Setup(int seed = 42, string? device = null, int? threads = null, bool checkStale = true)
    {
        Runtime.FSharpCoreBinding.Install(); // before anything touches Plotly.NET (see there)
        var native = Runtime.TorchRuntime.EnsureLoaded();
        Formatters.Register();
        if (checkStale) Runtime.StaleBuild.ThrowIfStale();

        var requested = device ?? Environment.GetEnvironmentVariable("WORKBOOK_DEVICE");
        _device = ChooseDevice(requested);

        int n = threads ?? (int.TryParse(Environment.GetEnvironmentVariable("WORKBOOK_THREADS"), out var t) && t > 0 ? t : Environment.ProcessorCount);
        torch.set_num_threads(n);
        Reseed(seed);

        var ts = typeof(torch).Assembly.GetName().Version?.ToString(3) ?? "?";
        return new SetupSummary(ts, torch.__version__, _device.ToString(), torch.get_num_threads(), seed, Profile,
            native.Patched ? $"patched copy loaded ({native.Decision})" : native.Decision, Data.DataPaths.TryFindDataDirectory());
    }

    /// <summary>
    /// Shows <paramref name="value"/> and returns a handle whose <c>Update(newValue)</c> replaces that output in
    /// place: <c>var view = Notebook.Display("starting…"); … view.Update(progress);</c>. Use it for live progress;
    /// the kernel's <c>display(x).Update(y)</c> adds a second output instead (see <see cref="Runtime.KernelDisplay"/>).
    /// </summary>
    /// <param name="value">What to show first.</param>
    /// <param name="mimeTypes">MIME types to format it as (default: the value's preferred ones).</param>
    public static Microsoft.DotNet.Interactive.Formatting.DisplayedValue Display(object? value, params string[] mimeTypes) =>
        Runtime.KernelDisplay.Show(value, mimeTypes);

    /// <summary>Seeds torch (CPU and CUDA) and <see cref="Random"/> again, e.g. before a comparison run.</summary>
    public static void Reseed(int seed)
    {
        Seed = seed;
        torch.manual_seed(seed);
        if (torch.cuda.is_available()) torch.cuda.manual_seed_all(seed);
        Random = new Random(seed);
    }

    static torch.Device ChooseDevice(string? requested)
    {
        if (string.IsNullOrWhiteSpace(requested) || requested.Equals("auto", StringComparison.OrdinalIgnoreCase))
            return TryCuda() ? torch.CUDA : torch.CPU;
        if (requested.StartsWith("cuda", StringComparison.OrdinalIgnoreCase) && !TryCuda())
            throw new InvalidOperationException(
                $"WORKBOOK_DEVICE='{requested}' asks for CUDA, but CUDA is not available: reference TorchSharp-cuda-linux " +
                "(or -cuda-windows) instead of TorchSharp-cpu, and check 'nvidia-smi'. See environment.md, section GPU.");
        return new torch.Device(requested);
    }

    static bool TryCuda()
    {
        try { return torch.cuda.is_available(); }
        catch (Exception) { return false; }
    }
}
