using System.Runtime.CompilerServices;
using SlabAlloc.Core;
using SlabAlloc.Platform;
using SlabAlloc.Pool;

namespace SlabAlloc.Threading;

/// <summary>
/// The front end for blocks up to 64 KiB: each thread allocates from slabs it owns, frees its own
/// blocks without atomics, and pushes other threads' blocks onto their slabs' remote-free lists.
/// </summary>
/// <remarks>
/// <para><b>Fast paths.</b> Allocation: find the thread's heap in the stack map
/// (<see cref="StackHeapMap"/>), pop the current slab's free list, count. Owner free: validate the
/// pointer, have the slab's owner heap vouch for the caller's stack, push onto the slab's free list,
/// count. Neither uses an atomic instruction, a lock or a call, and neither tests whether the thread
/// was initialized. When the map does not vouch, the heap comes from the thread-static offset
/// instead: until a thread's first miss that offset is 0, which lands on a shared empty heap whose
/// slabs never have a free block, so the first allocation simply misses into
/// <see cref="AllocateSlow"/>, which attaches the thread and registers its stack.</para>
/// <para><b>Ownership.</b> <c>s->Owner</c> is read by any thread. A heap that vouches for the caller
/// is the caller's own heap (see <see cref="StackHeapMap"/>), and <c>s->Owner</c> only ever equals
/// the caller's own heap when the caller owns the slab, because an owner writes its own heap when it
/// takes a slab and writes null (before any other thread can take it) when it lets it go.</para>
/// </remarks>
internal static unsafe class ThreadCache
{
    /// <summary>Offset from the shared empty heap to this thread's heap (0 until the first miss).</summary>
    [ThreadStatic] private static nint t_heapOffset;

    private static readonly SlabMeta* s_emptySlab = MakeEmptySlab();
    private static readonly ThreadHeap* s_emptyHeap = MakeEmptyHeap(s_emptySlab);

