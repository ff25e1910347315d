using System.Buffers.Binary;
using System.IO.Compression;
using TorchSharp;
using static TorchSharp.torch;

namespace Workbook.Data;

/// <summary>The header of an IDX file: element type and dimensions.</summary>
/// <param name="Type">The element type (IDX type code 0x08 ubyte, 0x09 sbyte, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64).</param>
/// <param name="Shape">The dimensions, outermost first (e.g. [60000, 28, 28] for MNIST images).</param>
public sealed record IdxHeader(ScalarType Type, long[] Shape)
{
    /// <summary>Number of elements (the product of <see cref="Shape"/>).</summary>
    public long Count => checked(Shape.Aggregate(1L, (a, b) => a * b));
}

/// <summary>
/// Reader for the IDX format of MNIST and Fashion-MNIST (<a href="http://yann.lecun.com/exdb/mnist/">LeCun et al.</a>),
/// plain or gzip-compressed. An IDX file is a 4-byte magic number <c>00 00 TT DD</c> (two zero bytes, the element
/// type code TT, the number of dimensions DD), DD big-endian int32 sizes, then the elements in row-major order,
/// multi-byte values big-endian. Bad magic numbers, truncated data, trailing bytes and broken gzip streams are
/// rejected with an <see cref="InvalidDataException"/> that names the file and what is wrong. The size the header
/// claims is checked against the file before anything is allocated (exactly for a plain file; for gzip against the
/// most deflate can expand, and the data is then read in chunks), so a lying header cannot make the reader allocate
/// more than the data really there.
/// </summary>
public static class Idx
{
    static readonly Dictionary<byte, (ScalarType Type, int Size, string Name)> Types = new()
    {
        [0x08] = (ScalarType.Byte, 1, "unsigned byte"), [0x09] = (ScalarType.Int8, 1, "signed byte"),
        [0x0B] = (ScalarType.Int16, 2, "int16"), [0x0C] = (ScalarType.Int32, 4, "int32"),
        [0x0D] = (ScalarType.Float32, 4, "float32"), [0x0E] = (ScalarType.Float64, 8, "float64"),
    };

    /// <summary>Reads an IDX file (<c>.gz</c> or plain; detected by content, not by name) into a CPU tensor of its element type.</summary>
    /// <param name="path">The file, e.g. <c>DataPaths.File("fashion-mnist", "train-labels-idx1-ubyte.gz")</c>.</param>
    /// <returns>A tensor with the file's shape: images are uint8 <c>[N, rows, cols]</c>, labels uint8 <c>[N]</c>.</returns>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="InvalidDataException">Bad magic number, unknown type, truncated or over-long data, corrupt gzip.</exception>
    public static Tensor Read(string path)
    {
        using var s = Open(path);
        try
        {
            var header = ParseHeader(s, path);
            int size = Types.Values.First(t => t.Type == header.Type).Size;
            long headerBytes = 4 + 4L * header.Shape.Length;
            long count = header.Count * size; // cannot overflow: ParseHeader checked it
            string Claim() => $"the header says [{string.Join(", ", header.Shape)}] {header.Type} = {count} bytes of data";
            if (count > Array.MaxLength) throw new InvalidDataException($"'{path}': {Claim()}, more than one tensor read here can hold ({Array.MaxLength}).");
            long fileLength = new FileInfo(path).Length;
            Tensor t;
            if (s is FileStream)
            {
                // A plain file must be exactly header + data: check before allocating anything.
                long have = fileLength - headerBytes;
                if (have < count) throw new InvalidDataException($"'{path}' is truncated: {Claim()}, but only {have} follow.");
                if (have > count) throw new InvalidDataException($"'{path}' has {have - count} bytes after the data: {Claim()} but {have} follow; not a well-formed IDX file.");
                t = torch.empty(header.Shape, dtype: header.Type);
                if (count > 0) s.ReadExactly(t.bytes);
            }
            else
            {
                // Deflate expands at most 1032:1, so a short gzip file cannot hold what a big header claims; within that
                // bound, read in chunks so that memory follows the data actually there, not the claim.
                if ((count + headerBytes) / 1032 > fileLength + 1024)
                    throw new InvalidDataException($"'{path}' is truncated or corrupt: {Claim()}, but a gzip file of {fileLength} bytes can hold at most about {1032 * fileLength} bytes.");
                var chunks = new List<byte[]>();
                long got = 0;
                while (got < count)
                {
                    var chunk = new byte[Math.Min(count - got, 1 << 20)];
                    int n = ReadFully(s, chunk, path);
                    got += n;
                    if (n < chunk.Length) throw new InvalidDataException($"'{path}' is truncated: {Claim()}, but only {got} follow.");
                    chunks.Add(chunk);
                }
                if (ReadFully(s, new byte[1], path) != 0)
                    throw new InvalidDataException($"'{path}' has bytes after the [{string.Join(", ", header.Shape)}] data the header announces: not a well-formed IDX file.");
                t = torch.empty(header.Shape, dtype: header.Type);
                if (count > 0)
                {
                    var dst = t.bytes;
                    long at = 0;
                    foreach (var chunk in chunks) { chunk.CopyTo(dst[(int)at..]); at += chunk.Length; }
                }
            }
            if (size > 1 && BitConverter.IsLittleEndian) SwapEndianness(t.bytes, size);
            return t;
        }
        catch (EndOfStreamException e)
        {
            throw new InvalidDataException($"'{path}' is truncated: it ended while its data was read (did the file change meanwhile?).", e);
        }
        catch (InvalidDataException e) when (e.Message.Contains('\'' + path + '\'') == false)
        {
            // GZipStream's own errors do not name the file.
            throw new InvalidDataException($"'{path}' is a corrupt or truncated gzip file: {e.Message}", e);
        }
    }

