using System.Diagnostics;
using System.Reflection;
using System.Reflection.Emit;
using System.Reflection.Metadata;
using System.Reflection.Metadata.Ecma335;
using System.Reflection.PortableExecutable;
using Microsoft.Extensions.Logging;
using SlabAlloc.Frontend;
using SlabAlloc.Large;
using SlabAlloc.Memory;
using SlabAlloc.Pool;
using SlabAlloc.Support;

namespace SlabAlloc.Tests.Support;

/// <summary>
/// The proof that debug logging is compiled out of Release builds: the IL of every method body in
/// the SlabAlloc.dll under test is decoded, and no method outside <see cref="SlabLog"/> may call (or
/// take the address of) a debug event, while <c>ThrowHelper</c> must call the error event in every
/// build, which shows that the scan sees calls when they are there.
/// </summary>
/// <remarks>
/// <para>The debug events are found by their attributes, not by a list of names: every
/// <c>[Conditional("DEBUG")]</c> wrapper of <see cref="SlabLog"/> and every <c>[LoggerMessage]</c>
/// method below Error level. They still exist in a Release assembly (uncalled), so the targets of
/// the scan are real methods in the file that is scanned.</para>
/// <para><c>./build.sh test</c> runs the suite in Release, where the calls must be absent. Run in
/// Debug (<c>dotnet test -c Debug</c>), the same tests assert the opposite: every wrapper is called
/// from the slow paths, and their arguments are evaluated.</para>
/// </remarks>
[Collection("SlabAlloc global state")]
public sealed class LogCompiledOutTests
{
    /// <summary>True when the SlabAlloc assembly under test is a Debug build (optimizer off, DEBUG defined).</summary>
    internal static bool SlabAllocIsDebugBuild { get; } =
        typeof(SlabMemory).Assembly.GetCustomAttribute<DebuggableAttribute>()?.IsJITOptimizerDisabled == true;

    private const string LogClass = "SlabAlloc.Support.SlabLog";

    private static readonly Lazy<List<IlReference>> References = new(() => IlScanner.MethodReferences(typeof(SlabMemory).Assembly.Location));

    [Fact]
    public void DebugEvents_AreCalledFromOutsideTheLogClass_OnlyInDebugBuilds()
    {
        var wrappers = DebugWrappers();
        var generated = DebugLoggerMessages();
        Assert.True(wrappers.Count >= 11, $"expected the [Conditional(\"DEBUG\")] wrappers, found {wrappers.Count}");
        Assert.True(generated.Count >= 12, $"expected the debug [LoggerMessage] methods, found {generated.Count}");
        var targets = wrappers.Concat(generated).ToDictionary(m => m.MetadataToken, m => m.Name);

        var outside = References.Value
            .Where(r => targets.ContainsKey(r.CalleeToken) && !r.CallerIsIn(LogClass))
            .ToList();

        if (!SlabAllocIsDebugBuild)
        {
            Assert.True(outside.Count == 0,
                "Release build calls debug logging:\n" + string.Join("\n", outside));
            return;
        }
        // Debug: every wrapper has a call site in a slow path, and nothing outside calls a generated method directly.
        Assert.Equal(wrappers.Select(m => m.Name).Order(), outside.Select(r => r.CalleeMethod).Distinct().Order());
        Assert.Contains(outside, r => r.CallerType == "SlabAlloc.Memory.Superslabs");
        Assert.Contains(outside, r => r.CallerType == "SlabAlloc.Pool.SharedSlabPool`1");
        Assert.Contains(outside, r => r.CallerType == "SlabAlloc.Frontend.ThreadCacheRecords");
        Assert.Contains(outside, r => r.CallerType == "SlabAlloc.Large.LargeObjects");
    }

