using System.Runtime.CompilerServices;
using SlabAlloc.Core;
using SlabAlloc.Diagnostics;

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
/// a stale (double) free that does is rejected by <c>ThreadCache.FreeRemote</c>, which reads the lifecycle
/// the format writes last and validates the pointer again (unless the format lands after that second
/// validation: an undetected double free, see docs/architecture.md; checked mode catches it).</para>
/// <para>The empty-list counts are approximate (incremented before a push, decremented after a pop);
/// they bound the empty-slab hysteresis, they are not an invariant.</para>
/// </remarks>
internal sealed unsafe class SharedSlabPool<TGuard> : SlabPool where TGuard : struct, IPoolGuard
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
    private int _scanHint;

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

    public SharedSlabPool(TGuard guard, SlabPoolKind kind) : base(kind) => _guard = guard;

    /// <summary>The pool's guard, for tests that hold the mutex pool's lock while another thread waits for it.</summary>
    internal TGuard Guard => _guard;

    private struct SlabLinks : IIndexLinks
    {
        public int* LinkOf(uint globalIndex) =>
            &SuperslabDirectory.Entry(globalIndex / Geometry.SlotsPerSuperslab)->SlotLinks[(int)(globalIndex % Geometry.SlotsPerSuperslab)];
    }

    public override SlabMeta* Acquire(int sizeClass, void* owner)
    {
        PoolTrafficWatch.Note();
        _guard.Enter(PoolPath.AcquireSlab);
        try { return AcquireUnguarded(sizeClass, owner); }
        finally { _guard.Exit(); }
    }

    private SlabMeta* AcquireUnguarded(int sizeClass, void* owner)
    {
        // Stage 1: a slab of this class that no thread owns, partial ones first (their memory is already
        // touched); then, for a one-slot class, an empty one-slot slab of any class from the shared reserve,
        // re-formatted: its pages are resident too, where a slot released to its superslab was decommitted.
        int span = SizeClasses.SpanSlots(sizeClass);
        int failures = 0;
        bool reserved = false;
        bool popped = _partial[sizeClass].TryPop(out uint g, default(SlabLinks), ref failures);
        if (!popped && (popped = _empty[sizeClass].TryPop(out g, default(SlabLinks), ref failures)))
            LowerLowWater(ref _emptyLowWater[sizeClass], Interlocked.Decrement(ref _emptyCount[sizeClass]));
        if (!popped && span == 1 && (popped = reserved = _sharedEmpty.TryPop(out g, default(SlabLinks), ref failures)))
            LowerLowWater(ref _reserveLowWater, Interlocked.Decrement(ref _sharedEmptyCount));
        if (LockStatistics.Enabled) LockStatistics.RecordCas(CasSite.Stage1, failures);
        if (popped)
        {
            SlabMeta* s;
            if (reserved) s = Own(Superslabs.Reformat(g, sizeClass), owner); // popped: held exclusively, no block out
            else
            {
                s = Superslabs.SlabByIndex(g);
                SlabMeta.Adopt(s, owner);
                s->Lifecycle = SlabLifecycle.Owned;
            }
            Counters.Add(ref Counters.Stage1);
            SlabLog.SlabAcquired(sizeClass, 1, g);
            return s;
        }

        // Stage 2: free slots in a mapped superslab, scanning from where the last claim succeeded.
        int count = SuperslabDirectory.Count;
        int start = Volatile.Read(ref _scanHint);
        failures = 0;
        for (int k = 0; k < count; k++)
        {
            uint i = (uint)((start + k) % count);
            SuperslabEntry* e = SuperslabDirectory.Entry(i);
            int slot = Superslabs.TryClaim(e, span, ref failures);
            if (slot < 0) continue;
            if (LockStatistics.Enabled) LockStatistics.RecordCas(CasSite.Stage2, failures);
            Volatile.Write(ref _scanHint, (int)i);
            Counters.Add(ref Counters.Stage2);
            SlabLog.SlabAcquired(sizeClass, 2, i * Geometry.SlotsPerSuperslab + (uint)slot);
            return Own(Superslabs.Format(e, i, slot, sizeClass), owner);
        }

        // Stage 3: a new superslab, published with our span already claimed.
        failures = 0;
        SuperslabEntry* fresh = Superslabs.MapNew(span, out uint index, out int first, ref failures);
        if (LockStatistics.Enabled) LockStatistics.RecordCas(CasSite.Stage3, failures);
        if (fresh == null)
        {
            return null;
        }
        Counters.Add(ref Counters.Stage3);
        SlabLog.SlabAcquired(sizeClass, 3, index * Geometry.SlotsPerSuperslab + (uint)first);
        return Own(Superslabs.Format(fresh, index, first, sizeClass), owner);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static SlabMeta* Own(SlabMeta* s, void* owner)
    {
        s->Owner = owner;
        return s;
    }

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
            SlabLog.SlabReleasedToEmptyList(c, s->GlobalIndex);
            int failures = _empty[c].Push(s->GlobalIndex, default(SlabLinks));
            if (LockStatistics.Enabled) LockStatistics.RecordCas(CasSite.Release, failures);
        }
        else
        {
            Interlocked.Decrement(ref _emptyCount[c]);
            if (s->SpanSlots == 1 && Interlocked.Increment(ref _sharedEmptyCount) <= SlabOptions.SharedEmptySlabs)
            {
                s->Lifecycle = SlabLifecycle.Reserved;
                SlabLog.SlabReleasedToReserve(c, s->GlobalIndex);
                int failures = _sharedEmpty.Push(s->GlobalIndex, default(SlabLinks));
                if (LockStatistics.Enabled) LockStatistics.RecordCas(CasSite.Release, failures);
            }
            else
            {
                if (s->SpanSlots == 1) Interlocked.Decrement(ref _sharedEmptyCount);
                ReleaseToUnused(s);
            }
        }
    }

    private static void LowerLowWater(ref int lowWater, int count)
    {
        if (count < Volatile.Read(ref lowWater)) Volatile.Write(ref lowWater, count);
    }

    /// <summary>The most slabs one automatic decay releases: it runs inside some thread's free (and, in the
    /// mutex pool, under the lock), so its pause stays bounded, about 32 decommits; what is left idle goes
    /// at the next decays.</summary>
    private const int MaxReleasesPerDecay = 32;

    /// <summary>Once per <see cref="SlabPool.DecayMs"/> (less <paramref name="slack"/>), on a release or a
    /// tick of the periodic upkeep: decays the empty lists and the reserve. True if this call decayed.</summary>
    private bool MaybeDecay(int slack = 0)
    {
        int interval = Volatile.Read(ref DecayMs);
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
        int interval = Volatile.Read(ref DecayMs);
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

    /// <summary>Partial slabs that every block left while they waited (freed remotely after the slab was
    /// published) are empty slabs in the wrong list: hands them on like any empty slab, so the decays can
    /// release them. Once per interval, by the caller that claims it (<see cref="TryClaimInterval"/> on
    /// <see cref="_lastSweepTick"/>; the release path's own decay does not sweep, so that traffic cannot
    /// keep the sweep from running).
    /// Bounded: at most <see cref="MaxPartialsSweptPerDecay"/> slabs taken off the lists, of which at most
    /// <see cref="MaxRemoteWalksPerSweep"/> with remote frees to collect (the walk is the cost; a slab
    /// without any cannot have become empty and goes straight back) and at most
    /// <see cref="MaxReleasesPerDecay"/> handed on, from a rotating class.</summary>
    private void SweepAllPartials(long now, long dueAfter)
    {
        // Checked again here: another caller may have swept since this one looked, without the lock.
        if (!TryClaimInterval(ref _lastSweepTick, now, dueAfter)) return;
        Counters.Add(ref Counters.PartialSweeps);
        Exception? corruption = null; // logged where found; the slab is left out of every list
        var budget = new SweepBudget(MaxPartialsSweptPerDecay, MaxRemoteWalksPerSweep, MaxReleasesPerDecay);
        for (int k = 0; k < SizeClasses.Count && !budget.Spent; k++)
            SweepPartials((_sweepStart + k) % SizeClasses.Count, ref budget, toUnused: false, ref corruption);
        _sweepStart = (_sweepStart + 1) % SizeClasses.Count;
        if (budget.Spent) Counters.Add(ref Counters.SweepsCutShort); // more may be waiting: the next sweep goes on
    }

    /// <summary>The most partial slabs one sweep takes off the lists.</summary>
    private const int MaxPartialsSweptPerDecay = 4096;

    /// <summary>The most remote-free lists one sweep walks.</summary>
    private const int MaxRemoteWalksPerSweep = 256;

    /// <summary><see cref="Environment.TickCount64"/> when the last partial sweep ran.</summary>
    private long _lastSweepTick;

    /// <summary>The class a partial sweep starts from (only the sweeping thread reads and writes it).</summary>
    private int _sweepStart;

    /// <summary>What a sweep may still do: slabs to take off a list, remote lists to walk, slabs to hand on.</summary>
    private struct SweepBudget(int pops, int walks, int emptied)
    {
        public int Pops = pops, Walks = walks, Emptied = emptied;
        public readonly bool Spent => Pops <= 0 || Walks <= 0 || Emptied <= 0;
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
        return released;
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
            ReleaseToUnused(Superslabs.SlabByIndex(g));
            released++;
        }
        return released;
    }

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
        SlabLog.PoolTrimmed(Superslabs.MappedCount, Superslabs.RetiredCount, Counters.ReleasedToUnused);
        return corruption;
    }

    /// <summary>Takes slabs off class <paramref name="c"/>'s partial list while <paramref name="budget"/>
    /// allows, collects their remote frees, and puts back those that still have a block out. Those that
    /// became empty (every block freed remotely after the slab was published) are released to their
    /// superslab when <paramref name="toUnused"/> (a trim), else handed on like any empty slab (the empty
    /// list, the reserve, or their superslab). A slab whose remote-free list is corrupt (a cycle: a block
    /// freed twice; logged where found) is left out of every list. Only a slab with remote frees waiting
    /// can have become empty (<see cref="SlabMeta.Used"/> falls only when they are collected); the others
    /// go straight back.</summary>
    private void SweepPartials(int c, ref SweepBudget budget, bool toUnused, ref Exception? corruption)
    {
        uint keptHead = uint.MaxValue;
        while (!budget.Spent && _partial[c].TryPop(out uint g, default(SlabLinks)))
        {
            budget.Pops--;
            SlabMeta* s = Superslabs.SlabByIndex(g);
            if (Volatile.Read(ref s->ThreadFree) != SlabMeta.StateQueued)
            {
                budget.Walks--;
                try
                {
                    SlabMeta.CollectRemote(s, SlabMeta.StateQueued);
                }
                catch (InvalidOperationException e)
                {
                    corruption ??= e;
                    s->Lifecycle = SlabLifecycle.Full;
                    continue;
                }
                if (s->Used == 0)
                {
                    budget.Emptied--;
                    Counters.Add(ref Counters.PartialsEmptied);
                    if (toUnused) ReleaseToUnused(s);
                    else ReleaseEmptyUnguarded(s);
                    continue;
                }
            }
            // Keep it aside on a private chain through the same link cells, pushed back below.
            *default(SlabLinks).LinkOf(g) = (int)(keptHead + 1);
            keptHead = g;
        }
        while (keptHead != uint.MaxValue)
        {
            uint next = (uint)(*default(SlabLinks).LinkOf(keptHead)) - 1;
            PushPartial(Superslabs.SlabByIndex(keptHead));
            keptHead = next;
        }
    }

    private void PushPartial(SlabMeta* s)
    {
        s->Lifecycle = SlabLifecycle.Partial;
        int failures = _partial[s->ClassIndex].Push(s->GlobalIndex, default(SlabLinks));
        if (LockStatistics.Enabled) LockStatistics.RecordCas(CasSite.Release, failures);
    }

    private void ReleaseToUnused(SlabMeta* s)
    {
        Counters.Add(ref Counters.ReleasedToUnused);
        SlabLog.SlabReleasedToUnused(s->ClassIndex, s->GlobalIndex);
        int failures = Superslabs.ReleaseSlab(s);
        if (LockStatistics.Enabled) LockStatistics.RecordCas(CasSite.Release, failures);
    }
}
