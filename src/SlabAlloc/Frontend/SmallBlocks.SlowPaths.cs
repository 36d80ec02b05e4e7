using System.Diagnostics.CodeAnalysis;
using System.Numerics;
using System.Runtime.CompilerServices;
using SlabAlloc.Memory;
using SlabAlloc.Platform;
using SlabAlloc.Pool;
using SlabAlloc.Support;

namespace SlabAlloc.Frontend;

/// <summary>The slow paths: a miss (retained slabs, then the pool), a free the stack map could not
/// vouch for, a remote free, and letting a slab go.</summary>
internal static unsafe partial class SmallBlocks
{
    /// <summary>A free the stack map could not vouch for: the owner's, if the thread-static says the
    /// caller owns the slab (a thread not in the map), else a remote free.</summary>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static void FreeNotVouched(SlabMeta* s, void* block, int index)
    {
        ThreadCache* h = HeapFromThreadStatic;
        if (s->Owner == h) FreeByOwner(h, s, block);
        else FreeRemote(h, s, block, index);
    }

    /// <summary>The owner freed into a slab it retains but does not allocate from: a full slab now has
    /// a free block, and a slab with no block out goes back to the pool. Nothing, if another thread took the
    /// slab back meanwhile (SmallBlocks.TakeBack).</summary>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static void FreeToRetained(ThreadCache* h, SlabMeta* s)
    {
        bool letGo = false;
        EnterRetained(h);
        try
        {
            // Still ours: a slab taken back had its owner cleared before it left the list, and this thread, busy
            // freeing, has not acquired it again since.
            if ((ThreadCache*)Volatile.Read(ref *(nint*)&s->Owner) == h)
            {
                int c = s->ClassIndex;
                if (s->Used == 0 && h->KeepEmpty[c] == 0)
                {
                    OwnedSlabList.Remove(ref s->OwnerList == SlabMeta.RetainedFull ? ref h->RetainedFull[c] : ref h->RetainedAvailable[c], s);
                    letGo = true;
                }
                else if (s->OwnerList == SlabMeta.RetainedFull) MoveToAvailable(h, s);
            }
        }
        finally
        {
            ExitRetained(h);
        }
        if (letGo) LetGo(s);
    }

    /// <summary>Moves an exhausted slab <paramref name="h"/> retains, which has a free block now, to its
    /// retained slabs with free blocks.</summary>
    private static void MoveToAvailable(ThreadCache* h, SlabMeta* s)
    {
        int c = s->ClassIndex;
        OwnedSlabList.Remove(ref h->RetainedFull[c], s);
        OwnedSlabList.Add(ref h->RetainedAvailable[c], s, SlabMeta.RetainedAvailable);
    }

