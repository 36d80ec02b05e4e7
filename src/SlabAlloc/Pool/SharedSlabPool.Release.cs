using System.Runtime.CompilerServices;
using SlabAlloc.Memory;
using SlabAlloc.Support;

namespace SlabAlloc.Pool;

/// <summary>Release: a slab with free blocks onto its class's partial list, an empty one onto its empty
/// list, the shared reserve, or back to its superslab.</summary>
internal sealed unsafe partial class SharedSlabPool<TGuard>
{
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public override void PublishPartial(SlabMeta* s)
    {
        PoolTrafficWatch.Note();
        _guard.Enter(PoolPath.ReleaseSlab);
        try
        {
            PushPartial(s);
            MaybeDecay();
        }
        finally { _guard.Exit(); }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public override void ReleaseEmpty(SlabMeta* s)
    {
        PoolTrafficWatch.Note();
        _guard.Enter(PoolPath.ReleaseSlab);
        try
        {
            ReleaseEmptyUnguarded(s);
            MaybeDecay();
        }
        finally { _guard.Exit(); }
    }

    /// <summary>An empty slab the caller holds: onto its class's empty list while under the limit, else
    /// into the shared reserve (one-slot slabs), else released to its superslab.</summary>
    private void ReleaseEmptyUnguarded(SlabMeta* s)
    {
        int c = s->ClassIndex;
        if (Interlocked.Increment(ref _emptyCount[c]) <= _emptyLimit[c])
        {
            s->Lifecycle = SlabLifecycle.Empty;
            SlabInvariants.Listed(s, SlabLifecycle.Empty);
            SlabInvariants.Counts(s);
            SlabLog.SlabReleasedToEmptyList(c, s->GlobalIndex);
            int failures = _empty[c].Push(s->GlobalIndex, default(SlabLinks));
            RecordCas(CasSite.Release, failures);
        }
        else
        {
            Interlocked.Decrement(ref _emptyCount[c]);
            if (s->SpanSlots == 1 && Interlocked.Increment(ref _sharedEmptyCount) <= SlabOptions.SharedEmptySlabs)
            {
                s->Lifecycle = SlabLifecycle.Reserved;
                SlabInvariants.Listed(s, SlabLifecycle.Reserved);
                SlabInvariants.Counts(s);
                SlabLog.SlabReleasedToReserve(c, s->GlobalIndex);
                int failures = _sharedEmpty.Push(s->GlobalIndex, default(SlabLinks));
                RecordCas(CasSite.Release, failures);
            }
            else
            {
                if (s->SpanSlots == 1) Interlocked.Decrement(ref _sharedEmptyCount);
                // Its pages stay resident for the next claim of any class; the decay's purge gives them back
                // if none comes within an interval (at once when there is no decay).
                ReleaseToUnused(s, decommit: Volatile.Read(ref AdjustableSettings.DecayMs) == 0);
            }
        }
    }

    private static void LowerLowWater(ref int lowWater, int count)
    {
        if (count < Volatile.Read(ref lowWater)) Volatile.Write(ref lowWater, count);
    }
}