    [Fact]
    public void ErrorEvents_AreCalledFromErrorReports_InEveryBuild()
    {
        MethodInfo errorEvent = typeof(SlabLog).GetMethod(nameof(SlabLog.ErrorDetected), BindingFlags.Static | BindingFlags.Public | BindingFlags.NonPublic)!;
        Assert.Null(errorEvent.GetCustomAttribute<ConditionalAttribute>());
        MethodInfo poolEvent = typeof(SlabLog).GetMethod(nameof(SlabLog.PoolBufferNotDisposed), BindingFlags.Static | BindingFlags.Public | BindingFlags.NonPublic)!;
        Assert.Null(poolEvent.GetCustomAttribute<ConditionalAttribute>());
        MethodInfo notLoggedEvent = typeof(SlabLog).GetMethod(nameof(SlabLog.ErrorsNotLogged), BindingFlags.Static | BindingFlags.Public | BindingFlags.NonPublic)!;
        Assert.Null(notLoggedEvent.GetCustomAttribute<ConditionalAttribute>());
        var errorMessages = LoggerMessages().Where(m => m.GetCustomAttribute<LoggerMessageAttribute>()!.Level == LogLevel.Error).ToList();
        Assert.Equal(3, errorMessages.Count);

        // ThrowHelper builds every exception and reports it through ErrorReports, which logs it.
        Assert.Contains(References.Value, r => r.CalleeToken == errorEvent.MetadataToken && r.CallerType == "SlabAlloc.Support.ErrorReports");
        Assert.Contains(References.Value, r => r.CalleeToken == notLoggedEvent.MetadataToken && r.CallerType == "SlabAlloc.Support.ErrorReports");
        Assert.Contains(References.Value, r => r.CallerType == "SlabAlloc.Support.ThrowHelper" && r.CalleeType == "SlabAlloc.Support.ErrorReports" && r.CalleeMethod == "Report");
        Assert.Contains(References.Value, r => r.CalleeToken == poolEvent.MetadataToken && r.CallerType == "SlabAlloc.SlabMemoryPool");
        foreach (MethodInfo errorMessage in errorMessages)
            Assert.Contains(References.Value, r => r.CalleeToken == errorMessage.MetadataToken && r.CallerType == LogClass);
    }

    [Fact]
    public void ArenaWarning_IsCalledFromTheArena_InEveryBuild()
    {
        MethodInfo arenaEvent = typeof(SlabLog).GetMethod(nameof(SlabLog.SuperslabArenaUsedUp), BindingFlags.Static | BindingFlags.Public | BindingFlags.NonPublic)!;
        Assert.Null(arenaEvent.GetCustomAttribute<ConditionalAttribute>());
        MethodInfo warning = Assert.Single(LoggerMessages(), m => m.GetCustomAttribute<LoggerMessageAttribute>()!.Level == LogLevel.Warning);
        Assert.Contains(References.Value, r => r.CalleeToken == arenaEvent.MetadataToken && r.CallerType == "SlabAlloc.Memory.SuperslabArena");
        Assert.Contains(References.Value, r => r.CalleeToken == warning.MetadataToken && r.CallerType == LogClass);
    }

    [Fact]
    public void DebugEventArguments_AreEvaluatedOnlyInDebugBuilds()
    {
        // In Superslabs.MapNew the registry's and the directory's sizes are read only as arguments
        // of debug events: a Release build must not read them at all.
        var sizeReads = References.Value
            .Where(r => r.CallerType == "SlabAlloc.Memory.Superslabs" && r.CallerMethod == "MapNew" && r.CalleeMethod == "get_MappedBytes")
            .Select(r => r.CalleeType)
            .ToList();
        if (SlabAllocIsDebugBuild)
            Assert.Equal(["SlabAlloc.Memory.Registry", "SlabAlloc.Memory.SuperslabDirectory"], sizeReads.Order());
        else
            Assert.Empty(sizeReads);
    }

    private static List<MethodInfo> DebugWrappers() =>
        SlabLogMethods().Where(m => m.GetCustomAttribute<ConditionalAttribute>()?.ConditionString == "DEBUG").ToList();

    private static List<MethodInfo> DebugLoggerMessages() =>
        LoggerMessages().Where(m => m.GetCustomAttribute<LoggerMessageAttribute>()!.Level < LogLevel.Error).ToList();

    private static IEnumerable<MethodInfo> LoggerMessages() =>
        SlabLogMethods().Where(m => m.GetCustomAttribute<LoggerMessageAttribute>() != null);

    private static MethodInfo[] SlabLogMethods() =>
        typeof(SlabLog).GetMethods(BindingFlags.Static | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.DeclaredOnly);
}

/// <summary>One method-token operand (call, callvirt, newobj, ldftn, ...) in a method body.</summary>
internal sealed record IlReference(string CallerType, string CallerMethod, int CalleeToken, string CalleeType, string CalleeMethod)
{
    /// <summary>True when the caller is <paramref name="typeName"/> or a type nested in it.</summary>
    public bool CallerIsIn(string typeName) => CallerType == typeName || CallerType.StartsWith(typeName + "+", StringComparison.Ordinal);

    public override string ToString() => $"{CallerType}.{CallerMethod} -> {CalleeType}.{CalleeMethod}";
}

