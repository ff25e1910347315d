using System.Globalization;
using TorchSharp;
using static TorchSharp.torch;

namespace Workbook.Training;

/// <summary>
/// One tensor of a <see cref="GradCheck"/>: autograd's gradient against the central finite difference, over the
/// checked elements.
/// </summary>
/// <param name="Name">The tensor's name (a parameter name such as <c>fc1.weight</c>).</param>
/// <param name="Elements">Elements of the tensor.</param>
/// <param name="Checked">Elements compared (all, or a seeded sample of <see cref="GradCheck.Check(Func{Tensor}, IEnumerable{ValueTuple{string, Tensor}}, GradCheckOptions?)"/>'s
/// <see cref="GradCheckOptions.MaxElementsPerTensor"/>).</param>
/// <param name="RelativeError">‖a − n‖ / max(‖a‖, ‖n‖) over the checked elements (a: autograd, n: numerical);
/// 0 when both are 0. 1 means "unrelated" (e.g. a is 0 where n is not), 0.5 a gradient off by a factor of 2 or ½.</param>
/// <param name="MaxAbsoluteError">max |aᵢ − nᵢ|.</param>
/// <param name="AutogradNorm">‖a‖ over the checked elements.</param>
/// <param name="NumericalNorm">‖n‖ over the checked elements.</param>
/// <param name="WorstIndex">Flat index of the element with the largest |aᵢ − nᵢ|.</param>
/// <param name="WorstAutograd">aᵢ at that element.</param>
/// <param name="WorstNumerical">nᵢ at that element.</param>
/// <param name="HasGradient">False when <c>backward()</c> left the tensor's <c>.grad</c> empty (nothing connects it to the
/// loss, e.g. a <c>detach()</c> on its path); its autograd gradient then counts as 0.</param>
/// <param name="Passed">The relative error is at most the tolerance, or both gradients are below the absolute floor.</param>
public sealed record GradCheckEntry(string Name, long Elements, long Checked, double RelativeError, double MaxAbsoluteError,
    double AutogradNorm, double NumericalNorm, long WorstIndex, double WorstAutograd, double WorstNumerical, bool HasGradient, bool Passed)
{
    /// <inheritdoc/>
    public override string ToString() => string.Create(CultureInfo.InvariantCulture,
        $"{Name}: relative error {RelativeError:E2} over {Checked}/{Elements} elements{(HasGradient ? "" : " (no autograd gradient)")} → {(Passed ? "ok" : "WRONG")}");
}

/// <summary>The result of <see cref="GradCheck.Check(Func{Tensor}, IEnumerable{ValueTuple{string, Tensor}}, GradCheckOptions?)"/>: one entry per tensor.</summary>
/// <param name="Entries">Per tensor, in the order given.</param>
/// <param name="Loss">The loss at the unperturbed point.</param>
/// <param name="Options">The options used.</param>
public sealed record GradCheckResult(IReadOnlyList<GradCheckEntry> Entries, double Loss, GradCheckOptions Options)
{
    /// <summary>Every tensor passed.</summary>
    public bool Passed => Entries.All(e => e.Passed);

    /// <summary>The largest relative error over all tensors.</summary>
    public double MaxRelativeError => Entries.Max(e => e.RelativeError);

    /// <summary>The tensors that failed.</summary>
    public IEnumerable<GradCheckEntry> Failures => Entries.Where(e => !e.Passed);

    /// <summary>An entry by tensor name.</summary>
    public GradCheckEntry this[string name] => Entries.FirstOrDefault(e => e.Name == name)
        ?? throw new KeyNotFoundException($"No tensor '{name}' in the check; have: {string.Join(", ", Entries.Select(e => e.Name))}.");

    /// <inheritdoc/>
    public override string ToString() => string.Create(CultureInfo.InvariantCulture,
        $"gradient check {(Passed ? "passed" : "FAILED")}: max relative error {MaxRelativeError:E2} (tolerance {Options.Tolerance:E0}, ε = {Options.Epsilon:E0}){string.Concat(Failures.Select(f => "; " + f))}");
}

/// <summary>Settings of a gradient check.</summary>
/// <param name="Epsilon">The step h of the central difference (L(θ + h) − L(θ − h)) / 2h. In float64, 1e-6 balances the
/// truncation error (∝ h²) against rounding (∝ 1e-16 / h).</param>
/// <param name="Tolerance">The largest relative error that passes. Correct float64 gradients of smooth functions land
/// around 1e-10–1e-8; kinks (ReLU) crossed by ±h can raise that; real bugs give 1e-2 to 1.</param>
/// <param name="AbsoluteFloor">Gradients whose norms are both below this count as equal (both zero up to rounding).</param>
/// <param name="MaxElementsPerTensor">Check at most this many elements of each tensor (a seeded random sample), or all
/// when null. Each element costs two evaluations of the loss.</param>
/// <param name="Seed">Seed of the element sample.</param>
public sealed record GradCheckOptions(double Epsilon = 1e-6, double Tolerance = 1e-6, double AbsoluteFloor = 1e-10, int? MaxElementsPerTensor = null, int Seed = 0);

