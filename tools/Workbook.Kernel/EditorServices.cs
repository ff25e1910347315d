using System.Collections.Concurrent;
using System.Text;
using System.Text.Json.Nodes;
using System.Xml.Linq;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using Workbook.Engine;

namespace Workbook.Kernel;

/// <summary>
/// Completion, inspection and completeness checks for the editor, from Roslyn's semantic model of the cell being
/// typed compiled as the session's next cell: earlier cells' variables, usings and #r references are in scope.
/// Jupyter positions count Unicode code points; they are converted to and from .NET's UTF-16 indices here.
/// </summary>
public sealed class EditorServices
{
    readonly ScriptSession _session;
    readonly DocumentationLookup _docs = new();

    static readonly SymbolDisplayFormat SignatureFormat = new(
        globalNamespaceStyle: SymbolDisplayGlobalNamespaceStyle.Omitted,
        typeQualificationStyle: SymbolDisplayTypeQualificationStyle.NameAndContainingTypes,
        genericsOptions: SymbolDisplayGenericsOptions.IncludeTypeParameters,
        memberOptions: SymbolDisplayMemberOptions.IncludeType | SymbolDisplayMemberOptions.IncludeParameters | SymbolDisplayMemberOptions.IncludeContainingType
                       | SymbolDisplayMemberOptions.IncludeRef | SymbolDisplayMemberOptions.IncludeConstantValue,
        kindOptions: SymbolDisplayKindOptions.IncludeNamespaceKeyword | SymbolDisplayKindOptions.IncludeTypeKeyword,
        parameterOptions: SymbolDisplayParameterOptions.IncludeType | SymbolDisplayParameterOptions.IncludeName | SymbolDisplayParameterOptions.IncludeDefaultValue
                          | SymbolDisplayParameterOptions.IncludeParamsRefOut | SymbolDisplayParameterOptions.IncludeExtensionThis,
        propertyStyle: SymbolDisplayPropertyStyle.ShowReadWriteDescriptor,
        localOptions: SymbolDisplayLocalOptions.IncludeType,
        miscellaneousOptions: SymbolDisplayMiscellaneousOptions.UseSpecialTypes | SymbolDisplayMiscellaneousOptions.EscapeKeywordIdentifiers
                              | SymbolDisplayMiscellaneousOptions.IncludeNullableReferenceTypeModifier);

    static readonly string[] Keywords = SyntaxFacts.GetKeywordKinds().Concat(SyntaxFacts.GetContextualKeywordKinds())
        .Select(SyntaxFacts.GetText).Where(k => k.Length > 0 && char.IsLetter(k[0])).Distinct().ToArray();

    /// <summary>Creates the services for <paramref name="session"/>.</summary>
    public EditorServices(ScriptSession session) => _session = session;

    /// <summary>A complete_reply: names that fit the word before the cursor (members after a '.', else locals, globals, types, keywords).</summary>
    public JsonObject Complete(string code, int cursorPos)
    {
        int cursor = CodePoints.ToUtf16(code, cursorPos);
        int start = cursor;
        while (start > 0 && IsIdentifierChar(code[start - 1])) start--;
        var prefix = code[start..cursor];

        var compilation = _session.CompileForEditor(code);
        var tree = compilation.SyntaxTrees.First();
        var model = compilation.GetSemanticModel(tree);
        var afterDot = start > 0 && code[start - 1] == '.';
        var symbols = afterDot ? MemberCandidates(model, tree, start - 1, start) : model.LookupSymbols(start);

        var found = new List<(string Name, string Type, string Signature)>();
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var s in symbols)
        {
            if (!s.CanBeReferencedByName || s.IsImplicitlyDeclared || IsHidden(s)) continue;
            if (s is INamedTypeSymbol { IsScriptClass: true } || s.Name.StartsWith('<')) continue;
            if (!s.Name.StartsWith(prefix, StringComparison.OrdinalIgnoreCase) || !names.Add(s.Name)) continue;
            found.Add((s.Name, KindName(s), s.ToDisplayString(SignatureFormat)));
        }
        if (!afterDot && prefix.Length > 0)
            foreach (var k in Keywords)
                if (k.StartsWith(prefix, StringComparison.Ordinal) && names.Add(k)) found.Add((k, "keyword", k));

