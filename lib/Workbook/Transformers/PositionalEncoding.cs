using TorchSharp;
using TorchSharp.Modules;
using Workbook.Attention;
using static TorchSharp.torch;

namespace Workbook.Transformers;

/// <summary>
/// The sinusoidal positional encoding of Vaswani et al. (2017, section 3.5), added to the token embeddings:
/// <code>
/// PE[pos, 2i]   = sin(pos / 10000^(2i/d))
/// PE[pos, 2i+1] = cos(pos / 10000^(2i/d))
/// </code>
/// Columns 2i and 2i+1 share the frequency <c>ω_i = 10000^(-2i/d)</c>, from 1 (period 2π) down to about 1/10000.
/// <b>Odd d</b>: the same formula column by column with d in the exponent, so there are ⌈d/2⌉ sin columns and ⌊d/2⌋
/// cos columns and the last column is a sin (the PyTorch tutorial's code fails for odd d). The table is computed in
/// float64 and rounded once, so it matches an exact table to float32 rounding.
/// </summary>
public sealed class SinusoidalPositionalEncoding : nn.Module<Tensor, Tensor>
{
    /// <summary>The table <c>[max_len, d_model]</c> (a buffer, like the PyTorch tutorial's <c>pe</c>).</summary>
    public readonly Tensor pe;
    /// <summary>Dropout applied to <c>x + PE</c> (the paper uses 0.1).</summary>
    public readonly Dropout dropout;

    /// <summary>Creates the module with a precomputed table.</summary>
    /// <param name="dModel">Model width d (any d ≥ 1, odd included).</param>
    /// <param name="maxLength">Longest sequence supported.</param>
    /// <param name="dropout">Dropout after adding the encoding.</param>
    public SinusoidalPositionalEncoding(long dModel, long maxLength = 5000, double dropout = 0.0) : base(nameof(SinusoidalPositionalEncoding))
    {
        pe = Table(maxLength, dModel);
        this.dropout = nn.Dropout(dropout);
        RegisterComponents();
    }

    /// <summary>
    /// The table <c>[maxLength, dModel]</c>: <c>PE[pos, j] = sin(pos·ω)</c> for even j, <c>cos(pos·ω)</c> for odd j, with
    /// <c>ω = 10000^(-(j - j mod 2)/d)</c>.
    /// </summary>
    /// <param name="maxLength">Number of positions (rows), 0..maxLength-1.</param>
    /// <param name="dModel">Width d (columns).</param>
    /// <param name="dtype">Result dtype (computed in float64 first).</param>
    /// <param name="device">Where to put it.</param>
    /// <param name="baseValue">The 10000 of the formula.</param>
    public static Tensor Table(long maxLength, long dModel, ScalarType dtype = ScalarType.Float32, Device? device = null, double baseValue = 10000.0)
    {
        if (maxLength < 0 || dModel < 1)
            throw new ArgumentOutOfRangeException(nameof(dModel), $"Sinusoidal table needs maxLength >= 0 and dModel >= 1, got maxLength={maxLength}, dModel={dModel}.");
        using var scope = NewDisposeScope();
        var pos = arange(maxLength, dtype: ScalarType.Float64).unsqueeze(1);        // [L, 1]
        var j = arange(dModel, dtype: ScalarType.Float64);                       // [d]
        var twoI = j.sub(j.remainder(2));                                         // 2i for both columns of a pair
        var omega = pow(baseValue, twoI.div(dModel).neg());                       // 10000^(-2i/d)
        var angle = pos.mul(omega);                                               // [L, d]
        var isEven = j.remainder(2).eq(0);
        var table = where(isEven, angle.sin(), angle.cos());
        return table.to(dtype, device ?? CPU).MoveToOuterDisposeScope();
    }

    /// <summary>Adds the encoding of positions <c>offset .. offset+T-1</c> to <c>x [..., T, d]</c>, then dropout.</summary>
    /// <param name="x">Embeddings <c>[..., T, d_model]</c>.</param>
    public override Tensor forward(Tensor x) => forward(x, 0);

