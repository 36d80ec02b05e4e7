using System.Runtime.CompilerServices;
using SlabAlloc.Frontend;
using SlabAlloc.Memory;
using SlabAlloc.Support;

namespace SlabAlloc.Pool;

/// <summary>
/// The shared slab pool's one algorithm, with its synchronization as a struct type parameter:
/// <c>SharedSlabPool&lt;NoLock&gt;</c> is the lock-free pool, <c>SharedSlabPool&lt;CoarseLock&gt;</c> the
/// mutex baseline that runs the very same stages with every operation under one lock.
/// </summary>
/// <remarks>
/// <para>Lock-free: the per-class partial and empty lists are <see cref="TaggedIndexStack"/>s of slab
/// indices, stage 2 claims slots by CAS on a superslab's free mask, stage 3 grows the directory by CAS.
/// A slab popped from a list is held exclusively by the popper (the stack hands each push to exactly
/// one pop). The stacks' links live in the directory (never unmapped), so a pop that reads the link of
/// a slab another thread has just popped and released reads valid memory, and its CAS then fails on
/// the version. See <see cref="TaggedIndexStack"/> for the ABA argument.</para>
/// <para>The shared reserve of empty one-slot slabs is one more such stack over the same link cells (a
/// slab is on at most one list at a time), so the same argument covers it. A slab popped from it has no
/// block out, so no free of a live block can reach it while the popper re-formats it for another class;
/// a stale (double) free that does is rejected by <c>SmallBlocks.FreeRemote</c>, which reads the lifecycle
/// the format writes last and validates the pointer again (unless the format lands after that second
/// validation: an undetected double free, see docs/architecture.md; checked mode catches it).</para>
/// <para>The empty-list counts are approximate (incremented before a push, decremented after a pop);
/// they bound the empty-slab hysteresis, they are not an invariant.</para>
/// </remarks>
internal sealed unsafe partial class SharedSlabPool<TGuard> : SlabPool where TGuard : struct, IPoolGuard
{
    private readonly TGuard _guard;
    private readonly TaggedIndexStack[] _partial = new TaggedIndexStack[SizeClasses.Count];
    private readonly TaggedIndexStack[] _empty = new TaggedIndexStack[SizeClasses.Count];
    private readonly int[] _emptyCount = new int[SizeClasses.Count];
    private readonly int[] _emptyLimit = EmptyLimits();
    /// <summary>Empty one-slot slabs beyond their class's limit, kept resident for any one-slot class to
    /// re-format (see <see cref="SlabOptions.SharedEmptySlabs"/>); _sharedEmptyCount approximates its size
    /// the way _emptyCount does.</summary>
    private TaggedIndexStack _sharedEmpty;
    private int _sharedEmptyCount;
    /// <summary>The fewest slabs the reserve, and each class's empty list, held since the last decay
    /// (approximate: lowered by plain writes after pops, which may race; a wrong value only changes how
    /// many slabs one decay releases).</summary>
    private int _reserveLowWater;
    private readonly int[] _emptyLowWater = new int[SizeClasses.Count];
    /// <summary><see cref="Environment.TickCount64"/> when the last decay ran; the thread whose CAS moves it
    /// on runs the next one.</summary>
    private long _lastDecayTick;
    /// <summary>The class a decay visits first (only the decaying thread reads and writes it).</summary>
    private int _decayStart;
    /// <summary>The superslab stage 2 looks at first (a hint: any value is correct).</summary>
    private int _scanHint;
    /// <summary><see cref="Environment.TickCount64"/> when the last partial sweep ran.</summary>
    private long _lastSweepTick;
    /// <summary>The class a partial sweep starts from (only the sweeping thread reads and writes it).</summary>
    private int _sweepStart;

    /// <summary>The most slabs one automatic decay releases: it runs inside some thread's free (and, in the
    /// mutex pool, under the lock), so its pause stays bounded, about 32 decommits; what is left idle goes
    /// at the next decays.</summary>
    private const int MaxReleasesPerDecay = 32;

    /// <summary>The most partial slabs one sweep takes off the lists.</summary>
    private const int MaxPartialsSweptPerDecay = 4096;

    /// <summary>The most remote-free lists one sweep walks.</summary>
    private const int MaxRemoteWalksPerSweep = 256;

    public SharedSlabPool(TGuard guard, bool isMutex) : base(isMutex) => _guard = guard;

    /// <summary>The pool's guard, for tests that hold the mutex pool's lock while another thread waits for it.</summary>
    internal TGuard Guard => _guard;

    /// <summary>Empty slabs kept per class: <see cref="SlabOptions.EmptySlabsPerClass"/> for one-slot
    /// slabs, half of it (rounded up) for the eight-slot slabs of medium classes, each of which holds
    /// 512 KiB resident.</summary>
    private static int[] EmptyLimits()
    {
        var limits = new int[SizeClasses.Count];
        for (int c = 0; c < limits.Length; c++)
            limits[c] = SizeClasses.SpanSlots(c) > 1 ? (SlabOptions.EmptySlabsPerClass + 1) / 2 : SlabOptions.EmptySlabsPerClass;
        return limits;
    }

    private struct SlabLinks : IIndexLinks
    {
        public int* LinkOf(uint globalIndex) =>
            &SuperslabDirectory.Entry(Geometry.SuperslabIndexOf(globalIndex))->SlotLinks[Geometry.SlotOf(globalIndex)];
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static SlabMeta* Own(SlabMeta* s, void* owner)
    {
        s->Owner = owner;
        SlabInvariants.OwnedBy(s, owner);
        return s;
    }

    private void PushPartial(SlabMeta* s)
    {
        s->Lifecycle = SlabLifecycle.Partial;
        SlabInvariants.Listed(s, SlabLifecycle.Partial);
        SlabInvariants.Counts(s);
        int failures = _partial[s->ClassIndex].Push(s->GlobalIndex, default(SlabLinks));
        RecordCas(CasSite.Release, failures);
    }

    /// <summary>Releases an empty slab the caller holds to its superslab, decommitting its pages now when
    /// <paramref name="decommit"/>, else leaving them resident for the next claim until a purge.</summary>
    private void ReleaseToUnused(SlabMeta* s, bool decommit)
    {
        Invariant.Holds(s->Used == 0, "a slab released to its superslab has no block out");
        SlabInvariants.Counts(s);
        Counters.Add(ref Counters.ReleasedToUnused);
        SlabLog.SlabReleasedToUnused(s->ClassIndex, s->GlobalIndex);
        int failures = Superslabs.ReleaseSlab(s, decommit);
        RecordCas(CasSite.Release, failures);
    }

    /// <summary>Counts one lock-free operation at <paramref name="site"/> and its retries, when lock statistics are on.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void RecordCas(CasSite site, int failures)
    {
        if (LockCounters.Enabled) LockCounters.RecordCas(site, failures);
    }
}
