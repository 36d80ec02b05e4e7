using System.Runtime.CompilerServices;
using SlabAlloc.Memory;
using SlabAlloc.Support;

namespace SlabAlloc.Frontend;

/// <summary>Taking back, from a live thread, the retained slabs whose every block other threads have freed.</summary>
/// <remarks>
/// <para><b>Why.</b> A thread that allocates many blocks and hands them to others, then stops allocating
/// (a main thread that builds a structure and waits, a producer that has finished), keeps owning the slabs
/// those blocks came from. The other threads' frees wait on the slabs' remote-free lists, which only the owner
/// collects, at its cache misses; an owner that no longer allocates never does, and the slabs stay out of
/// everyone's reach for as long as the thread lives. Another thread takes them back instead: it lets them go
/// to the pool, where any thread's next miss finds them.</para>
/// <para><b>Which slabs.</b> Only slabs on the owner's retained lists (never a current slab), of the classes
/// without a free cache (no cached block can point into them), in classes the owner does not keep
/// (<c>ReserveThreadCache</c>), and only when every block the slab counts as out is on its remote-free list
/// (<see cref="IsFreedByOthers"/>). Such a slab has no live block: nobody can legitimately free into it, so the
/// owner's fast paths, which touch only its current slabs and the slabs of blocks it frees, never touch it.
/// What the owner does touch is the retained lists themselves, in its slow paths.</para>
/// <para><b>The handshake.</b> The owner's slow paths that read or change its retained lists run inside
/// <see cref="EnterRetained"/>/<see cref="ExitRetained"/>: a plain store of <see cref="ThreadCache.RetainedBusy"/>,
/// then a read of <see cref="ThreadCache.RetainedClaimedBy"/>. The taker stores its claim (it already holds the
/// cache, below), runs <see cref="Interlocked.MemoryBarrierProcessWide"/>, and only then reads the busy flag. The process-wide
/// barrier orders the owner's store before its load as a fence would, so either the taker sees the owner busy
/// (and waits for it to leave, or gives up), or the owner sees the claim (and waits until it is released). The
/// same asymmetric handshake guards the remote-free batch (<see cref="EnterRemoteBatch"/>); the owner's fast
/// paths pay nothing for it.</para>
/// <para><b>An owner's free that races with a take.</b> The owner may free the last live block of a retained
/// slab, and the taker may then find the slab freed by others (the owner's own free sits on its local list)
/// and take it before the owner's free path reaches <see cref="FreeToRetained"/>. So that path checks, inside the
/// handshake, that the slab is still the owner's: a taken slab's owner is cleared before it is let go, and the
/// owner, busy freeing, cannot have acquired it again meanwhile. The owner's free reads the slab's class before
/// it publishes the free, so its counts never read a slab formatted again for another class.</para>
/// <para><b>Exclusion among takers and reclaims.</b> A taker works on a thread's cache only while it holds the
/// record's <see cref="ThreadCacheRecord.TakenBy"/> (compare-exchange from 0) and, after taking it, still finds
/// the record Live in the generation it read; a reclaim that wins the record from Live waits until no taker
/// holds it (<see cref="ThreadCacheRecords"/>). The record stays Live meanwhile, so the statistics and
/// <c>Trim</c> still see the thread.</para>
/// </remarks>
internal static unsafe partial class SmallBlocks
{
    /// <summary>Slabs taken back from live threads since start-up.</summary>
    private static long s_takenBack;

    /// <summary>Slabs taken back from live threads since start-up (see the class's remarks).</summary>
    public static long SlabsTakenBack => Volatile.Read(ref s_takenBack);

    /// <summary>How long a taker waits for an owner to leave its retained lists before it gives up on that
    /// thread for now (the owner's work there is a few list operations, unless it is descheduled).</summary>
    private const int TakeBackWaitSpins = 200;

    /// <summary>The longest run of looks a taker skips after fruitless ones (see <see cref="ThreadCache.TakeBackBackoff"/>).</summary>
    private const int MaxTakeBackBackoff = 63;

    /// <summary>The least time between two takes started by cache misses, in milliseconds.</summary>
    private const int TakeBackIntervalMs = 5;

    /// <summary>When the next take may start from a cache miss (<see cref="Environment.TickCount64"/>).</summary>
    private static long s_nextTakeBackMs;

