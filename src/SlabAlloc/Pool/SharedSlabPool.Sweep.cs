using System.Runtime.CompilerServices;
using SlabAlloc.Memory;

namespace SlabAlloc.Pool;

/// <summary>Sweep: partial slabs that every block left while they waited are found and handed on
/// as empty slabs.</summary>
internal sealed unsafe partial class SharedSlabPool<TGuard>
{
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

    /// <summary>What a sweep may still do: slabs to take off a list, remote lists to walk, slabs to hand on.</summary>
    private struct SweepBudget(int pops, int walks, int emptied)
    {
        public int Pops = pops, Walks = walks, Emptied = emptied;
        public readonly bool Spent => Pops <= 0 || Walks <= 0 || Emptied <= 0;
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
                    if (toUnused) ReleaseToUnused(s, decommit: true);
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
}
