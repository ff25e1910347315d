using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using TorchSharp;
using static TorchSharp.torch;

namespace Workbook.IO;

/// <summary>One tensor's entry in a safetensors header.</summary>
/// <param name="Name">The tensor's key.</param>
/// <param name="DType">The safetensors dtype string (F32, F16, BF16, F64, I64, I32, I16, I8, U8, BOOL).</param>
/// <param name="Shape">The shape.</param>
/// <param name="Begin">Start of its bytes, relative to the data section.</param>
/// <param name="End">End (exclusive) of its bytes, relative to the data section.</param>
public sealed record SafeTensorInfo(string Name, string DType, long[] Shape, long Begin, long End);

/// <summary>A parsed safetensors header: tensors, metadata and where the data section starts.</summary>
/// <param name="Path">The file.</param>
/// <param name="Tensors">Entries by name, in file order.</param>
/// <param name="Metadata">The <c>__metadata__</c> strings (empty if none).</param>
/// <param name="DataOffset">Absolute file offset of the data section.</param>
/// <param name="FileLength">The file's length in bytes.</param>
public sealed record SafeTensorsHeader(string Path, IReadOnlyList<SafeTensorInfo> Tensors, IReadOnlyDictionary<string, string> Metadata,
    long DataOffset, long FileLength);

/// <summary>
/// Reader and writer for the <a href="https://github.com/huggingface/safetensors">safetensors</a> format, the
/// Hugging Face checkpoint format: an 8-byte little-endian header length N, N bytes of JSON
/// (<c>{"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}</c>), then the raw
/// little-endian tensor bytes. Used for Hugging Face GPT-2 weights, our own checkpoints and the golden test data.
/// Every malformed file gets an <see cref="InvalidDataException"/> that names the file and what is wrong.
/// </summary>
public static class SafeTensors
{
    const long MaxHeader = 100L * 1024 * 1024;

    static readonly Dictionary<string, (ScalarType Type, int Size)> DTypes = new()
    {
        ["F64"] = (ScalarType.Float64, 8), ["F32"] = (ScalarType.Float32, 4), ["F16"] = (ScalarType.Float16, 2),
        ["BF16"] = (ScalarType.BFloat16, 2), ["I64"] = (ScalarType.Int64, 8), ["I32"] = (ScalarType.Int32, 4),
        ["I16"] = (ScalarType.Int16, 2), ["I8"] = (ScalarType.Int8, 1), ["U8"] = (ScalarType.Byte, 1), ["BOOL"] = (ScalarType.Bool, 1),
    };

    /// <summary>The safetensors dtype name of a torch dtype.</summary>
    /// <exception cref="NotSupportedException">The dtype has no safetensors name (e.g. complex).</exception>
    public static string DTypeName(ScalarType type) =>
        DTypes.FirstOrDefault(kv => kv.Value.Type == type).Key ?? throw new NotSupportedException($"dtype {type} cannot be stored in safetensors.");