    /// <summary>The current slab's free list is empty: a block the slab never handed out, else a miss.</summary>
    /// <remarks>A slab hands out its never-used blocks one at a time, here, rather than threading a batch
    /// of them onto its free list: so every block below <see cref="SlabMeta.Carved"/> was handed out, and a
    /// free of one that never was is rejected (<see cref="SlabMeta.BlockIndexOf"/>). Frees waiting to be
    /// taken back come first, so memory already touched is reused before fresh memory is.</remarks>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static void* AllocateSlow(ThreadCache* h, int sizeClass, nuint requested)
    {
        // h is the caller's heap (vouched for by the stack map, or from the thread-static), or the shared
        // empty heap before the thread's first miss (whose placeholder slab has nothing fresh).
        SlabMeta* s = ThreadCache.CurrentSlab(h, sizeClass);
        if (SlabOptions.ThreadCacheLimit == 0 && s->SetAside == null && SlabMeta.HasFresh(s) && !SlabMeta.HasRemoteFrees(s))
            return HandOut(h, s, sizeClass, requested, SlabMeta.TakeFresh(s));
        return AllocateAfterMiss(h, sizeClass, requested);
    }

    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static void* AllocateAfterMiss(ThreadCache* h, int sizeClass, nuint requested)
    {
        if (h == s_emptyHeap) h = EnsureHeap();
        FlushOwnRemoteBatches(h); // held frees may be the very blocks this miss is looking for
        h->CacheMisses++;
        // Not in the stack map yet (its latch was still held): try again now and then.
        if (h->StackBytes == 0 && (h->CacheMisses & 63) == 0 && h->StackRegistrationFailures < MaxStackRegistrationFailures) RegisterStack(h);
        if (SlabOptions.ThreadCacheLimit != 0) return AllocateThroughPool(h, sizeClass, requested);
        var s = (SlabMeta*)h->Current[sizeClass];
        if (s != s_emptySlab)
        {
            // Nothing fresh is left here, or there were frees to take back first.
            if (Refill(s) || SlabMeta.HasFresh(s)) return AllocateFromCurrent(h, sizeClass, requested);
        }
        EnterRetained(h);
        try
        {
            // Exhausted: keep owning it (the owner's frees into it stay atomic-free) and look elsewhere.
            if (s != s_emptySlab) OwnedSlabList.Add(ref h->RetainedFull[sizeClass], s, SlabMeta.RetainedFull);
            h->Current[sizeClass] = (nint)s_emptySlab;
            s = TakeRetained(h, sizeClass);
        }
        finally
        {
            ExitRetained(h);
        }
        MakeCurrent(h, sizeClass, s != null ? s : AcquireFromPool(h, sizeClass, requested));
        return AllocateFromCurrent(h, sizeClass, requested);
    }

    /// <summary>A block of the current slab, which has one: from its free list, else never handed out.</summary>
    private static void* AllocateFromCurrent(ThreadCache* h, int sizeClass, nuint requested)
    {
        SlabMeta* s = ThreadCache.CurrentSlab(h, sizeClass);
        void* block = s->Free;
        if (block != null) s->Free = SlabMeta.NextOf(s, block);
        else block = SlabMeta.TakeFresh(s);
        return HandOut(h, s, sizeClass, requested, block);
    }

    /// <summary>A slab of the class from the shared pool; throws when the system has no memory.</summary>
    private static SlabMeta* AcquireFromPool(ThreadCache* h, int sizeClass, nuint requested)
    {
        SlabMeta* s = SlabPool.Shared.Acquire(sizeClass, h);
        if (s == null) ThrowHelper.ThrowOutOfMemory(requested);
        // Formatted afresh (no block ever carved): the pool had no slab of the class to hand out.
        if (s->Carved == 0 && SlabOptions.ThreadCacheLimit == 0) TakeBackBeforeGrowing();
        return s;
    }

    /// <summary>Makes <paramref name="s"/> the class's current slab, with its free list ready or a block never handed out.</summary>
    private static void MakeCurrent(ThreadCache* h, int sizeClass, SlabMeta* s)
    {
        h->Current[sizeClass] = (nint)s;
        if (s->Free == null && !Refill(s) && !SlabMeta.HasFresh(s)) ThrowHelper.ThrowCorruption("a slab chosen for allocation has no free block");
    }

    /// <summary>
    /// The pool-stress path (<see cref="SlabOptions.ThreadCacheLimit"/>): the thread hands its slab back
    /// to the shared pool on every miss and takes one from it again, and keeps at most the limit of free
    /// blocks in hand, so that the pool, not the thread cache, serves most of the work.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static void* AllocateThroughPool(ThreadCache* h, int sizeClass, nuint requested)
    {
        var s = (SlabMeta*)h->Current[sizeClass];
        h->Current[sizeClass] = (nint)s_emptySlab;
        if (s != s_emptySlab) LetGo(s);
        s = AcquireFromPool(h, sizeClass, requested);
        MakeCurrent(h, sizeClass, s);
        // Keep the first blocks in hand; the rest wait on the slab's local list for whoever owns it next.
        void* last = s->Free;
        if (last == null) return AllocateFromCurrent(h, sizeClass, requested); // only blocks never handed out
        for (int i = 1; i < SlabOptions.ThreadCacheLimit && SlabMeta.NextOf(s, last) != null; i++) last = SlabMeta.NextOf(s, last);
        void* rest = SlabMeta.NextOf(s, last);
        if (rest != null)
        {
            SlabMeta.SetNext(s, last, null);
            if (s->SetAside != null)
            {
                // Rare (the refill above empties the local list): append it behind the rest.
                void* tail = rest;
                for (void* next; (next = SlabMeta.NextOf(s, tail)) != null; ) tail = next;
                SlabMeta.SetNext(s, tail, s->SetAside);
            }
            s->SetAside = rest;
        }
        return AllocateFromCurrent(h, sizeClass, requested);
    }

