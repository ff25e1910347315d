using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using TorchSharp;
using Workbook.Data;
using Workbook.Gpt;
using Workbook.IO;
using static TorchSharp.torch;

namespace Workbook.Tests.Reliability;

/// <summary>
/// Findings 7 and 8 of issue 14: safetensors files that break the format's rules, and IDX headers whose sizes lie.
/// Every case must raise the library's <see cref="InvalidDataException"/> naming the file and what was expected and
/// found, and a lying size must not be allocated.
/// </summary>
public sealed class FileFormatReliabilityTests
{
    readonly string _dir = Hostile.Folder("fmt");

    string File(string name) => Path.Combine(_dir, name);

    static byte[] Floats(int n) => new byte[4 * n];

    const string A = "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}";

    // ---- Finding 7: safetensors ----

    [Fact]
    public void HeaderThatIsNotAnObject()
    {
        var path = Hostile.RawSafetensors(File("array.safetensors"), "[1,2,3]");
        Hostile.Throws<InvalidDataException>(() => SafeTensors.Load(path), path, "expected a JSON object, got an array");
    }

    [Fact]
    public void DuplicateKeys()
    {
        var path = Hostile.RawSafetensors(File("dup.safetensors"), "{" + A + "," + A + "}", Floats(2));
        Hostile.Throws<InvalidDataException>(() => SafeTensors.Load(path), path, "the key 'a' appears twice");
    }

    [Fact]
    public void InvalidUtf8InAName()
    {
        var header = Encoding.UTF8.GetBytes("{" + A.Replace("\"a\"", "\"a?\"") + "}");
        int at = Array.IndexOf(header, (byte)'?');
        header[at] = 0xFF;
        var path = Hostile.RawSafetensors(File("utf8.safetensors"), header, Floats(2));
        Hostile.Throws<InvalidDataException>(() => SafeTensors.Load(path), path, $"invalid UTF-8 at header byte {at} (0xFF)");
    }

    [Fact]
    public void NumberAsAMetadataValue()
    {
        var path = Hostile.RawSafetensors(File("meta.safetensors"), "{\"__metadata__\":{\"format\":1}," + A + "}", Floats(2));
        Hostile.Throws<InvalidDataException>(() => SafeTensors.Load(path), path, "__metadata__ value 'format' must be a string, got the number 1");
    }

    [Fact]
    public void NegativeDimensions()
    {
        // [-2, -2] F32 is 16 bytes by the product, so the old size check passed and libtorch failed with a C++ trace.
        var path = Hostile.RawSafetensors(File("neg.safetensors"), "{\"a\":{\"dtype\":\"F32\",\"shape\":[-2,-2],\"data_offsets\":[0,16]}}", Floats(4));
        Hostile.Throws<InvalidDataException>(() => SafeTensors.Load(path), path, "'a'", "negative dimension", "[-2, -2]");
    }

    [Fact]
    public void ElementCountThatOverflows()
    {
        // 4611686018427387905 × 2 × 3 × 4 bytes wraps around 2^64 to exactly 24.
        var path = Hostile.RawSafetensors(File("wrap.safetensors"), "{\"a\":{\"dtype\":\"F32\",\"shape\":[4611686018427387905,2,3],\"data_offsets\":[0,24]}}", Floats(6));
        Hostile.Throws<InvalidDataException>(() => SafeTensors.Load(path), path, "'a'", "[4611686018427387905, 2, 3]", "more elements than 64 bits can count");
    }

    [Fact]
    public void OverlappingOffsets()
    {
        var path = Hostile.RawSafetensors(File("overlap.safetensors"),
            "{" + A + ",\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", Floats(3));
        Hostile.Throws<InvalidDataException>(() => SafeTensors.Load(path), path, "'b' (data_offsets [4, 12]) overlaps 'a' (data_offsets [0, 8])");
    }

    [Fact]
    public void GapBetweenTensors()
    {
        var path = Hostile.RawSafetensors(File("gap.safetensors"),
            "{" + A + ",\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[12,20]}}", Floats(5));
        Hostile.Throws<InvalidDataException>(() => SafeTensors.Load(path), path, "gap before tensor 'b'", "starts at data byte 12, expected 8");
    }

    [Fact]
    public void TrailingBytes()
    {
        var path = Hostile.RawSafetensors(File("trailing.safetensors"), "{" + A + "}", Floats(4));
        Hostile.Throws<InvalidDataException>(() => SafeTensors.Load(path), path, "8 trailing byte(s)", "end at data byte 8 but the data section has 16 bytes");
    }

