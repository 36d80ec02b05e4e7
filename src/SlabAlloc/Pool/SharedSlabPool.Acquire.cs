using System.Runtime.CompilerServices;
using SlabAlloc.Memory;
using SlabAlloc.Support;

namespace SlabAlloc.Pool;

/// <summary>Acquisition: stage 1 pops a partial or empty slab of the class, stage 2 claims slots
/// in a mapped superslab, stage 3 maps a new superslab.</summary>
internal sealed unsafe partial class SharedSlabPool<TGuard>
{
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public override SlabMeta* Acquire(int sizeClass, void* owner)
    {
        PoolTrafficWatch.Note();
        SlabMeta* s;
        bool popped, partial;
        _guard.Enter(PoolPath.AcquireSlab);
        try { s = AcquireUnguarded(sizeClass, owner, out popped, out partial); }
        finally { _guard.Exit(); }
        // What is logged is logged here, outside the guard: a logger must not run while the mutex pool's lock is
        // held (it may wait for a thread that waits for the lock). The arena's being used up, noted at stage 3:
        SuperslabArena.ReportUsedUp();
        // A slab popped from a partial or empty list is adopted outside the guard too: the pop made it this caller's
        // alone, and the collect of its remote frees may find corruption, which is logged where it is found. It
        // counts as a stage-1 acquisition once adopted.
        if (popped)
        {
            SlabMeta.Adopt(s, owner);
            s->Lifecycle = SlabLifecycle.Owned;
            SlabInvariants.OwnedBy(s, owner);
            Counters.Add(ref Counters.Stage1);
            if (partial) Counters.Add(ref Counters.Stage1Partial);
        }
        return s;
    }

    /// <summary>The three stages; <paramref name="popped"/> when stage 1 popped a partial (<paramref name="partial"/>) or
    /// empty slab of the class, which the caller adopts and counts.</summary>
    private SlabMeta* AcquireUnguarded(int sizeClass, void* owner, out bool popped, out bool partial)
    {
        // Stage 1: a slab of this class that no thread owns, partial ones first (their memory is already
        // touched); then, for a one-slot class, an empty one-slot slab of any class from the shared reserve,
        // re-formatted: its pages are resident too, where a slot released to its superslab was decommitted.
        int span = SizeClasses.SpanSlots(sizeClass);
        int failures = 0;
        bool reserved = false;
        popped = _partial[sizeClass].TryPop(out uint g, default(SlabLinks), ref failures);
        partial = popped;
        if (!popped && (popped = _empty[sizeClass].TryPop(out g, default(SlabLinks), ref failures)))
            LowerLowWater(ref _emptyLowWater[sizeClass], Interlocked.Decrement(ref _emptyCount[sizeClass]));
        if (!popped && span == 1 && (popped = reserved = _sharedEmpty.TryPop(out g, default(SlabLinks), ref failures)))
            LowerLowWater(ref _reserveLowWater, Interlocked.Decrement(ref _sharedEmptyCount));
        RecordCas(CasSite.Stage1, failures);
        if (popped)
        {
            SlabLog.SlabAcquired(sizeClass, 1, g);
            if (!reserved) return Superslabs.SlabByIndex(g); // adopted and counted by the caller
            popped = false;
            SlabMeta* s = Own(Superslabs.Reformat(g, sizeClass), owner); // popped: held exclusively, no block out
            Counters.Add(ref Counters.Stage1);
            return s;
        }

        // Stage 2: free slots in a mapped superslab, scanning from where the last claim succeeded; slots whose
        // pages are still resident (released, not purged yet) in any superslab before others.
        int count = SuperslabDirectory.Count;
        int start = Volatile.Read(ref _scanHint);
        failures = 0;
        for (int k = 0; k < 2 * count; k++)
        {
            uint i = (uint)((start + k) % count);
            SuperslabEntry* e = SuperslabDirectory.Entry(i);
            int slot = Superslabs.TryClaim(e, span, residentOnly: k < count, ref failures);
            if (slot < 0) continue;
            RecordCas(CasSite.Stage2, failures);
            Volatile.Write(ref _scanHint, (int)i);
            Counters.Add(ref Counters.Stage2);
            SlabLog.SlabAcquired(sizeClass, 2, Geometry.GlobalIndex(i, slot));
            return Own(Superslabs.Format(e, i, slot, sizeClass), owner);
        }

        // Stage 3: a new superslab, published with our span already claimed.
        failures = 0;
        SuperslabEntry* fresh = Superslabs.MapNew(span, out uint index, out int first, ref failures);
        RecordCas(CasSite.Stage3, failures);
        if (fresh == null)
        {
            return null;
        }
        Counters.Add(ref Counters.Stage3);
        SlabLog.SlabAcquired(sizeClass, 3, Geometry.GlobalIndex(index, first));
        return Own(Superslabs.Format(fresh, index, first, sizeClass), owner);
    }
}