    /// <summary>Adds the encoding of positions <c>offset .. offset+T-1</c> to <c>x [..., T, d]</c>, then dropout.</summary>
    /// <param name="x">Embeddings <c>[..., T, d_model]</c>.</param>
    /// <param name="offset">Position of the first element (for decoding step by step).</param>
    public Tensor forward(Tensor x, long offset)
    {
        long T = CheckInput(x, offset, pe.shape[0], pe.shape[1], nameof(SinusoidalPositionalEncoding));
        using var table = pe.narrow(0, offset, T);
        return dropout.forward(x.add(table));
    }

    internal static long CheckInput(Tensor x, long offset, long maxLength, long dModel, string who)
    {
        if (x.dim() < 2 || x.shape[^1] != dModel)
            throw new ArgumentException($"{who}: x {Shapes.Of(x)} must be [..., T, d_model={dModel}].", nameof(x));
        long T = x.shape[^2];
        if (offset < 0 || offset + T > maxLength)
            throw new ArgumentOutOfRangeException(nameof(x), $"{who}: positions {offset}..{offset + T - 1} exceed maxLength={maxLength}; " +
                "create the module with a larger maxLength.");
        return T;
    }
}

/// <summary>
/// Learned absolute position embeddings (as in BERT and GPT-2): a trainable table <c>weight [max_len, d]</c> whose
/// row <c>pos</c> is added to the token embedding at position <c>pos</c>. Initialised N(0, 0.02²) like GPT-2.
/// Unlike the sinusoidal table it cannot represent positions beyond <c>max_len</c>.
/// </summary>
public sealed class LearnedPositionalEmbedding : nn.Module<Tensor, Tensor>
{
    /// <summary>The table <c>[max_len, d_model]</c>.</summary>
    public readonly Parameter weight;
    /// <summary>Dropout applied to <c>x + P</c>.</summary>
    public readonly Dropout dropout;

    /// <summary>Creates the table.</summary>
    /// <param name="maxLength">Number of positions.</param>
    /// <param name="dModel">Model width.</param>
    /// <param name="dropout">Dropout after adding.</param>
    public LearnedPositionalEmbedding(long maxLength, long dModel, double dropout = 0.0) : base(nameof(LearnedPositionalEmbedding))
    {
        if (maxLength < 1 || dModel < 1)
            throw new ArgumentOutOfRangeException(nameof(maxLength), $"maxLength and dModel must be >= 1, got {maxLength}, {dModel}.");
        weight = new Parameter(empty(maxLength, dModel));
        using (no_grad()) nn.init.normal_(weight, 0.0, 0.02);
        this.dropout = nn.Dropout(dropout);
        RegisterComponents();
    }

    /// <summary>Adds the embeddings of positions <c>0 .. T-1</c> to <c>x [..., T, d]</c>.</summary>
    /// <param name="x">Embeddings <c>[..., T, d_model]</c>.</param>
    public override Tensor forward(Tensor x) => forward(x, 0);

    /// <summary>Adds the embeddings of positions <c>offset .. offset+T-1</c> to <c>x [..., T, d]</c>.</summary>
    /// <param name="x">Embeddings <c>[..., T, d_model]</c>.</param>
    /// <param name="offset">Position of the first element.</param>
    public Tensor forward(Tensor x, long offset)
    {
        long T = SinusoidalPositionalEncoding.CheckInput(x, offset, weight.shape[0], weight.shape[1], nameof(LearnedPositionalEmbedding));
        using var rows = weight.narrow(0, offset, T);
        return dropout.forward(x.add(rows));
    }
}

/// <summary>
/// Rotary position embedding, RoPE (Su et al. 2021, "RoFormer"), the modern alternative used by LLaMA and most recent
/// LLMs. Instead of adding a vector to the input, it <i>rotates</i> queries and keys: feature pair
/// <c>(x_{2i}, x_{2i+1})</c> at position m is rotated by the angle <c>m·θ_i</c>, <c>θ_i = base^(-2i/d)</c>:
/// <code>
/// x'_{2i}   = x_{2i} cos(mθ_i) − x_{2i+1} sin(mθ_i)
/// x'_{2i+1} = x_{2i} sin(mθ_i) + x_{2i+1} cos(mθ_i)
/// </code>
/// Because rotations compose, <c>⟨RoPE(q, m), RoPE(k, n)⟩</c> depends on m and n only through m − n: attention scores
/// see <i>relative</i> positions. Apply it to q and k (per head, after the projections), never to v.
/// This is the paper's interleaved pairing; Hugging Face's "rotate_half" pairs feature i with i + d/2 instead, which is
/// the same up to a fixed permutation of the features.
/// </summary>
public sealed class RotaryEmbedding : nn.Module<Tensor, Tensor>
{
    /// <summary>Per-head width d the rotations act on (even).</summary>
    public readonly long dim;
    /// <summary>The base of the frequencies (10000 in the paper).</summary>
    public readonly double theta_base;