/// <summary>
/// Checks autograd's gradients against finite differences, for any scalar loss of any tensors, usually a module's
/// parameters: <c>GradCheck.Check(model, m => Losses.CrossEntropy(m.call(x), y))</c>.
/// <para>
/// For each checked element θᵢ it evaluates the loss at θᵢ ± ε (in place, under <c>no_grad</c>, restoring θᵢ after) and
/// compares the central difference nᵢ = (L(θᵢ + ε) − L(θᵢ − ε)) / 2ε with autograd's aᵢ from one <c>backward()</c>. Per
/// tensor it reports the relative error ‖a − n‖ / max(‖a‖, ‖n‖), which is scale-free: a gradient that is 2× too large
/// gives 0.5 whatever its size, a missing one 1.
/// </para>
/// <para>
/// The tensors must be float64 (in float32 the rounding of L, ~1e-7·|L|, divided by 2ε swamps the comparison; call
/// <c>module.to(float64)</c> and use float64 inputs), and the loss must be deterministic (put dropout in eval mode):
/// the check evaluates the loss twice at the start and refuses if the two values differ. The tensors' values and
/// their <c>.grad</c> fields are left as they were.
/// </para>
/// </summary>
public static class GradCheck
{
    /// <summary>Checks the gradients of <paramref name="loss"/> with respect to every parameter of <paramref name="module"/>.</summary>
    /// <param name="module">The module; its parameters must be float64.</param>
    /// <param name="loss">The scalar loss of the module, e.g. <c>m => Losses.Mse(m.call(x), y)</c>.</param>
    /// <param name="options">Step, tolerance, sampling.</param>
    public static GradCheckResult Check<TModule>(TModule module, Func<TModule, Tensor> loss, GradCheckOptions? options = null) where TModule : nn.Module
    {
        ArgumentNullException.ThrowIfNull(module);
        ArgumentNullException.ThrowIfNull(loss);
        var parameters = module.named_parameters().Select(p => (p.name, (Tensor)p.parameter)).ToList();
        if (parameters.Count == 0) throw new ArgumentException("The module has no parameters to check.", nameof(module));
        return Check(() => loss(module), parameters, options);
    }

    /// <summary>Checks the gradients of <paramref name="loss"/> with respect to the given tensors (parameters or inputs).</summary>
    /// <param name="loss">Computes the scalar loss from the current values of the tensors.</param>
    /// <param name="tensors">Named float64 tensors that require gradients (leaves: parameters, or inputs made with
    /// <c>requires_grad: true</c>).</param>
    /// <param name="options">Step, tolerance, sampling.</param>
    /// <exception cref="ArgumentException">A tensor is not float64, does not require gradients, or is not contiguous.</exception>
    /// <exception cref="InvalidOperationException">The loss is not a finite scalar, or is not deterministic.</exception>
    public static GradCheckResult Check(Func<Tensor> loss, IEnumerable<(string Name, Tensor Tensor)> tensors, GradCheckOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(loss);
        ArgumentNullException.ThrowIfNull(tensors);
        options ??= new GradCheckOptions();
        if (!(options.Epsilon > 0)) throw new ArgumentException($"Epsilon must be > 0, got {options.Epsilon}.", nameof(options));
        if (!(options.Tolerance > 0)) throw new ArgumentException($"Tolerance must be > 0, got {options.Tolerance}.", nameof(options));
        if (options.MaxElementsPerTensor is < 1) throw new ArgumentException($"MaxElementsPerTensor must be ≥ 1 or null, got {options.MaxElementsPerTensor}.", nameof(options));
        var list = tensors.ToList();
        if (list.Count == 0) throw new ArgumentException("No tensors to check.", nameof(tensors));
        foreach (var (name, t) in list)
        {
            if (t.dtype != ScalarType.Float64)
                throw new ArgumentException($"Tensor '{name}' is {t.dtype}; a gradient check needs float64 (call module.to(float64) and use float64 inputs).", nameof(tensors));
            if (!t.requires_grad) throw new ArgumentException($"Tensor '{name}' does not require gradients; autograd computes none for it.", nameof(tensors));
            if (!t.is_contiguous()) throw new ArgumentException($"Tensor '{name}' is not contiguous; the check perturbs it element by element in place.", nameof(tensors));
        }

        // The caller's .grad fields are put back at the end: the check must not clobber gradients being accumulated.
        var saved = list.Select(p => p.Tensor.grad?.detach().clone()).ToArray();
        try
        {
            return Run(loss, list, options);
        }
        finally
        {
            for (int i = 0; i < list.Count; i++)
            {
                var t = list[i].Tensor;
                if (saved[i] is { } s)
                {
                    if (t.grad is { } g) { using (no_grad()) g.copy_(s); s.Dispose(); }
                    else t.grad = s;
                }
                else if (t.grad is not null) t.grad = null;
            }
        }
    }

