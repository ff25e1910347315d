using System.Buffers.Binary;
using System.Text;

namespace Workbook.Runtime;

/// <summary>
/// A minimal reader and in-place editor for 64-bit little-endian ELF shared objects: just enough to read
/// symbol versioning (<c>.gnu.version_r</c>, <c>.gnu.version_d</c>, <c>.gnu.version</c>) and the dynamic
/// symbol table, and to weaken a version requirement. Everything works on a byte array, so the file on
/// disk is never touched until the caller writes the result somewhere.
/// </summary>
public sealed class ElfFile
{
    const uint ShtDynsym = 11, ShtGnuVerdef = 0x6ffffffd, ShtGnuVerneed = 0x6ffffffe, ShtGnuVersym = 0x6fffffff;
    const uint ShtRela = 4;
    /// <summary>Version-need flag that makes a missing version non-fatal for the dynamic loader.</summary>
    public const ushort VerFlgWeak = 0x2;

    readonly byte[] _bytes;
    readonly List<Section> _sections = new();

    /// <summary>The path the bytes came from (for error messages).</summary>
    public string Path { get; }

    /// <summary>The file's bytes, including any edits made through this object.</summary>
    public ReadOnlySpan<byte> Bytes => _bytes;

    record struct Section(string Name, uint Type, long Offset, long Size, uint Link, long EntSize);

    /// <summary>A symbol-version requirement: an entry of <c>.gnu.version_r</c>.</summary>
    /// <param name="File">The library the version is required from, e.g. <c>libstdc++.so.6</c>.</param>
    /// <param name="Name">The version name, e.g. <c>GLIBCXX_3.4.32</c>.</param>
    /// <param name="Index">The version index symbols refer to in <c>.gnu.version</c>.</param>
    /// <param name="Flags">The <c>vna_flags</c> field.</param>
    /// <param name="FlagsOffset">Byte offset of <c>vna_flags</c> in the file.</param>
    public record VersionNeed(string File, string Name, ushort Index, ushort Flags, long FlagsOffset);

    /// <summary>A dynamic symbol with its version index.</summary>
    /// <param name="Index">Index into <c>.dynsym</c>.</param>
    /// <param name="Name">The (mangled) symbol name.</param>
    /// <param name="IsUndefined">True for a reference to another library's symbol.</param>
    /// <param name="Binding">STB_* binding (1 global, 2 weak).</param>
    /// <param name="VersionIndex">Entry of <c>.gnu.version</c> (hidden bit cleared).</param>
    public record DynamicSymbol(int Index, string Name, bool IsUndefined, int Binding, ushort VersionIndex);

    ElfFile(string path, byte[] bytes)
    {
        Path = path;
        _bytes = bytes;
        Parse();
    }