        // Exact-case prefix matches first, then the rest, each alphabetical.
        var ordered = found.OrderBy(f => f.Name.StartsWith(prefix, StringComparison.Ordinal) ? 0 : 1)
            .ThenBy(f => f.Name, StringComparer.OrdinalIgnoreCase).ToList();
        int startPos = CodePoints.FromUtf16(code, start), endPos = CodePoints.FromUtf16(code, cursor);
        return new JsonObject
        {
            ["status"] = "ok",
            ["matches"] = new JsonArray(ordered.Select(f => (JsonNode)f.Name).ToArray()),
            ["cursor_start"] = startPos,
            ["cursor_end"] = endPos,
            ["metadata"] = new JsonObject
            {
                ["_jupyter_types_experimental"] = new JsonArray(ordered.Select(f => (JsonNode)new JsonObject
                {
                    ["start"] = startPos, ["end"] = endPos, ["text"] = f.Name, ["type"] = f.Type, ["signature"] = f.Signature,
                }).ToArray()),
            },
        };
    }

    // Members of whatever is left of the dot: a namespace's types, a type's static members, a value's instance members and extension methods.
    static IEnumerable<ISymbol> MemberCandidates(SemanticModel model, SyntaxTree tree, int dot, int position)
    {
        var token = tree.GetRoot().FindToken(dot);
        ExpressionSyntax? left = token.Parent switch
        {
            MemberAccessExpressionSyntax ma => ma.Expression,
            QualifiedNameSyntax qn => qn.Left,
            MemberBindingExpressionSyntax mb => mb.FirstAncestorOrSelf<ConditionalAccessExpressionSyntax>()?.Expression,
            _ => null,
        };
        if (left is null) return Array.Empty<ISymbol>();
        var info = model.GetSymbolInfo(left);
        var symbol = info.Symbol ?? (info.CandidateSymbols.Length > 0 ? info.CandidateSymbols[0] : null);
        if (symbol is INamespaceSymbol ns) return model.LookupNamespacesAndTypes(position, ns);
        if (symbol is INamedTypeSymbol type) return model.LookupStaticMembers(position, type);
        var valueType = model.GetTypeInfo(left).Type;
        if (valueType is null || valueType.TypeKind == TypeKind.Error) return Array.Empty<ISymbol>();
        return model.LookupSymbols(position, valueType, includeReducedExtensionMethods: true)
            .Where(s => !s.IsStatic || s is IMethodSymbol { MethodKind: MethodKind.ReducedExtension });
    }

    /// <summary>An inspect_reply: the signature(s), documentation summary and, for a cell variable, its current value.</summary>
    public JsonObject Inspect(string code, int cursorPos, int detailLevel)
    {
        int cursor = CodePoints.ToUtf16(code, cursorPos);
        var compilation = _session.CompileForEditor(code);
        var tree = compilation.SyntaxTrees.First();
        var model = compilation.GetSemanticModel(tree);
        var symbols = SymbolsAt(model, tree, code, cursor);
        if (symbols.Count == 0)
            return new JsonObject { ["status"] = "ok", ["found"] = false, ["data"] = new JsonObject(), ["metadata"] = new JsonObject() };

        var text = new StringBuilder();
        int shown = detailLevel > 0 ? 50 : 8;
        foreach (var s in symbols.Take(shown)) text.AppendLine(s.ToDisplayString(SignatureFormat));
        if (symbols.Count > shown) text.AppendLine($"(+{symbols.Count - shown} more overloads)");
        var first = symbols[0];
        if (_docs.Summary(first, compilation) is { Length: > 0 } summary) text.AppendLine().AppendLine(summary);
        if (first is IFieldSymbol or IPropertySymbol or ILocalSymbol && first.ContainingType is { IsScriptClass: true } or null
            && _session.TryGetVariable(first.Name, out var value))
        {
            var shownValue = MimeBundle.Format(value).GetValueOrDefault("text/plain") ?? "";
            if (shownValue.Length > 2000) shownValue = shownValue[..2000] + "…";
            text.AppendLine().Append("Value: ").AppendLine(shownValue);
        }
        return new JsonObject
        {
            ["status"] = "ok", ["found"] = true,
            ["data"] = new JsonObject { ["text/plain"] = text.ToString().TrimEnd() },
            ["metadata"] = new JsonObject(),
        };
    }

    static List<ISymbol> SymbolsAt(SemanticModel model, SyntaxTree tree, string code, int cursor)
    {
        var root = tree.GetRoot();
        // The word the cursor is in or just after; inside an argument list, the method being called.
        int position = cursor > 0 && (cursor == code.Length || !IsIdentifierChar(code[cursor])) && IsIdentifierChar(code[cursor - 1]) ? cursor - 1 : cursor;
        if (position >= code.Length) position = Math.Max(0, code.Length - 1);
        var token = root.FindToken(position);
        SyntaxNode? node = token.Parent;
        if (!token.IsKind(SyntaxKind.IdentifierToken) && !SyntaxFacts.IsPredefinedType(token.Kind()))
        {
            var call = token.Parent?.FirstAncestorOrSelf<ArgumentListSyntax>()?.Parent as InvocationExpressionSyntax;
            node = call?.Expression is MemberAccessExpressionSyntax ma ? ma.Name : call?.Expression;
        }
        if (node is null) return new List<ISymbol>();
        var info = model.GetSymbolInfo(node);
        if (info.Symbol is { } symbol) return new List<ISymbol> { symbol };
        if (info.CandidateSymbols.Length > 0) return info.CandidateSymbols.ToList();
        if (model.GetDeclaredSymbol(node) is { } declared) return new List<ISymbol> { declared };
        return model.GetTypeInfo(node).Type is { TypeKind: not TypeKind.Error } t ? new List<ISymbol> { t } : new List<ISymbol>();
    }

    /// <summary>An is_complete_reply: "incomplete" (with an indent) while a block, string or statement is still open.</summary>
    public static JsonObject IsComplete(string code)
    {
        var tree = CSharpSyntaxTree.ParseText(CellDirectives.MaskDirectives(code), CSharpParseOptions.Default.WithKind(SourceCodeKind.Script).WithLanguageVersion(LanguageVersion.Latest));
        if (string.IsNullOrWhiteSpace(code) || SyntaxFactory.IsCompleteSubmission(tree))
            return new JsonObject { ["status"] = "complete" };
        var last = code.Replace("\r", "").Split('\n').LastOrDefault(l => l.Trim().Length > 0) ?? "";
        var indent = new string(last.TakeWhile(char.IsWhiteSpace).ToArray()) + (last.TrimEnd().EndsWith('{') ? "    " : "");
        return new JsonObject { ["status"] = "incomplete", ["indent"] = indent };
    }

    static bool IsIdentifierChar(char c) => char.IsLetterOrDigit(c) || c == '_' || c == '@';

    static bool IsHidden(ISymbol s) => s.GetAttributes().Any(a =>
        a.AttributeClass?.Name == "EditorBrowsableAttribute" && a.ConstructorArguments.Length == 1 && a.ConstructorArguments[0].Value is int state && state == 1);

    static string KindName(ISymbol s) => s switch
    {
        IMethodSymbol => "method",
        IPropertySymbol => "property",
        IFieldSymbol { ContainingType.IsScriptClass: true } => "variable",
        IFieldSymbol f => f.IsConst ? "constant" : "field",
        IEventSymbol => "event",
        ILocalSymbol => "variable",
        IParameterSymbol => "parameter",
        INamespaceSymbol => "namespace",
        INamedTypeSymbol t => t.TypeKind switch
        {
            TypeKind.Interface => "interface", TypeKind.Struct => "struct", TypeKind.Enum => "enum", TypeKind.Delegate => "delegate", _ => "class",
        },
        _ => s.Kind.ToString().ToLowerInvariant(),
    };
}

