using SlabAlloc.Memory;

namespace SlabAlloc.CheckedProbe.Scenarios;

/// <summary>
/// <c>invariant</c>: breaks a slab's count equation behind the allocator's back, then lets the allocator
/// hand the slab over: two 64-byte blocks are handed out, the slab's <c>Used</c> is lowered by one (as a
/// lost count would), one block is freed (so the slab looks empty with a block still out), and
/// <c>Trim</c> lets the slab go. In a Debug build the invariant check at that hand-over ends the process
/// (<c>Environment.FailFast</c>, "SlabAlloc invariant violated: ..."); in a Release build the checks are
/// compiled out, and the probe prints <c>INVARIANT_NOT_CHECKED</c> and exits 0 without touching the block
/// that is still out (its slab was released under it).
/// </summary>
internal static unsafe class InvariantViolation
{
    public static int Run(string[] args, long baseline)
    {
        if (args.Length != 0) return Probe.BadArguments;
        void* a = SlabMemory.Alloc(64);
        void* b = SlabMemory.Alloc(64);
        SlabMeta* s = SuperslabHeader.SlabOf(a);
        if (s != SuperslabHeader.SlabOf(b))
        {
            Probe.Fail("PROBE_ERROR: two 64-byte blocks of a fresh thread came from different slabs");
            return 1;
        }
        s->Used--;
        SlabMemory.Free(a);
        SlabMemory.Trim();
        Console.WriteLine("INVARIANT_NOT_CHECKED");
        return 0;
    }
}