    /// <summary>Reads only the header (type and shape) of an IDX file.</summary>
    /// <exception cref="InvalidDataException">The magic number or dimensions are invalid.</exception>
    public static IdxHeader ReadHeader(string path)
    {
        using var stream = Open(path);
        return ParseHeader(stream, path);
    }

    static Stream Open(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"IDX file not found: '{path}'.", path);
        var fs = File.OpenRead(path);
        Span<byte> sig = stackalloc byte[2];
        int n = fs.Read(sig);
        fs.Position = 0;
        // gzip members start with 1F 8B; an IDX magic starts with 00 00, so the two cannot be confused.
        return n == 2 && sig[0] == 0x1F && sig[1] == 0x8B ? new GZipStream(fs, CompressionMode.Decompress) : fs;
    }

    static IdxHeader ParseHeader(Stream s, string path)
    {
        var magic = new byte[4];
        int got = ReadFully(s, magic, path);
        if (got < 4) throw new InvalidDataException($"'{path}' is truncated: {got} bytes, but an IDX file starts with a 4-byte magic number.");
        if (magic[0] != 0 || magic[1] != 0 || !Types.TryGetValue(magic[2], out var type) || magic[3] == 0)
            throw new InvalidDataException($"'{path}' is not an IDX file: bad magic number 0x{Convert.ToHexString(magic)}. " +
                "IDX files start with 00 00, a type code (08 ubyte, 09 sbyte, 0B int16, 0C int32, 0D float32, 0E float64) " +
                "and the number of dimensions (MNIST images: 0x00000803, labels: 0x00000801).");
        int ndim = magic[3];
        var dims = new byte[4 * ndim];
        got = ReadFully(s, dims, path);
        if (got < dims.Length)
            throw new InvalidDataException($"'{path}' is truncated: the magic number announces {ndim} dimensions ({dims.Length} bytes) but only {got} bytes follow.");
        var shape = new long[ndim];
        for (int i = 0; i < ndim; i++)
        {
            int d = BinaryPrimitives.ReadInt32BigEndian(dims.AsSpan(4 * i));
            if (d < 0) throw new InvalidDataException($"'{path}' has a negative size {d} for dimension {i}.");
            shape[i] = d;
        }
        try { _ = checked(shape.Aggregate((long)type.Size, (a, b) => a * b)); }
        catch (OverflowException)
        {
            throw new InvalidDataException($"'{path}': the dimensions [{string.Join(", ", shape)}] of {type.Name} elements make more bytes than 64 bits can count: not a valid IDX file.");
        }
        return new IdxHeader(type.Type, shape);
    }

    /// <summary>Reads until the buffer is full or the stream ends; a gzip stream cut short ends early or throws.</summary>
    static int ReadFully(Stream s, byte[] buffer, string path)
    {
        int total = 0;
        try
        {
            while (total < buffer.Length)
            {
                int n = s.Read(buffer, total, buffer.Length - total);
                if (n == 0) break;
                total += n;
            }
        }
        catch (EndOfStreamException e)
        {
            throw new InvalidDataException($"'{path}' is a corrupt or truncated gzip file: {e.Message}", e);
        }
        return total;
    }

    static void SwapEndianness(Span<byte> data, int size)
    {
        for (int i = 0; i < data.Length; i += size) data.Slice(i, size).Reverse();
    }
}
