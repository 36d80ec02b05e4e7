using System.Runtime.CompilerServices;
using SlabAlloc.Memory;
using SlabAlloc.Support;

namespace SlabAlloc.Pool;

/// <summary>Trim: every empty slab back to its superslab; and the counts of kept empty slabs.</summary>
internal sealed unsafe partial class SharedSlabPool<TGuard>
{
    public override int EmptySlabs(int sizeClass) => Volatile.Read(ref _emptyCount[sizeClass]);

    public override int SharedEmptySlabs => Volatile.Read(ref _sharedEmptyCount);

    public override Exception? Trim()
    {
        _guard.Enter(PoolPath.ReleaseSlab);
        try { return TrimUnguarded(); }
        finally { _guard.Exit(); }
    }

    private Exception? TrimUnguarded()
    {
        Exception? corruption = null;
        ReleaseFromList(ref _sharedEmpty, ref _sharedEmptyCount, int.MaxValue);
        Volatile.Write(ref _reserveLowWater, 0);
        Array.Clear(_emptyLowWater);
        for (int c = 0; c < SizeClasses.Count; c++)
        {
            // Empty slabs: release them all.
            ReleaseFromList(ref _empty[c], ref _emptyCount[c], int.MaxValue);

            // Partial slabs: release those that became empty, put the rest back.
            var unbounded = new SweepBudget(int.MaxValue, int.MaxValue, int.MaxValue);
            SweepPartials(c, ref unbounded, toUnused: true, ref corruption);
        }
        Superslabs.RetireEmpty(0);
        Superslabs.PurgeResident(all: true, int.MaxValue);
        SlabLog.PoolTrimmed(Superslabs.MappedCount, Superslabs.RetiredCount, Counters.ReleasedToUnused);
        return corruption;
    }
}