    [Fact]
    public void OverlappingTensorsCannotMultiplyTheFile()
    {
        // 200 tensors that all claim the same 256 KB: the old reader allocated 200 × 2 × 256 KB from a 256 KB file.
        const int n = 256 * 1024 / 4;
        var entries = Enumerable.Range(0, 200).Select(i => $"\"t{i}\":{{\"dtype\":\"F32\",\"shape\":[{n}],\"data_offsets\":[0,{4 * n}]}}");
        var path = Hostile.RawSafetensors(File("many.safetensors"), "{" + string.Join(",", entries) + "}", Floats(n));
        long size = new FileInfo(path).Length;
        var used = Hostile.Allocation(() => Hostile.Throws<InvalidDataException>(() => SafeTensors.Load(path), path, "overlaps"));
        Hostile.AssertAllocationBounded(used, size, 1 << 20, "SafeTensors.Load");
    }

    [Fact]
    public void GptLoaderRejectsBothSpellingsOfOneName()
    {
        var folder = Directory.CreateDirectory(File("both")).FullName;
        System.IO.File.Copy(Path.Combine(Gpt.Golden.Folder, GptCheckpoint.ConfigFile), Path.Combine(folder, GptCheckpoint.ConfigFile));
        var weights = Path.Combine(folder, GptCheckpoint.WeightsFile);
        System.IO.File.Copy(Path.Combine(Gpt.Golden.Folder, GptCheckpoint.WeightsFile), weights);
        Hostile.Rewrite(weights, (t, _) => t["transformer.wte.weight"] = t["wte.weight"].clone());
        Hostile.Throws<InvalidDataException>(() => GptCheckpoint.Load(folder), weights, "'transformer.wte.weight' and 'wte.weight' are the same parameter 'wte.weight'");
    }

    // ---- Finding 8: IDX sizes ----

    static byte[] Idx(byte type, int[] dims, int dataBytes)
    {
        var b = new byte[4 + 4 * dims.Length + dataBytes];
        b[2] = type;
        b[3] = (byte)dims.Length;
        for (int i = 0; i < dims.Length; i++) BinaryPrimitives.WriteInt32BigEndian(b.AsSpan(4 + 4 * i), dims[i]);
        return b;
    }

    static byte[] Gzip(byte[] data)
    {
        using var ms = new MemoryStream();
        using (var gz = new GZipStream(ms, CompressionLevel.Optimal)) gz.Write(data);
        return ms.ToArray();
    }

    [Fact]
    public void IdxDimensionsWhoseProductOverflows()
    {
        var path = File("overflow.idx");
        System.IO.File.WriteAllBytes(path, Idx(0x08, [int.MaxValue, int.MaxValue, 3], 0));
        Hostile.Throws<InvalidDataException>(() => Workbook.Data.Idx.Read(path), path, "[2147483647, 2147483647, 3]", "more bytes than 64 bits can count");
        Hostile.Throws<InvalidDataException>(() => Workbook.Data.Idx.ReadHeader(path), path, "more bytes than 64 bits can count");
    }

    [Fact]
    public void IdxThatClaimsMoreThanTheFileHoldsIsNotAllocated()
    {
        var path = File("claim.idx");
        System.IO.File.WriteAllBytes(path, Idx(0x08, [2_000_000_000], 5)); // 13 bytes claiming 2 GB
        Assert.Equal(13, new FileInfo(path).Length);
        var used = Hostile.Allocation(() => Hostile.Throws<InvalidDataException>(() => Workbook.Data.Idx.Read(path), path, "truncated", "2000000000 bytes of data", "only 5 follow"));
        Hostile.AssertAllocationBounded(used, 13, 1 << 20, "Idx.Read (plain)");
    }

    [Fact]
    public void GzippedIdxThatClaimsMoreThanItCanHoldIsNotAllocated()
    {
        var path = File("claim.idx.gz");
        System.IO.File.WriteAllBytes(path, Gzip(Idx(0x08, [2_000_000_000], 5)));
        long size = new FileInfo(path).Length;
        var used = Hostile.Allocation(() => Hostile.Throws<InvalidDataException>(() => Workbook.Data.Idx.Read(path), path, "2000000000 bytes of data"));
        Hostile.AssertAllocationBounded(used, size, 1 << 20, "Idx.Read (gzip)");
    }

    [Fact]
    public void GzippedIdxWithinTheDeflateBoundStillAllocatesOnlyWhatArrives()
    {
        // 1 MB of noise gzips to about 1 MB, which deflate could expand to 1 GB: a claim of 40 MB passes that bound,
        // so the reader must read in chunks and stop where the data ends, not allocate the claim.
        var path = File("short.idx.gz");
        var raw = Idx(0x08, [40_000_000], 1_000_000);
        new Random(8).NextBytes(raw.AsSpan(8));
        System.IO.File.WriteAllBytes(path, Gzip(raw));
        var used = Hostile.Allocation(() => Hostile.Throws<InvalidDataException>(() => Workbook.Data.Idx.Read(path), path, "truncated", "40000000 bytes of data", "only 1000000 follow"));
        Hostile.AssertAllocationBounded(used, raw.Length, 2 << 20, "Idx.Read (gzip, truncated)");
    }
}
