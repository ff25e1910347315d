using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Unicode;
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

    /// <summary>
    /// Reads and validates the header without loading tensor data. The checks are the format's own rules, as its
    /// reference implementation applies them: the header is one JSON object in valid UTF-8 with no duplicate keys;
    /// <c>__metadata__</c> maps strings to strings; every entry has a known dtype, a shape of non-negative sizes whose
    /// byte count fits in 64 bits and equals its <c>data_offsets</c> span; and the tensors tile the data section
    /// exactly (no overlap, no gap, no trailing bytes). So no tensor can claim more bytes than the file has.
    /// </summary>
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
        if (n > (ulong)MaxHeader) throw new InvalidDataException($"'{path}' is not a safetensors file: its header length field says {n} bytes (at most {MaxHeader} allowed).");
        if (8 + (long)n > length) throw new InvalidDataException($"'{path}' is truncated: the header needs {n} bytes but only {length - 8} follow.");
        var json = new byte[n];
        fs.ReadExactly(json);
        // System.Text.Json would replace or reject invalid UTF-8 with its own messages; say where it is.
        if (!Utf8.IsValid(json))
        {
            int at = 0;
            while (Rune.DecodeFromUtf8(json.AsSpan(at), out _, out int used) == System.Buffers.OperationStatus.Done) at += used;
            throw new InvalidDataException($"'{path}' has a corrupt safetensors header: invalid UTF-8 at header byte {at} (0x{json[at]:X2}); the header must be UTF-8 JSON.");
        }
        JsonDocument doc;
        try { doc = JsonDocument.Parse(json); }
        catch (JsonException e) { throw new InvalidDataException($"'{path}' has a corrupt safetensors header (not JSON: {e.Message}).", e); }
        using var document = doc;
        var root = doc.RootElement;
        if (root.ValueKind != JsonValueKind.Object)
            throw new InvalidDataException($"'{path}' has a corrupt safetensors header: expected a JSON object, got {Kind(root)}.");

        long dataOffset = 8 + (long)n, dataLength = length - dataOffset;
        var metadata = new Dictionary<string, string>();
        var tensors = new List<SafeTensorInfo>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var property in root.EnumerateObject())
        {
            var name = property.Name;
            if (!seen.Add(name)) throw new InvalidDataException($"'{path}' has a corrupt safetensors header: the key '{name}' appears twice.");
            var node = property.Value;
            if (name == "__metadata__")
            {
                if (node.ValueKind != JsonValueKind.Object)
                    throw new InvalidDataException($"'{path}': __metadata__ must be an object of strings, got {Kind(node)}.");
                foreach (var entry in node.EnumerateObject())
                {
                    if (entry.Value.ValueKind != JsonValueKind.String)
                        throw new InvalidDataException($"'{path}': __metadata__ value '{entry.Name}' must be a string, got {Kind(entry.Value)}.");
                    if (!metadata.TryAdd(entry.Name, entry.Value.GetString()!))
                        throw new InvalidDataException($"'{path}': __metadata__ key '{entry.Name}' appears twice.");
                }
                continue;
            }
            tensors.Add(ParseEntry(path, name, node, dataLength));
        }

        // The tensors must tile the data section: sorted by offset, each starts where the previous one ended.
        long end = 0;
        SafeTensorInfo? previous = null;
        foreach (var t in tensors.OrderBy(t => t.Begin).ThenBy(t => t.End))
        {
            if (t.Begin != end)
                throw new InvalidDataException(t.Begin < end
                    ? $"'{path}': tensor '{t.Name}' (data_offsets [{t.Begin}, {t.End}]) overlaps '{previous!.Name}' (data_offsets [{previous.Begin}, {previous.End}])."
                    : $"'{path}': there is a gap before tensor '{t.Name}': it starts at data byte {t.Begin}, expected {end} (where {(previous is null ? "the data section starts" : $"'{previous.Name}' ends")}).");
            end = t.End;
            previous = t;
        }
        if (end != dataLength)
            throw new InvalidDataException($"'{path}' has {dataLength - end} trailing byte(s): the tensors end at data byte {end} but the data section has {dataLength} bytes.");
        return new SafeTensorsHeader(path, tensors, metadata, dataOffset, length);
    }

    static SafeTensorInfo ParseEntry(string path, string name, JsonElement node, long dataLength)
    {
        string Malformed(string what) => $"'{path}': the header entry for '{name}' is malformed: {what} (an entry is {{\"dtype\": \"F32\", \"shape\": [..], \"data_offsets\": [begin, end]}}).";
        if (node.ValueKind != JsonValueKind.Object) throw new InvalidDataException(Malformed($"expected an object, got {Kind(node)}"));
        if (!node.TryGetProperty("dtype", out var dtypeNode) || dtypeNode.ValueKind != JsonValueKind.String)
            throw new InvalidDataException(Malformed("'dtype' is missing or not a string"));
        var dtype = dtypeNode.GetString()!;
        if (!DTypes.TryGetValue(dtype, out var dt))
            throw new InvalidDataException($"'{path}': tensor '{name}' has unsupported dtype '{dtype}' (expected one of {string.Join(", ", DTypes.Keys)}).");
        var shape = Integers(node, "shape") ?? throw new InvalidDataException(Malformed("'shape' is missing or not an array of integers"));
        var offs = Integers(node, "data_offsets") ?? throw new InvalidDataException(Malformed("'data_offsets' is missing or not an array of integers"));
        if (shape.Any(d => d < 0)) throw new InvalidDataException($"'{path}': tensor '{name}' has a negative dimension in its shape [{string.Join(", ", shape)}].");
        if (offs.Length != 2 || offs[0] < 0 || offs[1] < offs[0]) throw new InvalidDataException($"'{path}': tensor '{name}' has invalid data_offsets [{string.Join(", ", offs)}] (expected [begin, end] with 0 ≤ begin ≤ end).");
        long expected;
        try { expected = checked(shape.Aggregate(1L, (a, b) => a * b) * dt.Size); }
        catch (OverflowException) { throw new InvalidDataException($"'{path}': tensor '{name}' ({dtype} [{string.Join(", ", shape)}]) has more elements than 64 bits can count."); }
        if (offs[1] > dataLength)
            throw new InvalidDataException($"'{path}' is truncated: tensor '{name}' ends at data byte {offs[1]} but the data section has {dataLength} bytes.");
        if (offs[1] - offs[0] != expected)
            throw new InvalidDataException($"'{path}': tensor '{name}' ({dtype} [{string.Join(", ", shape)}]) needs {expected} bytes but data_offsets span {offs[1] - offs[0]}.");
        return new SafeTensorInfo(name, dtype, shape, offs[0], offs[1]);
    }

    /// <summary>The array of 64-bit integers at <paramref name="key"/>, or null if it is missing or holds anything else.</summary>
    static long[]? Integers(JsonElement node, string key)
    {
        if (!node.TryGetProperty(key, out var array) || array.ValueKind != JsonValueKind.Array) return null;
        var values = new long[array.GetArrayLength()];
        int i = 0;
        foreach (var item in array.EnumerateArray())
            if (item.ValueKind != JsonValueKind.Number || !item.TryGetInt64(out values[i++])) return null;
        return values;
    }

    static string Kind(JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.Object => "an object", JsonValueKind.Array => "an array", JsonValueKind.String => $"the string {e.GetRawText()}",
        JsonValueKind.Number => $"the number {e.GetRawText()}", JsonValueKind.True or JsonValueKind.False => e.GetRawText(),
        _ => "null",
    };

    /// <summary>Loads every tensor (or those <paramref name="names"/> selects) into CPU tensors, or onto <paramref name="device"/>.</summary>
    /// <remarks>The header is validated first (<see cref="ReadHeader(string)"/>), so the tensors allocated never exceed the file's size.</remarks>
    /// <exception cref="InvalidDataException">The file is truncated or corrupt.</exception>
    /// <exception cref="KeyNotFoundException">A requested name is not in the file; the message lists what is.</exception>
    public static Dictionary<string, Tensor> Load(string path, Device? device = null, IEnumerable<string>? names = null)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"Safetensors file not found: '{path}'.", path);
        using var fs = File.OpenRead(path); // one handle for the header and the data: both describe the same file
        var header = ReadHeader(fs, path);
        var wanted = names?.ToHashSet();
        if (wanted is not null)
        {
            var missing = wanted.Except(header.Tensors.Select(t => t.Name)).ToList();
            if (missing.Count > 0)
                throw new KeyNotFoundException($"'{path}' has no tensor(s) {string.Join(", ", missing)}; it has: {string.Join(", ", header.Tensors.Select(t => t.Name))}.");
        }
        var result = new Dictionary<string, Tensor>();
        try
        {
            foreach (var info in header.Tensors)
            {
                if (wanted is not null && !wanted.Contains(info.Name)) continue;
                var t = torch.empty(info.Shape, dtype: DTypes[info.DType].Type);
                result[info.Name] = t;
                fs.Position = header.DataOffset + info.Begin;
                ReadInto(fs, t, info.End - info.Begin, path);
                if (device is not null && device.type != DeviceType.CPU) result[info.Name] = MoveTo(t, device);
            }
        }
        catch
        {
            foreach (var t in result.Values) t.Dispose();
            throw;
        }
        return result;
    }

    /// <summary>Reads <paramref name="size"/> bytes straight into a new contiguous CPU tensor's memory (no managed copy), in chunks that a span can address.</summary>
    static void ReadInto(Stream s, Tensor t, long size, string path)
    {
        if (size == 0) return;
        try
        {
            if (size <= int.MaxValue) { s.ReadExactly(t.bytes); return; }
            using var flat = t.view(-1);
            long elementSize = size / flat.shape[0], chunk = (1L << 30) / elementSize;
            for (long start = 0; start < flat.shape[0]; start += chunk)
            {
                using var part = flat.narrow(0, start, Math.Min(chunk, flat.shape[0] - start));
                s.ReadExactly(part.bytes);
            }
        }
        catch (EndOfStreamException e)
        {
            throw new InvalidDataException($"'{path}' is truncated: it ended while reading tensor data (the file changed while it was read?).", e);
        }
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
    /// a temporary file in the same folder (<c>path.PID.GUID.tmp</c>) is renamed over <paramref name="path"/>, so an
    /// interrupted save never leaves a half-written file where a good one was. Temporary files that earlier saves of
    /// <paramref name="path"/> left behind when their process was killed are deleted first
    /// (<see cref="DeleteOrphanedTemporaryFiles"/>).
    /// </summary>
    public static void Save(string path, IEnumerable<KeyValuePair<string, Tensor>> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var list = tensors.ToList();
        var dup = list.GroupBy(kv => kv.Key).FirstOrDefault(g => g.Count() > 1);
        if (dup is not null) throw new ArgumentException($"Tensor name '{dup.Key}' appears twice.", nameof(tensors));
        if (list.Any(kv => kv.Key == "__metadata__")) throw new ArgumentException("'__metadata__' is reserved by the format and cannot name a tensor.", nameof(tensors));
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
        DeleteOrphanedTemporaryFiles(full);
        var tmp = full + $".{Environment.ProcessId}.{Guid.NewGuid():N}.tmp";
        InFlight.TryAdd(tmp, 0);
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
            InFlight.TryRemove(tmp, out _);
        }
    }

    /// <summary>Temporary files of saves running in this process right now (never orphans).</summary>
    static readonly ConcurrentDictionary<string, byte> InFlight = new(StringComparer.Ordinal);

    /// <summary>
    /// Deletes the temporary files (<c>path.PID.GUID.tmp</c>) that saves of <paramref name="path"/> left behind when
    /// their process died mid-write (a crash, <c>kill -9</c>, a notebook kernel restart): those whose process is no
    /// longer running, or is this one but no longer saving. A save in progress in a live process is left alone.
    /// <see cref="Save"/> and <see cref="Workbook.Training.Checkpoint.Load"/> call it; it never throws for a file it
    /// cannot delete (another process may hold it).
    /// </summary>
    /// <returns>How many files were deleted.</returns>
    public static int DeleteOrphanedTemporaryFiles(string path)
    {
        var full = Path.GetFullPath(path);
        var folder = Path.GetDirectoryName(full)!;
        var name = Path.GetFileName(full);
        if (!Directory.Exists(folder)) return 0;
        int deleted = 0;
        foreach (var candidate in Directory.EnumerateFiles(folder, name + ".*.tmp"))
        {
            var suffix = Path.GetFileName(candidate)[name.Length..]; // ".PID.GUID.tmp"
            var parts = suffix.Split('.');
            if (parts.Length != 4 || !int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out int pid)
                || parts[2].Length != 32 || !parts[2].All(Uri.IsHexDigit) || parts[3] != "tmp") continue; // not one of ours
            bool orphan = pid == Environment.ProcessId ? !InFlight.ContainsKey(candidate) : !IsRunning(pid);
            if (!orphan) continue;
            try { File.Delete(candidate); deleted++; }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { /* held by someone: try again next time */ }
        }
        return deleted;
    }

    static bool IsRunning(int pid)
    {
        try
        {
            using var p = Process.GetProcessById(pid);
            return !p.HasExited;
        }
        catch (ArgumentException) { return false; }       // no such process
        catch (InvalidOperationException) { return false; }
        catch (System.ComponentModel.Win32Exception) { return true; } // exists, but we may not look at it: keep its file
    }
}
