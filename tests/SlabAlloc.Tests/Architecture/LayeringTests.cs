using System.Text.RegularExpressions;
using Mono.Cecil;
using Mono.Cecil.Cil;
using SlabAlloc.Support;

namespace SlabAlloc.Tests.Architecture;

/// <summary>
/// The allocator's layers, read from the compiled assembly: every type reference in every signature,
/// field, local and instruction of every type, checked against the order the layers are written in
/// (docs/architecture.md, "Layers"). A layer may use the layers below it and never one above it.
/// </summary>
public sealed class LayeringTests
{
    /// <summary>Bottom to top. <c>Api</c> is namespace <c>SlabAlloc</c> itself.</summary>
    internal static readonly string[] Layers =
        ["Support", "Platform", "Memory", "Large", "Pool", "Interprocess", "Frontend", "Api", "Telemetry", "Runtime"];

    private static readonly Lazy<ModuleDefinition> Module =
        new(() => ModuleDefinition.ReadModule(typeof(SlabMemory).Assembly.Location));

    /// <summary>The layer of a namespace of the assembly, or -1 for one outside it.</summary>
    private static int LayerOf(string ns)
    {
        if (ns == "SlabAlloc") return Array.IndexOf(Layers, "Api");
        if (!ns.StartsWith("SlabAlloc.", StringComparison.Ordinal)) return -1;
        return Array.IndexOf(Layers, ns["SlabAlloc.".Length..].Split('.')[0]);
    }

    private static string NamespaceOf(TypeReference t)
    {
        while (t.DeclaringType != null) t = t.DeclaringType;
        return t.Namespace;
    }

    [Fact]
    public void EveryNamespaceOfTheAssemblyIsALayer()
    {
        var strays = AllTypes()
            .Where(t => !t.Name.StartsWith('<') && NamespaceOf(t) != "" && !IsCompilerSupport(NamespaceOf(t)) && LayerOf(NamespaceOf(t)) < 0)
            .Select(t => t.FullName)
            .ToList();
        Assert.True(strays.Count == 0, "types outside every layer:\n" + string.Join("\n", strays));
    }

    [Fact]
    public void NoLayerReferencesALayerAboveIt()
    {
        var upward = new SortedSet<string>(StringComparer.Ordinal);
        foreach (TypeDefinition type in AllTypes())
        {
            int from = LayerOf(NamespaceOf(type));
            if (from < 0) continue; // compiler-generated types at the root are checked through their users
            foreach ((TypeReference target, string where) in References(type))
            {
                if (target.Module != Module.Value && target.Scope != Module.Value) continue;
                int to = LayerOf(NamespaceOf(target));
                if (to > from)
                    upward.Add($"{Layers[from]} -> {Layers[to]}: {type.FullName} uses {target.FullName} ({where})");
            }
        }
        Assert.True(upward.Count == 0, "references to a layer above:\n" + string.Join("\n", upward));
    }

    /// <summary>The scan sees references when they are there: the top layer uses the bottom one, and the
    /// Api uses the front end.</summary>
    [Fact]
    public void TheScanFindsDownwardReferences()
    {
        var seen = new HashSet<(int, int)>();
        foreach (TypeDefinition type in AllTypes())
        {
            int from = LayerOf(NamespaceOf(type));
            if (from < 0) continue;
            foreach ((TypeReference target, _) in References(type))
                if (target.Scope == Module.Value || target.Module == Module.Value) seen.Add((from, LayerOf(NamespaceOf(target))));
        }
        Assert.Contains((Array.IndexOf(Layers, "Runtime"), Array.IndexOf(Layers, "Support")), seen);
        Assert.Contains((Array.IndexOf(Layers, "Api"), Array.IndexOf(Layers, "Frontend")), seen);
        Assert.Contains((Array.IndexOf(Layers, "Pool"), Array.IndexOf(Layers, "Memory")), seen);
    }

    [Fact]
    public void EveryPublicTypeIsInTheApi()
    {
        var misplaced = typeof(SlabMemory).Assembly.GetExportedTypes()
            .Where(t => t.Namespace != "SlabAlloc")
            .Select(t => t.FullName)
            .ToList();
        Assert.True(misplaced.Count == 0, "public types outside namespace SlabAlloc:\n" + string.Join("\n", misplaced));
    }