    /// <summary>How many exhausted slabs one miss looks at for other threads' frees, at most.</summary>
    private const int RetainedLookups = 64;

    /// <summary>
    /// A retained slab with free blocks: one the owner has freed into, else, when another thread's free
    /// said so (<see cref="ThreadCache.RemoteFreesWaiting"/>), an exhausted one that other threads have
    /// freed into. The exhausted list is rotated past the slabs looked at, so successive misses look at
    /// every slab in turn.
    /// </summary>
    /// <remarks>The hint is taken (exchanged to 0) before the slabs are looked at, and a free sets it after
    /// its push, so a free that the look misses sets it again for the next miss: none is lost. It is set
    /// again too when the look found a slab (others may have frees as well) or stopped before it had seen
    /// every slab; the owner then looks again on its next miss.</remarks>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static SlabMeta* TakeRetained(ThreadCache* h, int c)
    {
        var s = (SlabMeta*)h->RetainedAvailable[c];
        if (s != null)
        {
            OwnedSlabList.Remove(ref h->RetainedAvailable[c], s);
            return s;
        }
        var first = (SlabMeta*)h->RetainedFull[c];
        if (first == null || Interlocked.Exchange(ref h->RemoteFreesWaiting[c], 0) == 0) return null;
        for (int i = 0; i < RetainedLookups; i++)
        {
            s = (SlabMeta*)h->RetainedFull[c];
            if (SlabMeta.HasRemoteFrees(s))
            {
                OwnedSlabList.Remove(ref h->RetainedFull[c], s);
                h->RemoteFreesWaiting[c] = 1;
                return s;
            }
            h->RetainedFull[c] = (nint)s->NextOwned;
            if ((SlabMeta*)h->RetainedFull[c] == first) return null; // every slab looked at
        }
        h->RemoteFreesWaiting[c] = 1;
        return null;
    }

    /// <summary>Refills the owner's empty free list: from its local list (no atomic; only the pool-stress
    /// setting fills it), else from remote frees. False when neither had a block.</summary>
    private static bool Refill(SlabMeta* s)
    {
        if (s->SetAside != null)
        {
            s->Free = s->SetAside;
            s->SetAside = null;
            return true;
        }
        return SlabMeta.CollectRemote(s, SlabMeta.StateOwned) > 0;
    }

