using Mono.Cecil;
using Mono.Cecil.Cil;
using SlabAlloc.Frontend;
using SlabAlloc.Memory;
using SlabAlloc.Pool;
using SlabAlloc.Support;

namespace SlabAlloc.Tests.Support;

/// <summary>
/// The invariant checks run where they are written, and only in Debug builds: the IL of the assembly
/// under test calls <see cref="Invariant"/> and <see cref="SlabInvariants"/> at the slab, slot and
/// record hand-overs in a Debug build, and nowhere in a Release build. <c>./build.sh test</c> runs the
/// suite once in each, so the checks execute on every test of the Debug pass.
/// </summary>
public sealed class InvariantTests
{
    private static readonly string[] CheckTypes = ["SlabAlloc.Support.Invariant", "SlabAlloc.Memory.SlabInvariants"];

    /// <summary>Each hand-over that must check: the calling type and method.</summary>
    private static readonly string[] HandOvers =
    [
        "SlabAlloc.Memory.SlabMeta::Format",
        "SlabAlloc.Memory.SlabMeta::LetGo",
        "SlabAlloc.Memory.Superslabs::ReleaseSlots",
        "SlabAlloc.Memory.Superslabs::PurgeResident",
        "SlabAlloc.Memory.Superslabs::TryClaimSlots",
        "SlabAlloc.Pool.SharedSlabPool`1::Own",
        "SlabAlloc.Pool.SharedSlabPool`1::PushPartial",
        "SlabAlloc.Pool.SharedSlabPool`1::ReleaseEmptyUnguarded",
        "SlabAlloc.Pool.SharedSlabPool`1::ReleaseToUnused",
        "SlabAlloc.Pool.SharedSlabPool`1::Acquire", // a slab popped at stage 1, adopted once the guard is let go
        "SlabAlloc.Frontend.ThreadCacheRecords::Attach",
    ];

    [Fact]
    public void ChecksAreCalledAtEveryHandOverInDebug_AndNowhereInRelease()
    {
        using ModuleDefinition module = ModuleDefinition.ReadModule(typeof(SlabMemory).Assembly.Location);
        var callers = new HashSet<string>(StringComparer.Ordinal);
        foreach (TypeDefinition type in module.Types.SelectMany(t => t.NestedTypes.Prepend(t)))
        {
            if (CheckTypes.Contains(type.FullName)) continue; // the checks' own helpers call each other
            foreach (MethodDefinition m in type.Methods.Where(m => m.HasBody))
                foreach (Instruction ins in m.Body.Instructions)
                    if (ins.Operand is MethodReference called && CheckTypes.Contains(called.DeclaringType.FullName))
                        callers.Add($"{type.FullName}::{m.Name}");
        }

        if (!LogCompiledOutTests.SlabAllocIsDebugBuild)
        {
            Assert.True(callers.Count == 0, "a Release build calls invariant checks:\n" + string.Join("\n", callers));
            return;
        }
        var missing = HandOvers.Where(h => !callers.Contains(h)).ToList();
        Assert.True(missing.Count == 0, "hand-overs without their check:\n" + string.Join("\n", missing));
    }

    /// <summary>A check fires: a slab whose count equation was broken behind the allocator's back ends
    /// the process at its next hand-over in a Debug build; a Release build has no check to fire.</summary>
    [Fact]
    public void ABrokenCountEndsTheProcessAtTheNextHandOverInDebug()
    {
        var r = ProbeProcess.Run(new Dictionary<string, string>(), "invariant");
        if (LogCompiledOutTests.SlabAllocIsDebugBuild)
        {
            Assert.True(r.ExitCode != 0, r.ToString());
            Assert.Contains("SlabAlloc invariant violated: every block handed out at least once is out or on a list", r.Stderr + r.Stdout);
            Assert.DoesNotContain("INVARIANT_NOT_CHECKED", r.Stdout);
        }
        else
        {
            Assert.True(r.ExitCode == 0, r.ToString());
            Assert.Contains("INVARIANT_NOT_CHECKED", r.Stdout);
        }
    }
}