    static GradCheckResult Run(Func<Tensor> loss, List<(string Name, Tensor Tensor)> list, GradCheckOptions options)
    {
        // Autograd's gradients, from one backward pass with clean .grad fields.
        foreach (var (_, t) in list) t.grad?.zero_();
        double loss0;
        var autograd = new Tensor?[list.Count];
        using (var scope = NewDisposeScope())
        {
            var l = loss();
            loss0 = Scalar(l, "the loss");
            if (l.requires_grad) l.backward(); // else nothing reaches the tensors: every .grad stays empty
            for (int i = 0; i < list.Count; i++) autograd[i] = list[i].Tensor.grad?.detach().clone().cpu().MoveToOuterDisposeScope();
        }
        foreach (var (_, t) in list) t.grad?.zero_();

        var entries = new List<GradCheckEntry>();
        using (no_grad())
        {
            double again = Evaluate(loss);
            if (again != loss0)
                throw new InvalidOperationException($"The loss is not deterministic: {loss0:R} then {again:R} at the same point (dropout in train mode? call model.eval()).");
            for (int i = 0; i < list.Count; i++)
            {
                var (name, t) = list[i];
                long n = t.numel();
                var indices = Sample(n, options.MaxElementsPerTensor, options.Seed + i);
                var flat = t.view(-1);
                var a = autograd[i] is { } g ? g.view(-1).data<double>().ToArray() : null;
                var an = new double[indices.Length];
                var nu = new double[indices.Length];
                for (int k = 0; k < indices.Length; k++)
                {
                    long idx = indices[k];
                    using var element = flat[idx];
                    double original = element.item<double>();
                    element.fill_(original + options.Epsilon);
                    double plus = Evaluate(loss);
                    element.fill_(original - options.Epsilon);
                    double minus = Evaluate(loss);
                    element.fill_(original);
                    nu[k] = (plus - minus) / (2 * options.Epsilon);
                    an[k] = a is null ? 0 : a[idx];
                }
                entries.Add(Compare(name, n, indices, an, nu, a is not null, options));
                autograd[i]?.Dispose();
            }
        }
        return new GradCheckResult(entries, loss0, options);
    }

    static GradCheckEntry Compare(string name, long n, long[] indices, double[] a, double[] num, bool hasGradient, GradCheckOptions options)
    {
        double diff2 = 0, a2 = 0, n2 = 0, maxAbs = -1, worstA = 0, worstN = 0;
        long worst = indices.Length > 0 ? indices[0] : 0;
        for (int k = 0; k < a.Length; k++)
        {
            double d = a[k] - num[k];
            diff2 += d * d; a2 += a[k] * a[k]; n2 += num[k] * num[k];
            if (Math.Abs(d) > maxAbs) { maxAbs = Math.Abs(d); worst = indices[k]; worstA = a[k]; worstN = num[k]; }
        }
        double aNorm = Math.Sqrt(a2), nNorm = Math.Sqrt(n2), denominator = Math.Max(aNorm, nNorm);
        double relative = denominator == 0 ? 0 : Math.Sqrt(diff2) / denominator;
        bool bothTiny = aNorm <= options.AbsoluteFloor && nNorm <= options.AbsoluteFloor;
        bool passed = double.IsFinite(relative) && (relative <= options.Tolerance || bothTiny);
        return new GradCheckEntry(name, n, a.Length, relative, Math.Max(0, maxAbs), aNorm, nNorm, worst, worstA, worstN, hasGradient, passed);
    }

    static long[] Sample(long n, int? max, int seed)
    {
        if (max is not { } m || m >= n)
        {
            var all = new long[n];
            for (long i = 0; i < n; i++) all[i] = i;
            return all;
        }
        // m distinct indices drawn with a seeded generator, sorted so the report reads in order.
        var random = new Random(seed);
        var picked = new HashSet<long>();
        while (picked.Count < m) picked.Add(random.NextInt64(n));
        return picked.Order().ToArray();
    }

    static double Evaluate(Func<Tensor> loss)
    {
        using var scope = NewDisposeScope();
        return Scalar(loss(), "the loss");
    }

    static double Scalar(Tensor l, string what)
    {
        if (l.numel() != 1) throw new InvalidOperationException($"{what} must be a scalar, got shape [{string.Join(", ", l.shape)}].");
        double v = l.to_type(ScalarType.Float64).item<double>();
        if (!double.IsFinite(v)) throw new InvalidOperationException($"{what} is {v}; a gradient check needs a finite loss.");
        return v;
    }
}