    /// <summary>A free into a slab the caller does not own: pushed onto the slab's remote-free list.
    /// <paramref name="h"/> is the caller's heap as its thread-static gives it (the shared empty heap when
    /// the thread has none yet).</summary>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static void FreeRemote(ThreadCache* h, SlabMeta* s, void* block, int index)
    {
        // A slab with no block out (or no slab any more): the block was freed before. The check reads the
        // lifecycle with acquire, so a slab re-formatted for another class since the caller validated the
        // pointer is validated again, below, against its new geometry.
        if (SlabMeta.HasNoBlockOut(s)) ThrowHelper.ThrowDoubleFree(block);
        if (SlabMeta.BlockIndexOf(s, block) < 0) ThrowHelper.ThrowInteriorPointer(block);
        // A free must not fail: a thread that cannot get a cache (out of memory) counts its frees globally.
        if (h == s_emptyHeap) h = TryEnsureHeap();
        if (h == null)
        {
            Interlocked.Increment(ref s_unattachedFrees[s->ClassIndex]);
            Push(s, block, block);
            return;
        }
        if (SlabOptions.RemoteBatch == 0)
        {
            CountRemoteFree(h, s);
            Push(s, block, block);
            return;
        }
        if (!EnterRemoteBatch(h))
        {
            // Another thread is pushing this thread's batch right now: this free goes straight to its slab.
            CountRemoteFree(h, s);
            Push(s, block, block);
            return;
        }
        // Joining the class's batch of the same slab is a few plain stores that cannot throw, so the common case
        // holds the batch without an exception frame (a frame would keep every local of this method in memory).
        // A class read from a slab formatted again since it was validated only picks another batch: the blocks
        // of a batch belong to its slab whatever the class says.
        RemoteBatch* b = ThreadCache.RemoteBatchOf(h, s->ClassIndex);
        if (b->Slab == (nint)s)
        {
            // Hardened: the same block twice in a row would make the batch a cycle of one. Rejected before
            // anything is counted, so the rejected call changes nothing.
            if (SlabOptions.Hardened && (nint)block == b->Head)
            {
                ExitRemoteBatch(h);
                ThrowHelper.ThrowDoubleFree(block);
            }
            if (b->Count < SlabOptions.RemoteBatch)
            {
                CountRemoteFree(h, s);
                JoinRemoteBatch(b, s, block);
                ExitRemoteBatch(h);
                return;
            }
        }
        PushBatchAndStartAnother(h, b, s, block);
    }

    /// <summary>The remote free of <paramref name="block"/> when it cannot join the batch, which the caller holds
    /// (<see cref="EnterRemoteBatch"/>) and this releases: the batch is pushed first, before this free is counted,
    /// because the push checks the batch, and damage found there must not leave this (valid) free half done; then
    /// <paramref name="block"/> starts the next batch. Damage is reported (to the logger too) only once the batch is
    /// released, so that a logger that waits for another thread's <c>Trim</c> cannot wait for this batch.</summary>
    /// <exception cref="InvalidOperationException">The batch's chain was damaged; this free was not done (in checked
    /// mode its block is marked handed out again, so that its one later free is not taken for a double free).</exception>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static void PushBatchAndStartAnother(ThreadCache* h, RemoteBatch* b, SlabMeta* s, void* block)
    {
        BatchDamage damage;
        void* damaged;
        try
        {
            damage = TryPushRemoteBatch(h, b, out damaged);
            if (damage == BatchDamage.None)
            {
                CountRemoteFree(h, s);
                StartRemoteBatch(h, b, s, block);
            }
            else if (SlabOptions.Checked) SuperslabHeader.MarkAllocated(block);
        }
        finally
        {
            ExitRemoteBatch(h);
        }
        if (damage != BatchDamage.None) ThrowBatchDamage(damage, damaged, 0);
    }