/// <summary>Jupyter counts positions in Unicode code points; .NET strings index UTF-16 units.</summary>
static class CodePoints
{
    /// <summary>The UTF-16 index of code point <paramref name="codePoints"/> (clamped to the text).</summary>
    public static int ToUtf16(string s, int codePoints)
    {
        int i = 0;
        for (int n = 0; i < s.Length && n < codePoints; n++) i += i + 1 < s.Length && char.IsSurrogatePair(s[i], s[i + 1]) ? 2 : 1;
        return i;
    }

    /// <summary>The code point count of the first <paramref name="utf16"/> units.</summary>
    public static int FromUtf16(string s, int utf16)
    {
        int n = 0;
        for (int i = 0; i < utf16 && i < s.Length; n++) i += i + 1 < s.Length && char.IsSurrogatePair(s[i], s[i + 1]) ? 2 : 1;
        return n;
    }
}

/// <summary>
/// Documentation summaries from the XML files beside referenced assemblies: NuGet packages ship them next to the
/// dll; the shared framework's are in the SDK's reference pack (packs/Microsoft.NETCore.App.Ref/VERSION/ref/netX.Y).
/// </summary>
sealed class DocumentationLookup
{
    readonly ConcurrentDictionary<string, XDocument?> _files = new(StringComparer.Ordinal);

