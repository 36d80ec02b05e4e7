using System.Runtime.CompilerServices;
using SlabAlloc.Memory;
using SlabAlloc.Platform;
using SlabAlloc.Support;

namespace SlabAlloc.Frontend;

/// <summary>Handing slabs back (a dead thread's, or the calling thread's empty ones on <c>Trim</c>), and
/// reserving a thread's cache ahead of a hot loop.</summary>
internal static unsafe partial class SmallBlocks
{
    /// <summary>Pushes the remote frees <paramref name="h"/> held back and flushes its free caches, then hands
    /// every slab of it back to the pool. Called for a dead thread's heap.</summary>
    /// <exception cref="InvalidOperationException">Corruption in the batch (no slab is let go) or in a free cache
    /// (thrown once every slab is let go).</exception>
    public static void ReleaseAllSlabs(ThreadCache* h)
    {
        if (SlabOptions.RemoteBatch != 0)
        {
            // A Trim may be pushing this batch at this moment: wait for its claim to go, then hold one.
            while (!TryClaimRemoteBatch(h))
            {
                Thread.SpinWait(20);
                Thread.Yield();
            }
            BatchDamage damage;
            void* damaged;
            int moreDamaged;
            try
            {
                damage = TryPushRemoteBatches(h, out damaged, out moreDamaged); // the owner has ended: no handshake with it
            }
            finally
            {
                ReleaseRemoteBatchClaim(h);
            }
            if (damage != BatchDamage.None) ThrowBatchDamage(damage, damaged, moreDamaged); // reported once the claim is released
        }
        InvalidOperationException? failure = FlushFreeCaches(h);
        ReleaseSlabs(h, onlyEmpty: false);
        if (failure != null) throw failure;
    }

    /// <summary>Pushes the calling thread's held remote frees (a thread that frees other threads' blocks
    /// only now and then, such as the finalizer thread, so that they reach their slabs now).</summary>
    /// <exception cref="InvalidOperationException">The batch was corrupted by a double free.</exception>
    public static void FlushCurrentThreadRemoteBatch()
    {
        ThreadCache* h = HeapFromThreadStatic;
        if (h != s_emptyHeap) FlushOwnRemoteBatches(h);
    }

    /// <summary>Pushes the calling thread's held remote frees and flushes its free caches, then releases its
    /// slabs that have no block out.</summary>
    /// <exception cref="InvalidOperationException">Corruption in the batch or a free cache, thrown once the
    /// rest is done.</exception>
    public static void TrimCurrentThread()
    {
        ThreadCache* h = HeapFromThreadStatic;
        if (h == s_emptyHeap) return;
        InvalidOperationException? failure = null;
        try
        {
            FlushOwnRemoteBatches(h);
        }
        catch (InvalidOperationException e)
        {
            failure = e; // the batch was dropped: the slabs can still be released
        }
        InvalidOperationException? cacheFailure = FlushFreeCaches(h);
        EnterRetained(h);
        try
        {
            ReleaseSlabs(h, onlyEmpty: true);
        }
        finally
        {
            ExitRetained(h);
        }
        failure ??= cacheFailure;
        if (failure != null) throw failure;
    }

    /// <summary>Lets go of <paramref name="h"/>'s slabs, or only of those with no block out. Its free caches
    /// must be empty (<see cref="FlushFreeCaches"/>).</summary>
    private static void ReleaseSlabs(ThreadCache* h, bool onlyEmpty)
    {
        Invariant.Holds(ThreadCache.FreeCachesEmpty(h), "a thread cache lets its slabs go with its free caches empty");
        for (int c = 0; c < SizeClasses.Count; c++)
        {
            TouchRemoteLists(h, c);
            var s = (SlabMeta*)h->Current[c];
            if (s != s_emptySlab && (!onlyEmpty || IsEmptyAfterCollect(s)))
            {
                h->Current[c] = (nint)s_emptySlab;
                LetGo(s);
            }
            ReleaseList(ref h->RetainedFull[c], onlyEmpty);
            ReleaseList(ref h->RetainedAvailable[c], onlyEmpty);
        }
    }