/// <summary>Decodes the IL of every method body of an assembly file with System.Reflection.Metadata.</summary>
internal static class IlScanner
{
    private static readonly Dictionary<ushort, OpCode> OpCodesByValue = BuildOpCodeTable();

    public static List<IlReference> MethodReferences(string assemblyPath)
    {
        using var pe = new PEReader(File.OpenRead(assemblyPath));
        MetadataReader md = pe.GetMetadataReader();
        var references = new List<IlReference>();
        foreach (TypeDefinitionHandle typeHandle in md.TypeDefinitions)
        {
            string callerType = TypeName(md, typeHandle);
            foreach (MethodDefinitionHandle methodHandle in md.GetTypeDefinition(typeHandle).GetMethods())
            {
                MethodDefinition method = md.GetMethodDefinition(methodHandle);
                if (method.RelativeVirtualAddress == 0) continue; // abstract, extern or runtime-implemented
                string callerMethod = md.GetString(method.Name);
                BlobReader il = pe.GetMethodBody(method.RelativeVirtualAddress).GetILReader();
                while (il.RemainingBytes > 0)
                {
                    ushort value = il.ReadByte();
                    if (value == 0xFE) value = (ushort)(0xFE00 | il.ReadByte());
                    OpCode op = OpCodesByValue[value];
                    switch (op.OperandType)
                    {
                        case OperandType.InlineMethod:
                            EntityHandle callee = MetadataTokens.EntityHandle(il.ReadInt32());
                            if (callee.Kind == HandleKind.MethodSpecification)
                                callee = md.GetMethodSpecification((MethodSpecificationHandle)callee).Method;
                            (string calleeType, string calleeMethod) = Describe(md, callee);
                            references.Add(new IlReference(callerType, callerMethod, MetadataTokens.GetToken(callee), calleeType, calleeMethod));
                            break;
                        case OperandType.InlineSwitch:
                            int targets = il.ReadInt32();
                            il.Offset += 4 * targets;
                            break;
                        default:
                            il.Offset += OperandBytes(op.OperandType);
                            break;
                    }
                }
            }
        }
        return references;
    }

    private static (string Type, string Method) Describe(MetadataReader md, EntityHandle method)
    {
        if (method.Kind == HandleKind.MethodDefinition)
        {
            MethodDefinition def = md.GetMethodDefinition((MethodDefinitionHandle)method);
            return (TypeName(md, def.GetDeclaringType()), md.GetString(def.Name));
        }
        MemberReference member = md.GetMemberReference((MemberReferenceHandle)method);
        string type = member.Parent.Kind switch
        {
            HandleKind.TypeDefinition => TypeName(md, (TypeDefinitionHandle)member.Parent),
            HandleKind.TypeReference => TypeReferenceName(md, (TypeReferenceHandle)member.Parent),
            _ => "(" + member.Parent.Kind + ")",
        };
        return (type, md.GetString(member.Name));
    }

    private static string TypeName(MetadataReader md, TypeDefinitionHandle handle)
    {
        TypeDefinition type = md.GetTypeDefinition(handle);
        TypeDefinitionHandle outer = type.GetDeclaringType();
        if (!outer.IsNil) return TypeName(md, outer) + "+" + md.GetString(type.Name);
        string ns = md.GetString(type.Namespace);
        return ns.Length == 0 ? md.GetString(type.Name) : ns + "." + md.GetString(type.Name);
    }

    private static string TypeReferenceName(MetadataReader md, TypeReferenceHandle handle)
    {
        TypeReference type = md.GetTypeReference(handle);
        string ns = md.GetString(type.Namespace);
        return ns.Length == 0 ? md.GetString(type.Name) : ns + "." + md.GetString(type.Name);
    }

    private static int OperandBytes(OperandType operand) => operand switch
    {
        OperandType.InlineNone => 0,
        OperandType.ShortInlineBrTarget or OperandType.ShortInlineI or OperandType.ShortInlineVar => 1,
        OperandType.InlineVar => 2,
        OperandType.InlineI8 or OperandType.InlineR => 8,
        _ => 4, // branch targets, tokens (field, type, string, signature), int32, float32
    };

    private static Dictionary<ushort, OpCode> BuildOpCodeTable()
    {
        var table = new Dictionary<ushort, OpCode>();
        foreach (FieldInfo field in typeof(OpCodes).GetFields(BindingFlags.Public | BindingFlags.Static))
        {
            var op = (OpCode)field.GetValue(null)!;
            table.TryAdd((ushort)op.Value, op);
        }
        return table;
    }
}