    public string? Summary(ISymbol symbol, Compilation compilation)
    {
        var target = symbol is IMethodSymbol { ReducedFrom: { } reduced } ? reduced : symbol.OriginalDefinition;
        var id = target.GetDocumentationCommentId();
        if (id is null || target.ContainingAssembly is null) return null;
        if (compilation.GetMetadataReference(target.ContainingAssembly) is not PortableExecutableReference { FilePath: { } dll }) return null;
        foreach (var xmlPath in XmlCandidates(dll))
        {
            var doc = _files.GetOrAdd(xmlPath, Load);
            var member = doc?.Root?.Element("members")?.Elements("member").FirstOrDefault(m => (string?)m.Attribute("name") == id);
            if (member?.Element("summary") is { } summary) return Flatten(summary);
        }
        return null;
    }

    static XDocument? Load(string path)
    {
        try { return File.Exists(path) ? XDocument.Load(path) : null; }
        catch (Exception e) when (e is IOException or System.Xml.XmlException or UnauthorizedAccessException) { return null; }
    }

    static IEnumerable<string> XmlCandidates(string dll)
    {
        yield return Path.ChangeExtension(dll, ".xml");
        // .../dotnet/shared/Microsoft.NETCore.App/10.0.12/System.Console.dll -> .../dotnet/packs/Microsoft.NETCore.App.Ref/10.0.*/ref/net10.0/System.Console.xml
        var dir = new DirectoryInfo(Path.GetDirectoryName(dll)!);
        if (dir.Parent is { Name: var framework } frameworkDir && frameworkDir.Parent is { Name: "shared" } shared && shared.Parent is { } root)
        {
            var packs = Path.Combine(root.FullName, "packs", framework + ".Ref");
            if (!Directory.Exists(packs)) yield break;
            var major = dir.Name.Split('.')[0];
            foreach (var version in Directory.GetDirectories(packs, major + ".*").OrderByDescending(v => v, StringComparer.Ordinal))
                foreach (var tfm in Directory.GetDirectories(Path.Combine(version, "ref")))
                    yield return Path.Combine(tfm, Path.GetFileNameWithoutExtension(dll) + ".xml");
        }
    }

    // <summary> text with <see cref="T:System.String"/> as "String", <paramref name="x"/> as "x", whitespace collapsed.
    static string Flatten(XElement element)
    {
        var sb = new StringBuilder();
        foreach (var node in element.Nodes())
        {
            if (node is XText t) sb.Append(t.Value);
            else if (node is XElement e)
            {
                var cref = ((string?)e.Attribute("cref"))?.Split('(')[0];
                var name = cref is not null ? cref[(cref.LastIndexOfAny(new[] { '.', ':' }) + 1)..] : (string?)e.Attribute("name") ?? (string?)e.Attribute("langword");
                sb.Append(name ?? Flatten(e));
            }
        }
        return string.Join(' ', sb.ToString().Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries));
    }
}