    /// <summary>Reads and validates the header without loading tensor data.</summary>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="InvalidDataException">The file is truncated, corrupt or not safetensors; the message says which.</exception>
    public static SafeTensorsHeader ReadHeader(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"Safetensors file not found: '{path}'.", path);
        using var fs = File.OpenRead(path);
        return ReadHeader(fs, path);
    }

    static SafeTensorsHeader ReadHeader(FileStream fs, string path)
    {
        long length = fs.Length;
        if (length < 8) throw new InvalidDataException($"'{path}' is truncated: {length} bytes, but a safetensors file starts with an 8-byte header length.");
        Span<byte> lenBytes = stackalloc byte[8];
        fs.ReadExactly(lenBytes);
        ulong n = BinaryPrimitives.ReadUInt64LittleEndian(lenBytes);
        if (n > (ulong)MaxHeader) throw new InvalidDataException($"'{path}' is not a safetensors file: its header length field says {n} bytes.");
        if (8 + (long)n > length) throw new InvalidDataException($"'{path}' is truncated: the header needs {n} bytes but only {length - 8} follow.");
        var json = new byte[n];
        fs.ReadExactly(json);
        JsonObject root;
        try { root = JsonNode.Parse(json)?.AsObject() ?? throw new InvalidDataException("empty header"); }
        catch (JsonException e) { throw new InvalidDataException($"'{path}' has a corrupt safetensors header (not JSON: {e.Message}).", e); }

        long dataOffset = 8 + (long)n, dataLength = length - dataOffset;
        var metadata = new Dictionary<string, string>();
        var tensors = new List<SafeTensorInfo>();
        foreach (var (name, node) in root)
        {
            if (name == "__metadata__")
            {
                if (node is JsonObject meta)
                    foreach (var (k, v) in meta) metadata[k] = v?.GetValue<string>() ?? "";
                continue;
            }
            try
            {
                var dtype = node!["dtype"]!.GetValue<string>();
                var shape = node["shape"]!.AsArray().Select(d => d!.GetValue<long>()).ToArray();
                var offs = node["data_offsets"]!.AsArray().Select(d => d!.GetValue<long>()).ToArray();
                if (!DTypes.TryGetValue(dtype, out var dt)) throw new InvalidDataException($"'{path}': tensor '{name}' has unsupported dtype '{dtype}'.");
                if (offs.Length != 2 || offs[0] < 0 || offs[1] < offs[0]) throw new InvalidDataException($"'{path}': tensor '{name}' has invalid data_offsets [{string.Join(", ", offs)}].");
                long expected = shape.Aggregate(1L, (a, b) => a * b) * dt.Size;
                if (offs[1] - offs[0] != expected)
                    throw new InvalidDataException($"'{path}': tensor '{name}' ({dtype} [{string.Join(", ", shape)}]) needs {expected} bytes but data_offsets span {offs[1] - offs[0]}.");
                if (offs[1] > dataLength)
                    throw new InvalidDataException($"'{path}' is truncated: tensor '{name}' ends at data byte {offs[1]} but the data section has {dataLength} bytes.");
                tensors.Add(new SafeTensorInfo(name, dtype, shape, offs[0], offs[1]));
            }
            catch (Exception e) when (e is NullReferenceException or InvalidOperationException or FormatException)
            {
                throw new InvalidDataException($"'{path}': the header entry for '{name}' is malformed (needs dtype, shape and data_offsets).", e);
            }
        }
        return new SafeTensorsHeader(path, tensors, metadata, dataOffset, length);
    }

    /// <summary>Loads every tensor (or those <paramref name="names"/> selects) into CPU tensors, or onto <paramref name="device"/>.</summary>
    /// <exception cref="InvalidDataException">The file is truncated or corrupt.</exception>
    /// <exception cref="KeyNotFoundException">A requested name is not in the file; the message lists what is.</exception>
    public static Dictionary<string, Tensor> Load(string path, Device? device = null, IEnumerable<string>? names = null)
    {
        var header = ReadHeader(path);
        var wanted = names?.ToHashSet();
        if (wanted is not null)
        {
            var missing = wanted.Except(header.Tensors.Select(t => t.Name)).ToList();
            if (missing.Count > 0)
                throw new KeyNotFoundException($"'{path}' has no tensor(s) {string.Join(", ", missing)}; it has: {string.Join(", ", header.Tensors.Select(t => t.Name))}.");
        }
        var result = new Dictionary<string, Tensor>();
        using var fs = File.OpenRead(path);
        foreach (var info in header.Tensors)
        {
            if (wanted is not null && !wanted.Contains(info.Name)) continue;
            var t = torch.empty(info.Shape, dtype: DTypes[info.DType].Type);
            long size = info.End - info.Begin;
            if (size > 0)
            {
                fs.Position = header.DataOffset + info.Begin;
                var buffer = new byte[size];
                fs.ReadExactly(buffer);
                t.bytes = buffer;
            }
            result[info.Name] = device is null || device.type == DeviceType.CPU ? t : MoveTo(t, device);
        }
        return result;
    }

    static Tensor MoveTo(Tensor t, Device device)
    {
        var moved = t.to(device);
        t.Dispose();
        return moved;
    }

    /// <summary>The <c>__metadata__</c> strings of a file.</summary>
    public static IReadOnlyDictionary<string, string> ReadMetadata(string path) => ReadHeader(path).Metadata;

    /// <summary>
    /// Writes tensors (contiguous, little-endian, in the order given) and optional metadata. The write is atomic:
    /// a temporary file in the same folder is renamed over <paramref name="path"/>, so an interrupted save never
    /// leaves a half-written file where a good one was.
    /// </summary>
    public static void Save(string path, IEnumerable<KeyValuePair<string, Tensor>> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var list = tensors.ToList();
        var dup = list.GroupBy(kv => kv.Key).FirstOrDefault(g => g.Count() > 1);
        if (dup is not null) throw new ArgumentException($"Tensor name '{dup.Key}' appears twice.", nameof(tensors));
        var header = new JsonObject();
        if (metadata is { Count: > 0 })
        {
            var meta = new JsonObject();
            foreach (var (k, v) in metadata) meta[k] = v;
            header["__metadata__"] = meta;
        }
        var blobs = new List<byte[]>();
        long offset = 0;
        foreach (var (name, tensor) in list)
        {
            using var cpu = tensor.detach().cpu().contiguous();
            var bytes = cpu.bytes.ToArray();
            header[name] = new JsonObject
            {
                ["dtype"] = DTypeName(cpu.dtype),
                ["shape"] = new JsonArray(cpu.shape.Select(d => (JsonNode)d).ToArray()),
                ["data_offsets"] = new JsonArray(offset, offset + bytes.Length),
            };
            offset += bytes.Length;
            blobs.Add(bytes);
        }
        var json = Encoding.UTF8.GetBytes(header.ToJsonString());
        int pad = (8 - json.Length % 8) % 8; // the format allows trailing spaces; aligned data is friendlier to mmap
        var headerBytes = new byte[json.Length + pad];
        json.CopyTo(headerBytes, 0);
        for (int i = json.Length; i < headerBytes.Length; i++) headerBytes[i] = (byte)' ';

        var full = Path.GetFullPath(path);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        var tmp = full + $".{Environment.ProcessId}.{Guid.NewGuid():N}.tmp";
        try
        {
            using (var fs = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write))
            {
                Span<byte> len = stackalloc byte[8];
                BinaryPrimitives.WriteUInt64LittleEndian(len, (ulong)headerBytes.Length);
                fs.Write(len);
                fs.Write(headerBytes);
                foreach (var b in blobs) fs.Write(b);
                fs.Flush(flushToDisk: true);
            }
            File.Move(tmp, full, overwrite: true);
        }
        finally
        {
            if (File.Exists(tmp)) File.Delete(tmp);
        }
    }
}