    /// <summary>Reads the remote-free lists of <paramref name="h"/>'s slabs of <paramref name="sizeClass"/> side by
    /// side before they are collected one by one (<see cref="RemoteListWalk"/>): a dead thread's slabs, whose
    /// blocks its successors freed, can carry thousands of them.</summary>
    private static void TouchRemoteLists(ThreadCache* h, int sizeClass)
    {
        SlabMeta** slabs = stackalloc SlabMeta*[RemoteListWalk.Width];
        int count = 0;
        var current = (SlabMeta*)h->Current[sizeClass];
        if (current != s_emptySlab && SlabMeta.HasRemoteFrees(current)) slabs[count++] = current;
        for (int list = 0; list < 2; list++)
        {
            nint head = list == 0 ? h->RetainedFull[sizeClass] : h->RetainedAvailable[sizeClass];
            var s = (SlabMeta*)head;
            if (s == null) continue;
            do
            {
                if (SlabMeta.HasRemoteFrees(s))
                {
                    slabs[count++] = s;
                    if (count == RemoteListWalk.Width)
                    {
                        RemoteListWalk.Touch(slabs, count);
                        count = 0;
                    }
                }
                s = s->NextOwned;
            } while (s != (SlabMeta*)head);
        }
        if (count > 1) RemoteListWalk.Touch(slabs, count); // one list alone gains nothing from a walk ahead
    }

    /// <summary>Lets go of every slab of a retained list, or only of those with no block out.</summary>
    /// <remarks>Allocates nothing: it runs when a dead thread's cache is reclaimed, where a managed
    /// out-of-memory half-way would strand the slabs not yet let go.</remarks>
    private static void ReleaseList(ref nint head, bool onlyEmpty)
    {
        var s = (SlabMeta*)head;
        if (s == null) return;
        int count = 0;
        do { count++; s = s->NextOwned; } while (s != (SlabMeta*)head);
        // Each slab of the ring once: the next one is read before the current one may be unlinked.
        for (int i = 0; i < count; i++)
        {
            SlabMeta* next = s->NextOwned;
            if (!onlyEmpty || IsEmptyAfterCollect(s))
            {
                OwnedSlabList.Remove(ref head, s);
                LetGo(s);
            }
            s = next;
        }
    }

    private static bool IsEmptyAfterCollect(SlabMeta* s)
    {
        SlabMeta.CollectRemote(s, SlabMeta.StateOwned);
        return s->Used == 0;
    }

    /// <summary>
    /// Makes at least <paramref name="count"/> blocks of <paramref name="sizeClass"/> ready in the calling
    /// thread's cache, with every page behind them (and behind the thread's own metadata) already
    /// touched, so that a hot loop allocating and freeing up to that many blocks takes no page fault.
    /// </summary>
    /// <remarks>The blocks are allocated, touched page by page and freed again by this thread, so they
    /// stay on slabs the thread owns (the current slab and its retained lists); from now on the thread
    /// keeps its slabs of this class even when they become empty (until <c>Trim</c>).</remarks>
    public static void Reserve(int sizeClass, int count)
    {
        ThreadCache* h = EnsureHeap();
        // Inside the handshake with takers (SmallBlocks.TakeBack): a take in flight ends first, and every later one
        // reads the flag after the owner has left its lists, so none takes a slab of the class from here on.
        EnterRetained(h);
        h->KeepEmpty[sizeClass] = 1;
        ExitRetained(h);
        var blocks = new nint[count];
        nuint blockBytes = (nuint)SizeClasses.BlockBytes(sizeClass);
        for (int i = 0; i < count; i++)
        {
            var p = (byte*)Allocate(sizeClass, blockBytes);
            OsMemory.Prefault(p, blockBytes);
            p[blockBytes - 1] = 0;
            blocks[i] = (nint)p;
        }
        for (int i = count - 1; i >= 0; i--)
        {
            void* p = (void*)blocks[i];
            SlabMeta* s = SuperslabHeader.SlabOf(p);
            Free(s, p, SlabMeta.BlockIndexOf(s, p));
        }
    }
}
