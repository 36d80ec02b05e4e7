using System.Runtime.CompilerServices;
using SlabAlloc.Memory;
using SlabAlloc.Support;

namespace SlabAlloc.Pool;

/// <summary>Decay: once an interval, the empty slabs no acquisition needed are given back to the
/// system.</summary>
internal sealed unsafe partial class SharedSlabPool<TGuard>
{
    /// <summary>Once per <see cref="AdjustableSettings.DecayMs"/> (less <paramref name="slack"/>), on a release or a
    /// tick of the periodic upkeep: decays the empty lists and the reserve. True if this call decayed.</summary>
    private bool MaybeDecay(int slack = 0)
    {
        int interval = Volatile.Read(ref AdjustableSettings.DecayMs);
        if (interval == 0 || !TryClaimInterval(ref _lastDecayTick, Environment.TickCount64, interval - slack)) return false;
        DecayUnguarded(MaxReleasesPerDecay);
        return true;
    }

    /// <summary>True for the one caller that ends the interval <paramref name="mark"/> started: at least
    /// <paramref name="dueAfter"/> ms have passed, and its CAS moved the mark from the reading it checked to
    /// <paramref name="now"/>; the others go on. The race is between callers that all found the interval
    /// passed (releases, and the upkeep's tick). The mark holds clock readings, which do not come back (an
    /// explicit Decay may write a slightly older one: at worst an early decay), so a CAS that succeeds on
    /// a stale reading cannot happen twice for one interval: there is no ABA on a clock.</summary>
    private static bool TryClaimInterval(ref long mark, long now, long dueAfter)
    {
        long last = Volatile.Read(ref mark);
        return now - last >= dueAfter && Interlocked.CompareExchange(ref mark, now, last) == last;
    }

    public override void DecayIfDue()
    {
        int interval = Volatile.Read(ref AdjustableSettings.DecayMs);
        if (interval == 0) return;
        // A timer's ticks jitter around the interval: one that comes a little early must not skip a whole
        // one, so the periodic upkeep counts an interval as passed an eighth early.
        int slack = interval / 8;
        long now = Environment.TickCount64;
        bool sweepDue = now - Volatile.Read(ref _lastSweepTick) >= interval - slack;
        if (!sweepDue && now - Volatile.Read(ref _lastDecayTick) < interval - slack) return; // without the lock
        _guard.Enter(PoolPath.ReleaseSlab);
        try
        {
            MaybeDecay(slack);
            if (sweepDue) SweepAllPartials(now, interval - slack);
        }
        finally { _guard.Exit(); }
    }

    public override int Decay()
    {
        _guard.Enter(PoolPath.ReleaseSlab);
        try
        {
            // A decay now starts a new interval: the next automatic one waits a whole interval from here.
            Volatile.Write(ref _lastDecayTick, Environment.TickCount64);
            return DecayUnguarded(int.MaxValue);
        }
        finally { _guard.Exit(); }
    }

    private int DecayUnguarded(int budget)
    {
        int released = DecayList(ref _sharedEmpty, ref _sharedEmptyCount, ref _reserveLowWater, ref budget);
        // The classes in turn from a rotating start, so a budget cut short never favours the same ones.
        int first = _decayStart;
        _decayStart = (first + 1) % SizeClasses.Count;
        for (int k = 0; k < SizeClasses.Count; k++)
        {
            int c = (first + k) % SizeClasses.Count;
            released += DecayList(ref _empty[c], ref _emptyCount[c], ref _emptyLowWater[c], ref budget);
        }
        // Slots released with their pages resident that no claim took for a whole interval.
        return released + Superslabs.PurgeResident(all: false, budget);
    }

    /// <summary>Releases (decommits) as many slabs of one list as it never dipped below since the last decay
    /// (the number of slabs no acquisition needed for a whole interval; which ones does not matter, every
    /// slab of the list is resident and empty), at most <paramref name="budget"/>. Then starts the next
    /// interval's low-water mark at what is left. Each slab is popped before it is released, so a decay
    /// never touches a slab another thread holds.</summary>
    private int DecayList(ref TaggedIndexStack list, ref int count, ref int lowWater, ref int budget)
    {
        int released = ReleaseFromList(ref list, ref count, Math.Min(Volatile.Read(ref lowWater), budget));
        budget -= released;
        Volatile.Write(ref lowWater, Volatile.Read(ref count));
        return released;
    }

    /// <summary>Pops up to <paramref name="most"/> empty slabs off a list (each held exclusively once popped)
    /// and releases them to their superslabs; returns how many.</summary>
    private int ReleaseFromList(ref TaggedIndexStack list, ref int count, int most)
    {
        int released = 0;
        while (released < most && list.TryPop(out uint g, default(SlabLinks)))
        {
            Interlocked.Decrement(ref count);
            ReleaseToUnused(Superslabs.SlabByIndex(g), decommit: true);
            released++;
        }
        return released;
    }
}