    /// <summary>Creates the module (it has no parameters).</summary>
    /// <param name="dim">Feature width of q and k (per head); must be even.</param>
    /// <param name="baseValue">Frequency base.</param>
    public RotaryEmbedding(long dim, double baseValue = 10000.0) : base(nameof(RotaryEmbedding))
    {
        if (dim < 2 || dim % 2 != 0)
            throw new ArgumentException($"RoPE rotates feature pairs, so dim must be even and >= 2; got {dim}.", nameof(dim));
        this.dim = dim;
        theta_base = baseValue;
        RegisterComponents();
    }

    /// <summary>Rotates <c>x [..., T, dim]</c> for positions 0..T-1.</summary>
    /// <param name="x">Queries or keys, <c>[..., T, dim]</c>.</param>
    public override Tensor forward(Tensor x) => forward(x, 0);

    /// <summary>Rotates <c>x [..., T, dim]</c> for positions <c>offset .. offset+T-1</c>.</summary>
    /// <param name="x">Queries or keys, <c>[..., T, dim]</c>.</param>
    /// <param name="offset">Position of the first row.</param>
    public Tensor forward(Tensor x, long offset) => Apply(x, offset, theta_base);

    /// <summary>Rotates <c>x [..., T, d]</c> (d even) for positions <c>offset .. offset+T-1</c>.</summary>
    /// <param name="x">Queries or keys, <c>[..., T, d]</c>.</param>
    /// <param name="offset">Position of the first row.</param>
    /// <param name="baseValue">Frequency base.</param>
    public static Tensor Apply(Tensor x, long offset = 0, double baseValue = 10000.0)
    {
        if (x.dim() < 2 || x.shape[^1] % 2 != 0)
            throw new ArgumentException($"RoPE: x {Shapes.Of(x)} must be [..., T, d] with d even (features are rotated in pairs).", nameof(x));
        var positions = arange(offset, offset + x.shape[^2], dtype: ScalarType.Float64, device: x.device);
        return Apply(x, positions, baseValue);
    }

    /// <summary>Rotates <c>x [..., T, d]</c> with an explicit position per row (<c>positions [T]</c> or broadcastable
    /// to <c>[..., T]</c>).</summary>
    /// <param name="x">Queries or keys, <c>[..., T, d]</c>.</param>
    /// <param name="positions">Position of each row.</param>
    /// <param name="baseValue">Frequency base.</param>
    public static Tensor Apply(Tensor x, Tensor positions, double baseValue = 10000.0)
    {
        long d = x.shape[^1];
        if (x.dim() < 2 || d % 2 != 0)
            throw new ArgumentException($"RoPE: x {Shapes.Of(x)} must be [..., T, d] with d even (features are rotated in pairs).", nameof(x));
        using var scope = NewDisposeScope();
        // θ_i = base^(-2i/d), angles [..., T, d/2] in float64, then to x's dtype.
        var theta = pow(baseValue, arange(0, d, 2, dtype: ScalarType.Float64, device: x.device).div(d).neg());
        var angle = positions.to_type(ScalarType.Float64).unsqueeze(-1).mul(theta);
        var cos = angle.cos().to_type(x.dtype);
        var sin = angle.sin().to_type(x.dtype);
        // [..., T, d] -> [..., T, d/2, 2]: pairs (x_{2i}, x_{2i+1}).
        var pairs = x.reshape(x.shape[..^1].Append(d / 2).Append(2).ToArray());
        var x0 = pairs.select(-1, 0);
        var x1 = pairs.select(-1, 1);
        var r0 = x0.mul(cos).sub(x1.mul(sin));
        var r1 = x0.mul(sin).add(x1.mul(cos));
        return stack(new[] { r0, r1 }, -1).reshape(x.shape).MoveToOuterDisposeScope();
    }
}