    /// <summary>The calling thread's heap from the thread-static (always right, slower than the map).</summary>
    private static ThreadHeap* HeapFromThreadStatic
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => (ThreadHeap*)((nint)s_emptyHeap + t_heapOffset);
    }

    /// <summary>For tests: the heap the stack map vouches for at the caller's stack, or null.</summary>
    internal static ThreadHeap* HeapVouchedByStackMap()
    {
        byte marker;
        ThreadHeap* h = StackHeapMap.Candidate(s_emptyHeap, (nuint)(&marker));
        return StackHeapMap.Vouches(h, (nuint)(&marker)) ? h : null;
    }

    /// <summary>For tests: whether the calling thread keeps its empty slabs of <paramref name="sizeClass"/>
    /// (it reserved them with <c>ReserveThreadCache</c>).</summary>
    internal static bool KeepsEmptySlabs(int sizeClass) => HeapFromThreadStatic->KeepEmpty[sizeClass] != 0;

    /// <summary>For tests: the calling thread's heap from the thread-static (null before it attached).</summary>
    internal static ThreadHeap* HeapOfCallingThread() => HeapFromThreadStatic == s_emptyHeap ? null : HeapFromThreadStatic;

    /// <summary>Allocates a block of <paramref name="sizeClass"/> for a request of <paramref name="requested"/> bytes.</summary>
    /// <remarks>The heap is found from the stack address when the stack map vouches for it; otherwise
    /// the whole allocation goes out of line (<see cref="AllocateAfterMapMiss"/>), so that no value has
    /// to survive a call here and the fast path needs few registers.</remarks>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void* Allocate(int sizeClass, nuint requested)
    {
        byte marker;
        nuint stackAddress = (nuint)(&marker);
        ThreadHeap* h = StackHeapMap.Candidate(s_emptyHeap, stackAddress);
        if (!StackHeapMap.Vouches(h, stackAddress)) return AllocateAfterMapMiss(sizeClass, requested, stackAddress);
        return AllocateFrom(h, sizeClass, requested);
    }

    /// <summary>The stack map did not vouch: the heap from the thread-static (the empty heap for a thread
    /// not attached yet), and the entry re-pointed at it if another stack had taken it.</summary>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static void* AllocateAfterMapMiss(int sizeClass, nuint requested, nuint stackAddress)
    {
        ThreadHeap* h = HeapFromThreadStatic;
        if (h != s_emptyHeap) StackHeapMap.Repoint(h, s_emptyHeap, stackAddress);
        return AllocateFrom(h, sizeClass, requested);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void* AllocateFrom(ThreadHeap* h, int sizeClass, nuint requested)
    {
        SlabMeta* s = ThreadHeap.CurrentSlab(h, sizeClass);
        void* block = s->Free;
        if (block == null) return AllocateSlow(h, sizeClass, requested);
        s->Free = SlabMeta.NextOf(s, block);
        return HandOut(h, s, sizeClass, requested, block);
    }

    /// <summary>Counts <paramref name="block"/>, just taken from <paramref name="s"/>, as handed out.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void* HandOut(ThreadHeap* h, SlabMeta* s, int sizeClass, nuint requested, void* block)
    {
        s->Used++;
        ThreadHeap.AllocCountOf(h, sizeClass)++;
        h->RequestedBytes += (long)requested;
        if (SlabOptions.Checked) SuperslabHeader.MarkAllocated(block);
        return block;
    }

    /// <summary>Frees a block of slab <paramref name="s"/> whose index the caller validated.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Free(SlabMeta* s, void* block, int index)
    {
        if (SlabOptions.Checked) SuperslabHeader.MarkFreed(block);
        // The owner's heap vouches for the caller's stack only if the caller is the owner (StackHeapMap).
        var owner = (ThreadHeap*)s->Owner;
        byte marker;
        if (owner != null && StackHeapMap.Vouches(owner, (nuint)(&marker)))
        {
            FreeByOwner(owner, s, block);
            return;
        }
        FreeNotVouched(s, block, index);
    }

    /// <summary>The owner's free: no atomic, onto the slab's free list.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void FreeByOwner(ThreadHeap* h, SlabMeta* s, void* block)
    {
        // Onto the list allocations pop (last in, first out), so the next allocation of the class gets the
        // block just freed, still in the cache. The pool-stress setting keeps its few blocks in hand and
        // sends the rest to the local list instead (see AllocateThroughPool).
        ref void* list = ref SlabOptions.ThreadCacheLimit == 0 ? ref s->Free : ref s->LocalFree;
        // A slab with no block out cannot take a free. Hardened: the commonest double free (the same block
        // twice in a row) would loop the list.
        // (Used is read once, into a local: the stores below would otherwise make the JIT read it again.)
        int used = s->Used;
        if (used == 0 || (SlabOptions.Hardened && block == list)) ThrowHelper.ThrowDoubleFree(block);
        SlabMeta.SetNext(s, block, list);
        list = block;
        s->Used = --used;
        ThreadHeap.FreeCountOf(h, s->ClassIndex)++;
        // A retained slab needs its owner's attention only when it was full (now it has a free block) or
        // has no block out any more; a free into any other slab is done here. (Testing NotListed first, so
        // that the current slab's free is decided by one compare, made Larson T=1 about 15% slower: most of
        // its frees land in retained slabs, and the JIT laid that path out of line.)
        if (s->OwnerList == SlabMeta.RetainedFull || (used == 0 && s->OwnerList != SlabMeta.NotListed)) FreeToRetained(h, s);
    }

    /// <summary>A free the stack map could not vouch for: the owner's, if the thread-static says the
    /// caller owns the slab (a thread not in the map), else a remote free.</summary>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static void FreeNotVouched(SlabMeta* s, void* block, int index)
    {
        ThreadHeap* h = HeapFromThreadStatic;
        if (s->Owner == h) FreeByOwner(h, s, block);
        else FreeRemote(s, block, index);
    }

    /// <summary>The owner freed into a slab it retains but does not allocate from: a full slab now has
    /// a free block, and a slab with no block out goes back to the pool.</summary>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static void FreeToRetained(ThreadHeap* h, SlabMeta* s)
    {
        int c = s->ClassIndex;
        if (s->Used == 0 && h->KeepEmpty[c] == 0)
        {
            OwnedSlabList.Remove(ref s->OwnerList == SlabMeta.RetainedFull ? ref h->RetainedFull[c] : ref h->RetainedAvailable[c], s);
            LetGo(s);
        }
        else if (s->OwnerList == SlabMeta.RetainedFull)
        {
            OwnedSlabList.Remove(ref h->RetainedFull[c], s);
            OwnedSlabList.Add(ref h->RetainedAvailable[c], s, SlabMeta.RetainedAvailable);
        }
    }

    /// <summary>The current slab's free list is empty: a block the slab never handed out, else a miss.</summary>
    /// <remarks>A slab hands out its never-used blocks one at a time, here, rather than threading a batch
    /// of them onto its free list: so every block below <see cref="SlabMeta.Carved"/> was handed out, and a
    /// free of one that never was is rejected (<see cref="SlabMeta.BlockIndexOf"/>). Frees waiting to be
    /// taken back come first, so memory already touched is reused before fresh memory is.</remarks>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static void* AllocateSlow(ThreadHeap* h, int sizeClass, nuint requested)
    {
        // h is the caller's heap (vouched for by the stack map, or from the thread-static), or the shared
        // empty heap before the thread's first miss (whose placeholder slab has nothing fresh).
        SlabMeta* s = ThreadHeap.CurrentSlab(h, sizeClass);
        if (SlabOptions.ThreadCacheLimit == 0 && s->LocalFree == null && SlabMeta.HasFresh(s) && !SlabMeta.HasRemoteFrees(s))
            return HandOut(h, s, sizeClass, requested, SlabMeta.TakeFresh(s));
        return AllocateAfterMiss(h, sizeClass, requested);
    }

    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static void* AllocateAfterMiss(ThreadHeap* h, int sizeClass, nuint requested)
    {
        if (h == s_emptyHeap) h = EnsureHeap();
        h->CacheMisses++;
        // Not in the stack map yet (its latch was still held): try again now and then.
        if (h->StackBytes == 0 && (h->CacheMisses & 63) == 0 && h->StackRegistrationFailures < MaxStackRegistrationFailures) RegisterStack(h);
        if (SlabOptions.ThreadCacheLimit != 0) return AllocateThroughPool(h, sizeClass, requested);
        var s = (SlabMeta*)h->Current[sizeClass];
        if (s != s_emptySlab)
        {
            // Nothing fresh is left here, or there were frees to take back first.
            if (Refill(s) || SlabMeta.HasFresh(s)) return AllocateFromCurrent(h, sizeClass, requested);
            // Exhausted: keep owning it (the owner's frees into it stay atomic-free) and look elsewhere.
            OwnedSlabList.Add(ref h->RetainedFull[sizeClass], s, SlabMeta.RetainedFull);
        }
        h->Current[sizeClass] = (nint)s_emptySlab;
        s = TakeRetained(h, sizeClass);
        MakeCurrent(h, sizeClass, s != null ? s : AcquireFromPool(h, sizeClass, requested));
        return AllocateFromCurrent(h, sizeClass, requested);
    }

    /// <summary>A block of the current slab, which has one: from its free list, else never handed out.</summary>
    private static void* AllocateFromCurrent(ThreadHeap* h, int sizeClass, nuint requested)
    {
        SlabMeta* s = ThreadHeap.CurrentSlab(h, sizeClass);
        void* block = s->Free;
        if (block != null) s->Free = SlabMeta.NextOf(s, block);
        else block = SlabMeta.TakeFresh(s);
        return HandOut(h, s, sizeClass, requested, block);
    }

    /// <summary>A slab of the class from the shared pool; throws when the system has no memory.</summary>
    private static SlabMeta* AcquireFromPool(ThreadHeap* h, int sizeClass, nuint requested)
    {
        SlabMeta* s = SlabPool.Shared.Acquire(sizeClass, h);
        if (s == null) ThrowHelper.ThrowOutOfMemory(requested);
        return s;
    }

    /// <summary>Makes <paramref name="s"/> the class's current slab, with its free list ready or a block never handed out.</summary>
    private static void MakeCurrent(ThreadHeap* h, int sizeClass, SlabMeta* s)
    {
        h->Current[sizeClass] = (nint)s;
        if (s->Free == null && !Refill(s) && !SlabMeta.HasFresh(s)) ThrowHelper.ThrowCorruption("a slab chosen for allocation has no free block");
    }

    /// <summary>
    /// The pool-stress path (<see cref="SlabOptions.ThreadCacheLimit"/>): the thread hands its slab back
    /// to the shared pool on every miss and takes one from it again, and keeps at most the limit of free
    /// blocks in hand, so that the pool, not the thread cache, serves most of the work.
    /// </summary>
    private static void* AllocateThroughPool(ThreadHeap* h, int sizeClass, nuint requested)
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
            if (s->LocalFree != null)
            {
                // Rare (the refill above empties the local list): append it behind the rest.
                void* tail = rest;
                for (void* next; (next = SlabMeta.NextOf(s, tail)) != null; ) tail = next;
                SlabMeta.SetNext(s, tail, s->LocalFree);
            }
            s->LocalFree = rest;
        }
        return AllocateFromCurrent(h, sizeClass, requested);
    }

    /// <summary>
    /// A retained slab with free blocks: one the owner has freed into, else one of the first few full
    /// ones that other threads have freed into. The full list is rotated past the slabs looked at, so
    /// every retained slab is looked at in turn.
    /// </summary>
    private static SlabMeta* TakeRetained(ThreadHeap* h, int c)
    {
        var s = (SlabMeta*)h->RetainedAvailable[c];
        if (s != null)
        {
            OwnedSlabList.Remove(ref h->RetainedAvailable[c], s);
            return s;
        }
        const int Lookups = 4;
        for (int i = 0; i < Lookups && (s = (SlabMeta*)h->RetainedFull[c]) != null; i++)
        {
            if ((Volatile.Read(ref s->ThreadFree) & ~SlabMeta.StateMask) != 0)
            {
                OwnedSlabList.Remove(ref h->RetainedFull[c], s);
                return s;
            }
            h->RetainedFull[c] = (nint)s->NextOwned;
        }
        return null;
    }

    /// <summary>Refills the owner's empty free list: from its local list (no atomic; only the pool-stress
    /// setting fills it), else from remote frees. False when neither had a block.</summary>
    private static bool Refill(SlabMeta* s)
    {
        if (s->LocalFree != null)
        {
            s->Free = s->LocalFree;
            s->LocalFree = null;
            return true;
        }
        return SlabMeta.CollectRemote(s, SlabMeta.StateOwned) > 0;
    }

    private static void FreeRemote(SlabMeta* s, void* block, int index)
    {
        // A slab with no block out (or no slab any more): the block was freed before. The check reads the
        // lifecycle with acquire, so a slab re-formatted for another class since the caller validated the
        // pointer is validated again, below, against its new geometry.
        if (SlabMeta.HasNoBlockOut(s)) ThrowHelper.ThrowDoubleFree(block);
        if (SlabMeta.BlockIndexOf(s, block) < 0) ThrowHelper.ThrowInteriorPointer(block);
        // A free must not fail: a thread that cannot get a cache (out of memory) counts its frees globally.
        ThreadHeap* h = TryEnsureHeap();
        if (h != null)
        {
            h->FreeCount[s->ClassIndex]++;
            h->RemoteFrees++;
        }
        else Interlocked.Increment(ref s_unattachedFrees[s->ClassIndex]);
        if (SlabMeta.PushRemote(s, block)) SlabPool.Shared.PublishPartial(s);
    }

    /// <summary>Frees by threads that could not get a thread cache, per class (they are rare: out of memory).</summary>
    private static readonly long[] s_unattachedFrees = new long[SizeClasses.Count];

    /// <summary>Frees of <paramref name="sizeClass"/> counted outside any thread cache.</summary>
    public static long UnattachedFrees(int sizeClass) => Volatile.Read(ref s_unattachedFrees[sizeClass]);

    /// <summary>The calling thread's heap, attaching the thread first if needed; throws when out of memory.</summary>
    private static ThreadHeap* EnsureHeap()
    {
        ThreadHeap* h = TryEnsureHeap();
        if (h == null) ThrowHelper.ThrowOutOfMemory((nuint)sizeof(ThreadHeap));
        return h;
    }

    /// <summary>The calling thread's heap, attaching the thread first if needed; null when out of memory.</summary>
    private static ThreadHeap* TryEnsureHeap()
    {
        ThreadHeap* h = HeapFromThreadStatic;
        if (h != s_emptyHeap) return h;
        HeapRecord? record;
        try
        {
            record = HeapRecords.Attach(Thread.CurrentThread, s_emptyHeap);
        }
        catch (OutOfMemoryException)
        {
            return null; // no managed memory for the thread's record (or Thread object): as out of native memory
        }
        if (record == null) return null;
        h = record.Heap;
        // A reused record's heap: what its last thread chose for itself does not carry over.
        h->StackRegistrationFailures = 0;
        h->KeepEmpty = default;
        t_heapOffset = (nint)h - (nint)s_emptyHeap;
        RegisterStack(h);
        return h;
    }

    /// <summary>Attempts at registering in the stack map before a thread settles for the thread-static.</summary>
    private const int MaxStackRegistrationFailures = 16;

    private static void RegisterStack(ThreadHeap* h)
    {
        if (!StackHeapMap.TryRegister(h, s_emptyHeap)) h->StackRegistrationFailures++;
    }

    private static void LetGo(SlabMeta* s)
    {
        switch (SlabMeta.LetGo(s))
        {
            case SlabMeta.LetGoResult.Detached: break; // in no list until a remote free publishes it
            case SlabMeta.LetGoResult.Queued: SlabPool.Shared.PublishPartial(s); break;
            case SlabMeta.LetGoResult.Empty: SlabPool.Shared.ReleaseEmpty(s); break;
        }
    }

    /// <summary>Hands every slab of <paramref name="h"/> back to the pool. Called for a dead thread's heap.</summary>
    public static void ReleaseAllSlabs(ThreadHeap* h) => ReleaseSlabs(h, onlyEmpty: false);

    /// <summary>Releases the calling thread's slabs that have no block out.</summary>
    public static void TrimCurrentThread()
    {
        ThreadHeap* h = HeapFromThreadStatic;
        if (h != s_emptyHeap) ReleaseSlabs(h, onlyEmpty: true);
    }

    private static void ReleaseSlabs(ThreadHeap* h, bool onlyEmpty)
    {
        for (int c = 0; c < SizeClasses.Count; c++)
        {
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
        EnsureHeap()->KeepEmpty[sizeClass] = 1;
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

    /// <summary>True if <paramref name="s"/> is the placeholder slab of classes with no slab.</summary>
    public static bool IsEmptySlab(SlabMeta* s) => s == s_emptySlab;

    private static SlabMeta* MakeEmptySlab()
    {
        var s = (SlabMeta*)OsMemory.Reserve(OsMemory.PageBytes, OsMemory.PageBytes);
        if (s == null) throw new OutOfMemoryException("SlabAlloc could not start.");
        return s; // zeroed: no free block, no owner, capacity 0
    }

    private static ThreadHeap* MakeEmptyHeap(SlabMeta* emptySlab)
    {
        var h = (ThreadHeap*)OsMemory.Reserve(OsMemory.RoundUpToPages((nuint)sizeof(ThreadHeap)), OsMemory.PageBytes);
        if (h == null) throw new OutOfMemoryException("SlabAlloc could not start.");
        for (int c = 0; c < SizeClasses.Count; c++) h->Current[c] = (nint)emptySlab;
        return h;
    }
}