    /// <summary>The owner's side of the batch handshake: marks the batch busy, then checks that no other thread
    /// has claimed it. False (and nothing held) when one has: the owner must leave the batch alone.</summary>
    /// <remarks>An asymmetric Dekker handshake. The owner stores <see cref="ThreadCache.RemoteBatchBusy"/> and then
    /// reads <see cref="ThreadCache.RemoteBatchClaimedBy"/>, with no fence between (a remote free pays two plain
    /// stores and a load); a claiming thread stores its claim and then runs
    /// <see cref="Interlocked.MemoryBarrierProcessWide"/> before it reads the busy flag. The process-wide
    /// barrier orders the owner's store and load as a fence would, so either the claimer sees the owner busy
    /// (and waits for it to finish), or the owner sees the claim (and keeps out).</remarks>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool EnterRemoteBatch(ThreadCache* h)
    {
        Volatile.Write(ref h->RemoteBatchBusy, 1);
        if (Volatile.Read(ref h->RemoteBatchClaimedBy) == 0) return true;
        Volatile.Write(ref h->RemoteBatchBusy, 0);
        return false;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void ExitRemoteBatch(ThreadCache* h) => Volatile.Write(ref h->RemoteBatchBusy, 0);

    /// <summary>The owner pushes every batch of its own, unless another thread is pushing them at this moment.</summary>
    /// <exception cref="InvalidOperationException">A batch was corrupted by a double free.</exception>
    public static void FlushOwnRemoteBatches(ThreadCache* h)
    {
        if (SlabOptions.RemoteBatch == 0 || h->RemoteBatchClasses == 0) return;
        if (!EnterRemoteBatch(h)) return;
        BatchDamage damage;
        void* damaged;
        int moreDamaged;
        try
        {
            damage = TryPushRemoteBatches(h, out damaged, out moreDamaged);
        }
        finally
        {
            ExitRemoteBatch(h);
        }
        if (damage != BatchDamage.None) ThrowBatchDamage(damage, damaged, moreDamaged);
    }

    /// <summary>Claims another thread's batch (compare-exchange from 0 to this thread's id); false when a third
    /// thread holds the claim. The caller then runs the process-wide barrier, waits for the owner
    /// (<see cref="AwaitOwnerOutOfRemoteBatch"/>), pushes and releases.</summary>
    public static bool TryClaimRemoteBatch(ThreadCache* h) =>
        // Loses to another Trim or a reclaim claiming the same batch: that one pushes it.
        Interlocked.CompareExchange(ref h->RemoteBatchClaimedBy, Environment.CurrentManagedThreadId, 0) == 0;

    /// <summary>Waits until the owner of a claimed batch is out of it (its work there is a few stores and a CAS,
    /// unless it is descheduled). Spins and yields: the caller may be inside <c>Trim</c>, which must not be
    /// interrupted.</summary>
    public static void AwaitOwnerOutOfRemoteBatch(ThreadCache* h)
    {
        while (Volatile.Read(ref h->RemoteBatchBusy) != 0)
        {
            Thread.SpinWait(20);
            Thread.Yield();
        }
    }

    /// <summary>Releases a claim taken with <see cref="TryClaimRemoteBatch"/> (release: the owner that sees the
    /// claim gone sees the emptied batch).</summary>
    public static void ReleaseRemoteBatchClaim(ThreadCache* h) => Volatile.Write(ref h->RemoteBatchClaimedBy, 0);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void CountRemoteFree(ThreadCache* h, SlabMeta* s)
    {
        h->FreeCount[s->ClassIndex]++;
        h->RemoteFrees++;
        CountRemoteTarget(h, s);
    }

    /// <summary>Holds a remote free back in its class's batch <paramref name="b"/>, on top of the batch's blocks of
    /// the same slab; the batch reaches the slab with one CAS (<see cref="TryPushRemoteBatch"/>).</summary>
    /// <remarks>Safe to hold: a held block counts as out for its slab, so the slab cannot be emptied,
    /// released or formatted again before the batch reaches it; its owner may change meanwhile, which the
    /// push handles as any remote free does.</remarks>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void JoinRemoteBatch(RemoteBatch* b, SlabMeta* s, void* block)
    {
        SlabMeta.SetNext(s, block, (void*)b->Head);
        b->Head = (nint)block;
        b->Count++;
    }

    /// <summary>Starts the (empty) batch <paramref name="b"/> of <paramref name="h"/> with <paramref name="block"/>
    /// of slab <paramref name="s"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StartRemoteBatch(ThreadCache* h, RemoteBatch* b, SlabMeta* s, void* block)
    {
        Invariant.Holds(b->Slab == 0 && (h->RemoteBatchClasses & (1UL << ClassOfBatch(h, b))) == 0, "a batch is started only when empty, its class's bit clear");
        SlabMeta.SetNext(s, block, null);
        b->Head = (nint)block;
        b->TailOffset = (uint)((byte*)block - s->Start);
        b->Count = 1;
        b->Slab = (nint)s;
        h->RemoteBatchClasses |= 1UL << ClassOfBatch(h, b);
    }

    /// <summary>The class whose batch <paramref name="b"/> is.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int ClassOfBatch(ThreadCache* h, RemoteBatch* b) => (int)(b - ThreadCache.RemoteBatchOf(h, 0));

    /// <summary>What <see cref="TryPushRemoteBatch"/> found wrong with a batch's chain.</summary>
    public enum BatchDamage
    {
        /// <summary>The chain was sound and is pushed (or there was no batch).</summary>
        None,
        /// <summary>A link leads out of its block's superslab, or is misaligned: overwritten.</summary>
        LinkOverwritten,
        /// <summary>The chain is not the one recorded: a block freed twice while held.</summary>
        FreedTwice,
    }

    /// <summary>Pushes the blocks held in <paramref name="h"/>'s remote batch <paramref name="b"/> to their slab, after
    /// checking that the chain is what the batch recorded. Called by the thread that owns <paramref name="h"/> inside
    /// <see cref="EnterRemoteBatch"/>, or by one that claimed its batches (<see cref="TryClaimRemoteBatch"/>).
    /// Throws nothing: damage is returned, for the caller to report (<see cref="ThrowBatchDamage"/>) once it
    /// has let go of the batch.</summary>
    /// <remarks>A block freed twice while in the batch re-links the chain: from the head, <c>count</c>
    /// links no longer lead to the recorded oldest block with a null link. Pushing it as it is would cut
    /// blocks off the chain (its oldest block's link is overwritten by the push), so the batch is dropped
    /// instead, its blocks left counted as out in their slab. The walk never follows a link out of the block's
    /// superslab, in either mode.</remarks>
    /// <param name="h">The cache whose batch is pushed.</param>
    /// <param name="b">The batch, one of <paramref name="h"/>'s.</param>
    /// <param name="damaged">The block whose link was overwritten, for <see cref="BatchDamage.LinkOverwritten"/>.</param>
    private static BatchDamage TryPushRemoteBatch(ThreadCache* h, RemoteBatch* b, out void* damaged)
    {
        damaged = null;
        if (SlabOptions.RemoteBatch == 0) return BatchDamage.None; // off: folded away, every caller included
        var s = (SlabMeta*)b->Slab;
        if (s == null) return BatchDamage.None;
        b->Slab = 0;
        h->RemoteBatchClasses &= ~(1UL << ClassOfBatch(h, b));
        int count = b->Count;
        b->Count = 0;
        var head = (void*)b->Head;
        var tail = s->Start + b->TailOffset;
        void* p = head;
        for (int i = 1; i < count && p != null; i++)
        {
            if (!SlabMeta.TryNextOf(s, p, out void* next))
            {
                damaged = p;
                return BatchDamage.LinkOverwritten;
            }
            p = next;
        }
        if (p != tail) return BatchDamage.FreedTwice;
        if (!SlabMeta.TryNextOf(s, tail, out void* afterTail))
        {
            damaged = tail;
            return BatchDamage.LinkOverwritten;
        }
        if (afterTail != null) return BatchDamage.FreedTwice;
        Push(s, head, tail);
        return BatchDamage.None;
    }

    /// <summary>Pushes every batch <paramref name="h"/> holds (<see cref="TryPushRemoteBatch"/>), a damaged one
    /// dropped and the others pushed all the same. Returns the first damage found; the number of other batches
    /// found damaged in <paramref name="moreDamaged"/>. Throws nothing; the same callers as for one batch.</summary>
    public static BatchDamage TryPushRemoteBatches(ThreadCache* h, out void* damaged, out int moreDamaged)
    {
        damaged = null;
        moreDamaged = 0;
        if (SlabOptions.RemoteBatch == 0) return BatchDamage.None;
        BatchDamage first = BatchDamage.None;
        for (ulong classes = h->RemoteBatchClasses; classes != 0; classes &= classes - 1)
        {
            BatchDamage damage = TryPushRemoteBatch(h, ThreadCache.RemoteBatchOf(h, BitOperations.TrailingZeroCount(classes)), out void* d);
            if (damage == BatchDamage.None) continue;
            if (first == BatchDamage.None)
            {
                first = damage;
                damaged = d;
            }
            else moreDamaged++;
        }
        // The caller holds the batches (the owner inside its handshake, or a claim): nothing refilled them meanwhile.
        Invariant.Holds(h->RemoteBatchClasses == 0, "every batch pushed or dropped");
        return first;
    }

    /// <summary>Reports what <see cref="TryPushRemoteBatch"/> found (logged, then thrown); other batches of the same push
    /// found damaged are reported together, in one logged error that is not thrown.</summary>
    /// <exception cref="InvalidOperationException">Always.</exception>
    /// <param name="damage">The first damage found.</param>
    /// <param name="damaged">The block <paramref name="damage"/> names, if any.</param>
    /// <param name="moreDamaged">Other batches found damaged in the same push.</param>
    [DoesNotReturn]
    public static void ThrowBatchDamage(BatchDamage damage, void* damaged, int moreDamaged)
    {
        Invariant.Holds(damage != BatchDamage.None, "only damage is reported");
        if (moreDamaged > 0)
            ThrowHelper.ReportCorruption($"{moreDamaged} remote-free batches of one thread were damaged besides the one reported next (a block freed twice while held, or a link overwritten) and are left out of use");
        if (damage == BatchDamage.LinkOverwritten) ThrowHelper.ThrowLinkOverwritten(damaged);
        ThrowHelper.ThrowCorruption("a block was freed twice while held in a thread's remote-free batch (double free); the batch is left out of use");
    }

    /// <summary>Pushes a chain of remote frees and does what the push found to be needed.</summary>
    private static void Push(SlabMeta* s, void* head, void* tail)
    {
        switch (SlabMeta.PushRemote(s, head, tail))
        {
            case SlabMeta.PushOutcome.FirstOfDetached: SlabPool.Shared.PublishPartial(s); break;
            case SlabMeta.PushOutcome.FirstOfOwned: TellOwner(s); break;
        }
    }

    /// <summary>Tells the owner of <paramref name="s"/> that frees wait in one of its slabs of the class,
    /// so that its next miss looks for them (<see cref="TakeRetained"/>). Read after the push, the owner
    /// may have changed meanwhile: the slab's new owner is told instead, or nobody when it has none (a
    /// slab let go is published by its own protocol). A hint is only ever a reason to look.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void TellOwner(SlabMeta* s)
    {
        var owner = (ThreadCache*)Volatile.Read(ref *(nint*)&s->Owner);
        if (owner != null) Volatile.Write(ref owner->RemoteFreesWaiting[s->ClassIndex], 1);
    }

    /// <summary>Counts whose slab a remote free went into: a live thread's, an ended thread's not yet
    /// reclaimed, or no thread's. A statistic only: the owner may change while it is read, and the owner's
    /// cache, which is never unmapped, may be read just as another thread takes it over.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void CountRemoteTarget(ThreadCache* h, SlabMeta* s)
    {
        var owner = (ThreadCache*)s->Owner;
        if (owner == null) h->RemoteFreesToUnowned++;
        else if (Volatile.Read(ref owner->LatchArmed) != 0 && !ThreadStacks.IsArmed(&owner->Latch)) h->RemoteFreesToEnded++;
    }

    /// <summary>Slabs let go while blocks of theirs were still out (see <see cref="LetGo"/>).</summary>
    private static long s_letGoInUse;

    /// <summary>Slabs let go while blocks of theirs were still out: handed over to whichever thread frees
    /// those blocks, and then to the pool.</summary>
    public static long SlabsLetGoInUse => Volatile.Read(ref s_letGoInUse);

    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static void LetGo(SlabMeta* s) => HandOver(s, SlabMeta.LetGo(s));

    /// <summary>Does what <see cref="SlabMeta.LetGo"/> left to the caller for a slab just let go.</summary>
    private static void HandOver(SlabMeta* s, SlabMeta.LetGoResult result)
    {
        switch (result)
        {
            case SlabMeta.LetGoResult.Detached: // in no list until a remote free publishes it
                Interlocked.Increment(ref s_letGoInUse);
                break;
            case SlabMeta.LetGoResult.Queued:
                Interlocked.Increment(ref s_letGoInUse);
                SlabPool.Shared.PublishPartial(s);
                break;
            case SlabMeta.LetGoResult.Empty: SlabPool.Shared.ReleaseEmpty(s); break;
        }
    }
}