    /// <summary>Whether an idle thread's cache is worth a look now: not in a run of skipped looks, and some class
    /// without a free cache, not reserved, has a retained slab and a remote free waiting that its owner has not
    /// looked for (<see cref="ThreadCache.RemoteFreesWaiting"/>, set by the first remote free into one of its
    /// slabs). Moment-old reads: a hint, which keeps takers off the caches of threads that free their own blocks.</summary>
    public static bool MayTakeBack(ThreadCache* h)
    {
        if (h->TakeBackSkip > 0)
        {
            h->TakeBackSkip--;
            return false;
        }
        for (int c = 0; c < FirstCachedClass; c++)
        {
            if (h->KeepEmpty[c] != 0 || Volatile.Read(ref h->RemoteFreesWaiting[c]) == 0) continue;
            if (Volatile.Read(ref h->RetainedFull[c]) != 0 || Volatile.Read(ref h->RetainedAvailable[c]) != 0) return true;
        }
        return false;
    }

    /// <summary>Records what a look at <paramref name="h"/> took: a fruitless look doubles the looks skipped
    /// before the next one; a look that took a slab ends the skipping.</summary>
    public static void NoteTakeBack(ThreadCache* h, int taken)
    {
        h->TakeBackBackoff = taken > 0 ? 0 : Math.Min(2 * h->TakeBackBackoff + 1, MaxTakeBackBackoff);
        h->TakeBackSkip = h->TakeBackBackoff;
    }

    /// <summary>A cache miss had to take a slab the pool formatted afresh (the footprint grows): first, at most
    /// once per <see cref="TakeBackIntervalMs"/>, take back from idle threads the slabs others' frees emptied,
    /// so that the misses that follow find them in the pool.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void TakeBackBeforeGrowing()
    {
        long now = Environment.TickCount64;
        long next = Volatile.Read(ref s_nextTakeBackMs);
        // Loses to another miss starting the same take: that one does it. No ABA: the time only grows, so a
        // value read before another miss moved it never matches again.
        if (now < next || Interlocked.CompareExchange(ref s_nextTakeBackMs, now + TakeBackIntervalMs, next) != next) return;
        ThreadCacheRecords.TakeBackFreedSlabs(idleOnly: true);
    }

