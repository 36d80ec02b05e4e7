using System.Runtime.CompilerServices;
using SlabAlloc.Memory;
using SlabAlloc.Support;

namespace SlabAlloc.Frontend;

/// <summary>The fast paths: allocation from the current slab and the owner's free. No atomic
/// instruction, no lock, no call (see the class's remarks).</summary>
internal static unsafe partial class SmallBlocks
{
    /// <summary>Allocates a block of <paramref name="sizeClass"/> for a request of <paramref name="requested"/> bytes.</summary>
    /// <remarks>The heap is found from the stack address when the stack map vouches for it; otherwise
    /// the whole allocation goes out of line (<see cref="AllocateAfterMapMiss"/>), so that no value has
    /// to survive a call here and the fast path needs few registers.</remarks>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void* Allocate(int sizeClass, nuint requested)
    {
        byte marker;
        nuint stackAddress = (nuint)(&marker);
        ThreadCache* h = StackCacheMap.Candidate(s_emptyHeap, stackAddress);
        if (!StackCacheMap.Vouches(h, stackAddress)) return AllocateAfterMapMiss(sizeClass, requested, stackAddress);
        return AllocateFrom(h, sizeClass, requested);
    }

    /// <summary>The stack map did not vouch: the heap from the thread-static (the empty heap for a thread
    /// not attached yet), and the entry re-pointed at it if another stack had taken it.</summary>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static void* AllocateAfterMapMiss(int sizeClass, nuint requested, nuint stackAddress) =>
        AllocateFrom(HeapAfterMapMiss(stackAddress), sizeClass, requested);

    /// <summary>The calling thread's heap from its thread-static, when the stack map did not vouch for the stack at
    /// <paramref name="stackAddress"/> (the empty heap for a thread not attached yet); the map's entry is re-pointed
    /// at it if another stack had taken it.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ThreadCache* HeapAfterMapMiss(nuint stackAddress)
    {
        ThreadCache* h = HeapFromThreadStatic;
        if (h != s_emptyHeap) StackCacheMap.Repoint(h, s_emptyHeap, stackAddress);
        return h;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void* AllocateFrom(ThreadCache* h, int sizeClass, nuint requested)
    {
        SlabMeta* s = ThreadCache.CurrentSlab(h, sizeClass);
        void* block = s->Free;
        if (block == null) return AllocateSlow(h, sizeClass, requested);
        s->Free = SlabMeta.NextOf(s, block);
        return HandOut(h, s, sizeClass, requested, block);
    }

    /// <summary>Counts <paramref name="block"/>, just taken from <paramref name="s"/>, as handed out.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void* HandOut(ThreadCache* h, SlabMeta* s, int sizeClass, nuint requested, void* block)
    {
        s->Used++;
        ThreadCache.AllocCountOf(h, sizeClass)++;
        h->RequestedBytes += (long)requested;
        if (SlabOptions.Checked) SuperslabHeader.MarkAllocated(block);
        return block;
    }

    /// <summary>Frees a block of slab <paramref name="s"/> whose index the caller validated.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Free(SlabMeta* s, void* block, int index)
    {
        if (SlabOptions.Checked) SuperslabHeader.MarkFreed(block);
        // The owner's heap vouches for the caller's stack only if the caller is the owner (StackCacheMap).
        var owner = (ThreadCache*)s->Owner;
        byte marker;
        if (owner != null && StackCacheMap.Vouches(owner, (nuint)(&marker)))
        {
            FreeByOwner(owner, s, block);
            return;
        }
        FreeNotVouched(s, block, index);
    }

    /// <summary>The owner's free: no atomic, onto the slab's free list (a block of the general path's classes
    /// into the free cache instead).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void FreeByOwner(ThreadCache* h, SlabMeta* s, void* block)
    {
        // The class is read before the free is published: from then on, a slab whose last live block this was
        // may be taken back by another thread and formatted again (SmallBlocks.TakeBack).
        int c = s->ClassIndex;
        if (SlabOptions.ThreadCacheLimit == 0 && c >= FirstCachedClass)
        {
            FreeToCache(h, s, block);
            return;
        }
        // Onto the list allocations pop (last in, first out), so the next allocation of the class gets the
        // block just freed, still in the cache. The pool-stress setting keeps its few blocks in hand and
        // sends the rest to the local list instead (see AllocateThroughPool).
        ref void* list = ref SlabOptions.ThreadCacheLimit == 0 ? ref s->Free : ref s->SetAside;
        // A slab with no block out cannot take a free. Hardened: the commonest double free (the same block
        // twice in a row) would loop the list.
        // (Used is read once, into a local: the stores below would otherwise make the JIT read it again.)
        int used = s->Used;
        if (used == 0 || (SlabOptions.Hardened && block == list)) ThrowHelper.ThrowDoubleFree(block);
        SlabMeta.SetNext(s, block, list);
        list = block;
        // A release store: a thread taking the slab back reads Used with acquire and must see the links above.
        Volatile.Write(ref s->Used, --used);
        ThreadCache.FreeCountOf(h, c)++;
        // A retained slab needs its owner's attention only when it was full (now it has a free block) or
        // has no block out any more; a free into any other slab is done here. RetainedFull is tested first,
        // not NotListed: most frees of a thread that keeps many slabs land in retained ones, and the other
        // order had the JIT lay their path out of line (docs/design-measurements.md, "Owner's free").
        if (s->OwnerList == SlabMeta.RetainedFull || (used == 0 && s->OwnerList != SlabMeta.NotListed)) FreeToRetained(h, s);
    }
}