    /// <summary>Reads an ELF file into memory.</summary>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="InvalidDataException">The file is not a 64-bit little-endian ELF object.</exception>
    public static ElfFile Read(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"ELF file not found: '{path}'.", path);
        return new ElfFile(path, File.ReadAllBytes(path));
    }

    /// <summary>Parses ELF bytes that are already in memory.</summary>
    public static ElfFile FromBytes(byte[] bytes, string path = "<memory>") => new(path, bytes);

    void Parse()
    {
        var b = _bytes.AsSpan();
        if (b.Length < 64 || b[0] != 0x7f || b[1] != (byte)'E' || b[2] != (byte)'L' || b[3] != (byte)'F')
            throw new InvalidDataException($"'{Path}' is not an ELF file (bad magic).");
        if (b[4] != 2 || b[5] != 1)
            throw new InvalidDataException($"'{Path}' is not a 64-bit little-endian ELF file (class {b[4]}, data {b[5]}).");
        long shoff = (long)U64(0x28);
        int shentsize = U16(0x3A), shnum = U16(0x3C), shstrndx = U16(0x3E);
        if (shoff <= 0 || shentsize < 64 || shoff + (long)shnum * shentsize > b.Length)
            throw new InvalidDataException($"'{Path}' has no readable section header table (offset {shoff}, {shnum} entries): is the file truncated?");
        var raw = new List<(uint name, uint type, long off, long size, uint link, long entsize)>();
        for (int i = 0; i < shnum; i++)
        {
            long o = shoff + (long)i * shentsize;
            raw.Add((U32(o), U32(o + 4), (long)U64(o + 0x18), (long)U64(o + 0x20), U32(o + 0x28), (long)U64(o + 0x38)));
        }
        var shstr = raw[shstrndx];
        foreach (var s in raw)
        {
            if (s.type != 8 /* NOBITS */ && s.off + s.size > b.Length)
                throw new InvalidDataException($"'{Path}' is truncated: a section ends at byte {s.off + s.size} but the file has {b.Length} bytes.");
            _sections.Add(new Section(CString(shstr.off + s.name), s.type, s.off, s.size, s.link, s.entsize));
        }
    }

    Section? Find(uint type) => _sections.FirstOrDefault(s => s.Type == type) is { Type: not 0 } s ? s : null;

    /// <summary>Version requirements (<c>.gnu.version_r</c>); empty when the object has none.</summary>
    public IReadOnlyList<VersionNeed> VersionNeeds()
    {
        var list = new List<VersionNeed>();
        if (Find(ShtGnuVerneed) is not { } vr) return list;
        long strtab = _sections[(int)vr.Link].Offset;
        long off = vr.Offset;
        while (true)
        {
            ushort cnt = U16(off + 2);
            string file = CString(strtab + U32(off + 4));
            uint aux = U32(off + 8), next = U32(off + 12);
            long a = off + aux;
            for (int i = 0; i < cnt; i++)
            {
                ushort flags = U16(a + 4), other = U16(a + 6);
                list.Add(new VersionNeed(file, CString(strtab + U32(a + 8)), other, flags, a + 4));
                uint anext = U32(a + 12);
                if (anext == 0) break;
                a += anext;
            }
            if (next == 0) break;
            off += next;
        }
        return list;
    }

    /// <summary>Version names this object defines (<c>.gnu.version_d</c>), e.g. every <c>GLIBCXX_*</c> of a libstdc++.</summary>
    public IReadOnlySet<string> VersionDefinitions()
    {
        var set = new HashSet<string>(StringComparer.Ordinal);
        if (Find(ShtGnuVerdef) is not { } vd) return set;
        long strtab = _sections[(int)vd.Link].Offset;
        long off = vd.Offset;
        while (true)
        {
            ushort cnt = U16(off + 6);
            uint aux = U32(off + 12), next = U32(off + 16);
            if (cnt > 0) set.Add(CString(strtab + U32(off + aux)));
            if (next == 0) break;
            off += next;
        }
        return set;
    }

    /// <summary>The dynamic symbol table with each symbol's version index.</summary>
    public IReadOnlyList<DynamicSymbol> DynamicSymbols()
    {
        var list = new List<DynamicSymbol>();
        if (Find(ShtDynsym) is not { } ds) return list;
        long strtab = _sections[(int)ds.Link].Offset;
        var versym = Find(ShtGnuVersym);
        int n = (int)(ds.Size / 24);
        for (int i = 0; i < n; i++)
        {
            long o = ds.Offset + i * 24L;
            byte info = _bytes[o + 4];
            ushort shndx = U16(o + 6);
            ushort ver = versym is { } v ? (ushort)(U16(v.Offset + i * 2L) & 0x7fff) : (ushort)1;
            list.Add(new DynamicSymbol(i, CString(strtab + U32(o)), shndx == 0, info >> 4, ver));
        }
        return list;
    }

    /// <summary>Indices of dynamic symbols that some relocation refers to (such a symbol is really bound at load or call time).</summary>
    public IReadOnlySet<int> RelocatedSymbols()
    {
        var set = new HashSet<int>();
        var dynsym = Find(ShtDynsym);
        foreach (var s in _sections.Where(s => s.Type == ShtRela))
        {
            if (dynsym is null || _sections[(int)s.Link].Offset != dynsym.Value.Offset) continue;
            for (long o = s.Offset; o + 24 <= s.Offset + s.Size; o += 24)
                set.Add((int)(U64(o + 8) >> 32));
        }
        return set;
    }

    /// <summary>Sets <c>VER_FLG_WEAK</c> on a version requirement, so a loader that lacks the version only warns.</summary>
    public void WeakenVersionNeed(VersionNeed need)
    {
        BinaryPrimitives.WriteUInt16LittleEndian(_bytes.AsSpan((int)need.FlagsOffset), (ushort)(need.Flags | VerFlgWeak));
    }

    /// <summary>
    /// Makes a symbol unversioned (<c>.gnu.version</c> entry 1, VER_NDX_GLOBAL) and weak, so that it no longer
    /// names the missing version and, even if something did bind it, resolves to null instead of failing.
    /// </summary>
    public void ClearSymbolVersion(DynamicSymbol symbol)
    {
        var versym = Find(ShtGnuVersym) ?? throw new InvalidDataException($"'{Path}' has no .gnu.version section.");
        var ds = Find(ShtDynsym)!.Value;
        BinaryPrimitives.WriteUInt16LittleEndian(_bytes.AsSpan((int)(versym.Offset + symbol.Index * 2L)), 1);
        long o = ds.Offset + symbol.Index * 24L;
        _bytes[o + 4] = (byte)((2 << 4) | (_bytes[o + 4] & 0xf)); // STB_WEAK, same type
    }

    /// <summary>Writes the (edited) bytes to <paramref name="path"/> atomically: a temporary file, then a rename.</summary>
    public void Save(string path)
    {
        var tmp = path + "." + Environment.ProcessId + ".tmp";
        File.WriteAllBytes(tmp, _bytes);
        File.Move(tmp, path, overwrite: true);
    }

    ushort U16(long o) => BinaryPrimitives.ReadUInt16LittleEndian(_bytes.AsSpan((int)o));
    uint U32(long o) => BinaryPrimitives.ReadUInt32LittleEndian(_bytes.AsSpan((int)o));
    ulong U64(long o) => BinaryPrimitives.ReadUInt64LittleEndian(_bytes.AsSpan((int)o));

    string CString(long o)
    {
        int end = Array.IndexOf(_bytes, (byte)0, (int)o);
        if (end < 0) throw new InvalidDataException($"'{Path}': unterminated string at byte {o}.");
        return Encoding.ASCII.GetString(_bytes, (int)o, end - (int)o);
    }
}