    /// <summary>The owner enters its retained lists: marks itself busy, and waits while a taker holds them.
    /// Nests: <see cref="ThreadCache.RetainedBusy"/> counts the entries, and only the outermost waits.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void EnterRetained(ThreadCache* h)
    {
        int depth = h->RetainedBusy;
        Volatile.Write(ref h->RetainedBusy, depth + 1);
        if (depth == 0 && Volatile.Read(ref h->RetainedClaimedBy) != 0) AwaitRetainedClaim(h);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void AwaitRetainedClaim(ThreadCache* h)
    {
        do
        {
            // Out while waiting, so that the taker, which waits for the owner to be out, can go on.
            Volatile.Write(ref h->RetainedBusy, 0);
            while (Volatile.Read(ref h->RetainedClaimedBy) != 0)
            {
                Thread.SpinWait(20);
                Thread.Yield();
            }
            Volatile.Write(ref h->RetainedBusy, 1);
        }
        while (Volatile.Read(ref h->RetainedClaimedBy) != 0);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void ExitRetained(ThreadCache* h) => Volatile.Write(ref h->RetainedBusy, h->RetainedBusy - 1);

    /// <summary>Unlinks from <paramref name="h"/>, whose record the caller holds (its thread live, or ended and not
    /// reclaimed yet; see <see cref="ThreadCacheRecord.TakenBy"/>), every retained slab that other threads' frees
    /// emptied, clears its owner, and chains it through <see cref="SlabMeta.NextOwned"/> for
    /// <see cref="LetGoTakenSlabs"/>, which the caller runs once it has let go of the cache. Returns the chain (null
    /// for none); <paramref name="gaveUp"/> when the owner stayed in its retained lists too long to wait for.</summary>
    /// <remarks>Throws nothing and logs nothing while it holds the owner's lists: a logger that called back into
    /// the allocator could wait for this very cache. An unlinked slab with no owner is out of everyone's reach
    /// (in no list, no thread's current slab, and no live block) until it is let go.</remarks>
    /// <param name="h">The cache to take from.</param>
    /// <param name="walkBudget">About the most remote-free links to follow in all (a take from an idle thread is
    /// bounded, so that the owner, should it wake, waits little; <c>Trim</c> takes everything).</param>
    /// <param name="gaveUp">Set when the owner did not leave its retained lists in time.</param>
    public static SlabMeta* UnlinkFreedSlabs(ThreadCache* h, int walkBudget, out bool gaveUp)
    {
        gaveUp = false;
        if (SlabOptions.ThreadCacheLimit != 0) return null; // the pool-stress setting: the pool serves the work
        // Takers of one cache are one at a time (the record), so the value only tells a waiting owner to wait.
        Volatile.Write(ref h->RetainedClaimedBy, Environment.CurrentManagedThreadId);
        try
        {
            Interlocked.MemoryBarrierProcessWide();
            for (int spins = 0; Volatile.Read(ref h->RetainedBusy) != 0; spins++)
            {
                if (spins == TakeBackWaitSpins)
                {
                    gaveUp = true;
                    return null;
                }
                Thread.SpinWait(20);
                Thread.Yield();
            }
            SlabMeta* chain = null;
            for (int c = 0; c < FirstCachedClass && walkBudget > 0; c++)
            {
                if (h->KeepEmpty[c] != 0) continue;
                UnlinkFreedFrom(ref h->RetainedFull[c], ref chain, ref walkBudget);
                UnlinkFreedFrom(ref h->RetainedAvailable[c], ref chain, ref walkBudget);
            }
            return chain;
        }
        finally
        {
            Volatile.Write(ref h->RetainedClaimedBy, 0);
        }
    }

    /// <summary>Moves the slabs of one retained list that other threads' frees emptied onto <paramref name="chain"/>.</summary>
    private static void UnlinkFreedFrom(ref nint head, ref SlabMeta* chain, ref int walkBudget)
    {
        var s = (SlabMeta*)head;
        if (s == null) return;
        int count = 0;
        do { count++; s = s->NextOwned; } while (s != (SlabMeta*)head);
        // Each slab of the ring once: the next one is read before the current one may be unlinked.
        for (int i = 0; i < count && walkBudget > 0; i++)
        {
            SlabMeta* next = s->NextOwned;
            if (IsFreedByOthers(s, ref walkBudget))
            {
                OwnedSlabList.Remove(ref head, s);
                // Cleared before the owner can look again: its free path's check (FreeToRetained) then leaves it.
                Volatile.Write(ref *(nint*)&s->Owner, 0);
                s->NextOwned = chain;
                chain = s;
            }
            s = next;
        }
    }

    /// <summary>Lets go of the slabs <see cref="UnlinkFreedSlabs"/> unlinked, each back to the pool with the frees
    /// on its list collected; returns how many. Corruption met is reported where it is found, the slab it was
    /// found in is left out of use, and the others are still let go.</summary>
    public static int LetGoTakenSlabs(SlabMeta* chain)
    {
        int taken = 0;
        while (chain != null)
        {
            SlabMeta* s = chain;
            chain = s->NextOwned;
            s->NextOwned = null;
            try
            {
                SlabMeta.LetGoResult result = SlabMeta.LetGo(s);
                Invariant.Holds(result == SlabMeta.LetGoResult.Empty, "a slab taken back from a live thread has no block out");
                HandOver(s, result);
                taken++;
            }
            catch (InvalidOperationException)
            {
                // Reported (logged) where it was thrown; nothing more to do for this slab.
            }
        }
        if (taken > 0) Interlocked.Add(ref s_takenBack, taken);
        return taken;
    }

    /// <summary>True if every block <paramref name="s"/> counts as out waits on its remote-free list: no block
    /// of it is live. Read by a taker while the owner is held out of its retained lists.</summary>
    /// <remarks>The list is walked without taking it: only the owner takes it, in the slow paths it is held out
    /// of, and other threads' pushes only add in front, so every block reached stays on the list. A block held
    /// in a thread's remote-free batch counts as out and is not on the list, so its slab is not taken. The walk
    /// stops at one block more than the count, and at a link that leaves the superslab (a damaged list, which
    /// the owner's own collection reports), and then says no.</remarks>
    private static bool IsFreedByOthers(SlabMeta* s, ref int walkBudget)
    {
        // Acquire, paired with the owner's release store of Used in its free: the owner's links are seen.
        int used = Volatile.Read(ref s->Used);
        nint word = Volatile.Read(ref s->ThreadFree);
        // Nothing pushed and nothing collected since a look that said no: still no, without walking again. (A
        // word that came back to the same value after a collect costs one missed take, never a wrong one.)
        if (word == s->LookedAtThreadFree && used == s->LookedAtUsed) return false;
        var block = (byte*)(word & ~SlabMeta.StateMask);
        int found = 0;
        while (block != null && found <= used)
        {
            found++;
            walkBudget--;
            if (!SlabMeta.TryNextOf(s, block, out void* next)) return false;
            block = (byte*)next;
        }
        if (found == used) return true;
        s->LookedAtThreadFree = word;
        s->LookedAtUsed = used;
        return false;
    }
}