    /// <summary>In the sources, each file's namespace is its folder's (Api/ is namespace SlabAlloc).</summary>
    [Fact]
    public void EachSourceFilesNamespaceIsItsFolder()
    {
        string src = Path.Combine(RepositoryRoot(), "src", "SlabAlloc");
        var wrong = new List<string>();
        foreach (string file in Directory.EnumerateFiles(src, "*.cs", SearchOption.AllDirectories))
        {
            string relative = Path.GetRelativePath(src, file);
            if (relative.StartsWith("obj", StringComparison.Ordinal) || relative.StartsWith("bin", StringComparison.Ordinal)) continue;
            string folder = Path.GetDirectoryName(relative)!.Replace(Path.DirectorySeparatorChar, '.');
            Match m = Regex.Match(File.ReadAllText(file), @"^namespace ([\w.]+)\s*;", RegexOptions.Multiline);
            if (!m.Success)
            {
                if (folder != "Support" || !relative.EndsWith("ModuleSettings.cs", StringComparison.Ordinal)) wrong.Add($"{relative}: no namespace");
                continue;
            }
            string expected = folder == "Api" ? "SlabAlloc" : "SlabAlloc." + folder;
            if (m.Groups[1].Value != expected) wrong.Add($"{relative}: {m.Groups[1].Value}, expected {expected}");
            if (folder == "") wrong.Add($"{relative}: a file outside every layer's folder");
        }
        Assert.True(wrong.Count == 0, string.Join("\n", wrong));
    }

    /// <summary>Attribute types the compiler embeds in the assembly (System.Runtime.CompilerServices and the like).</summary>
    private static bool IsCompilerSupport(string ns) =>
        ns.StartsWith("System", StringComparison.Ordinal) || ns.StartsWith("Microsoft", StringComparison.Ordinal);

    internal static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "SlabAlloc.sln"))) return dir.FullName;
        throw new InvalidOperationException("the repository root (SlabAlloc.sln) is not above " + AppContext.BaseDirectory);
    }

    private static IEnumerable<TypeDefinition> AllTypes()
    {
        var stack = new Stack<TypeDefinition>(Module.Value.Types);
        while (stack.Count > 0)
        {
            TypeDefinition t = stack.Pop();
            yield return t;
            foreach (TypeDefinition nested in t.NestedTypes) stack.Push(nested);
        }
    }

    /// <summary>Every type <paramref name="type"/> names: base, interfaces, fields, signatures, locals, and
    /// the operands of its instructions (types, and the declaring types of methods and fields), with
    /// generic arguments and element types unwrapped.</summary>
    private static IEnumerable<(TypeReference, string)> References(TypeDefinition type)
    {
        var found = new List<(TypeReference, string)>();
        void Add(TypeReference? t, string where)
        {
            while (t != null)
            {
                if (t is GenericInstanceType g) foreach (TypeReference a in g.GenericArguments) Add(a, where);
                if (t is FunctionPointerType) return;
                if (t is TypeSpecification spec) { t = spec.ElementType; continue; }
                if (t is GenericParameter) return;
                found.Add((t, where));
                return;
            }
        }
        Add(type.BaseType, "base type");
        foreach (InterfaceImplementation i in type.Interfaces) Add(i.InterfaceType, "interface");
        foreach (FieldDefinition f in type.Fields) Add(f.FieldType, "field " + f.Name);
        foreach (MethodDefinition m in type.Methods)
        {
            Add(m.ReturnType, m.Name);
            foreach (ParameterDefinition p in m.Parameters) Add(p.ParameterType, m.Name);
            if (!m.HasBody) continue;
            foreach (VariableDefinition v in m.Body.Variables) Add(v.VariableType, m.Name + ", a local");
            foreach (Instruction ins in m.Body.Instructions)
            {
                switch (ins.Operand)
                {
                    case TypeReference t: Add(t, m.Name); break;
                    case MethodReference called:
                        Add(called.DeclaringType, $"{m.Name} calls {called.Name}");
                        if (called is GenericInstanceMethod gm) foreach (TypeReference a in gm.GenericArguments) Add(a, m.Name);
                        break;
                    case FieldReference field: Add(field.DeclaringType, $"{m.Name} uses {field.Name}"); break;
                }
            }
        }
        return found;
    }
}
