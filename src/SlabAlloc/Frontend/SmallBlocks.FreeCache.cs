using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
using SlabAlloc.Memory;
using SlabAlloc.Support;

namespace SlabAlloc.Frontend;

/// <summary>The free cache of the general path's classes (blocks above 1 KiB): the owner's frees wait in its
/// thread cache, newest first, and its next allocations of the class take them back before any slab's list.</summary>
/// <remarks>
/// <para><b>Why.</b> Allocation pops only the class's current slab, so a block freed into any other slab the
/// thread owns waits there until that slab is current again, by when it has left the processor's caches. A
/// thread that keeps many large blocks across many slabs (a working set of 8-64 KiB buffers) then allocates
/// cold memory. The cache hands back the block freed last, wherever its slab is (measured in
/// docs/performance.md, 2026-12-07 "sixth").</para>
/// <para><b>Bounds.</b> A class's cache holds at most <see cref="FreeCacheLimit"/> blocks, and a thread's caches
/// together at most <see cref="FreeCacheThreadBytes"/>; the free that goes past either flushes the class's
/// oldest blocks back to their slabs and keeps the newest <see cref="FreeCacheLimit"/> / 2.</para>
/// <para><b>Counts.</b> A cached block is free for its slab: the free takes it off <see cref="SlabMeta.Used"/>
/// at once, and the allocation that takes it back counts it again. So every double-free check that reads
/// <c>Used</c> (the owner's, another thread's, <c>UsableSize</c>'s) sees a cached block as free, and
/// <c>Carved == Used + |Free| + |SetAside| + (blocks of the slab in its owner's free cache)</c>.</para>
/// <para><b>No slab is let go with a block in the cache.</b> Only a slab's owner caches its blocks, and a
/// slab changes hands only when its owner lets it go. A free into the cache that leaves its slab with no
/// block out leaves the slab where it is; a flush then does what the owner's frees would have done
/// (<see cref="FreeToRetained"/>) for the slabs it gave blocks back to, except that it lets go of none that
/// still has a block among those it keeps. <c>Trim</c> and the reclaim of a dead thread's cache flush
/// everything first, and let go of a class's slabs only when its cache is empty.</para>
/// <para><b>Links.</b> XORed with the thread's <see cref="ThreadCache.FreeCacheKey"/> (hardened mode), and every
/// block is checked before it is handed out, or its link followed (<see cref="CachedSlabOf"/>). A link
/// overwritten after the free (a heap overflow, a write after free) is reported as corruption before the
/// allocator follows it; the blocks the cache held from there on are dropped, and the class goes on working.</para>
/// <para>Off in the pool-stress setting (<see cref="SlabOptions.ThreadCacheLimit"/>), whose point is that the
/// pool serves the work.</para>
/// </remarks>
internal static unsafe partial class SmallBlocks
{
    /// <summary>The first class of the general path (above <see cref="SizeClasses.SmallLimitBytes"/>): it and
    /// every larger class have a free cache.</summary>
    internal static readonly int FirstCachedClass = SizeClasses.ClassOf(SizeClasses.SmallLimitBytes + 1);

    /// <summary>Blocks a class's free cache holds at most.</summary>
    internal const int FreeCacheLimit = 64;

    /// <summary>Bytes a thread's free caches hold at most, all classes together.</summary>
    internal const long FreeCacheThreadBytes = 4 << 20;

    private const string FreeCacheOverwritten =
        "a block in a thread's free cache was overwritten after it was freed (its link names no cached block)";

    /// <summary>As <see cref="Allocate"/>, for a class of the general path: the free cache first.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void* AllocateGeneralClass(int sizeClass, nuint requested)
    {
        byte marker;
        nuint stackAddress = (nuint)(&marker);
        ThreadCache* h = StackCacheMap.Candidate(s_emptyHeap, stackAddress);
        if (!StackCacheMap.Vouches(h, stackAddress)) return AllocateGeneralAfterMapMiss(sizeClass, requested, stackAddress);
        return AllocateFromFreeCache(h, sizeClass, requested);
    }

    /// <summary>As <see cref="AllocateAfterMapMiss"/>, for a class of the general path.</summary>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static void* AllocateGeneralAfterMapMiss(int sizeClass, nuint requested, nuint stackAddress)
    {
        ThreadCache* h = HeapFromThreadStatic;
        if (h != s_emptyHeap) StackCacheMap.Repoint(h, s_emptyHeap, stackAddress);
        return AllocateFromFreeCache(h, sizeClass, requested);
    }

    /// <summary>The newest block of the class's free cache, else a block of the current slab.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void* AllocateFromFreeCache(ThreadCache* h, int sizeClass, nuint requested)
    {
        var block = (void*)ThreadCache.FreeCacheHeadOf(h, sizeClass);
        if (block == null) return AllocateFrom(h, sizeClass, requested);
        SlabMeta* s = CachedSlabOf(h, sizeClass, block);
        if (s == null) DropFreeCache(h, sizeClass);
        ThreadCache.FreeCacheHeadOf(h, sizeClass) = (nint)CachedNextOf(h, block);
        ThreadCache.FreeCacheCountOf(h, sizeClass)--;
        h->FreeCacheBytes -= s->BlockBytes;
        return HandOut(h, s, sizeClass, requested, block);
    }

    /// <summary>The owner's free of a block of the general path: into the class's free cache.</summary>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static void FreeToCache(ThreadCache* h, SlabMeta* s, void* block)
    {
        int c = s->ClassIndex;
        ref nint head = ref ThreadCache.FreeCacheHeadOf(h, c);
        // The owner's free-list checks (see FreeByOwner): a slab with no block out cannot take a free, and
        // hardened, the same block twice in a row would make the cache a cycle.
        int used = s->Used;
        if (used == 0 || (SlabOptions.Hardened && (nint)block == head)) ThrowHelper.ThrowDoubleFree(block);
        SetCachedNext(h, block, (void*)head);
        head = (nint)block;
        s->Used = used - 1;
        ThreadCache.FreeCountOf(h, c)++;
        long count = ++ThreadCache.FreeCacheCountOf(h, c);
        h->FreeCacheBytes += s->BlockBytes;
        if (count > FreeCacheLimit || h->FreeCacheBytes > FreeCacheThreadBytes) FlushFreeCache(h, c, keep: (int)(count / 2));
    }

    /// <summary>The link stored in cached block <paramref name="block"/>: the next cached block, or null.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void* CachedNextOf(ThreadCache* h, void* block) => (void*)(*(nuint*)block ^ h->FreeCacheKey);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void SetCachedNext(ThreadCache* h, void* block, void* next) => *(nuint*)block = (nuint)next ^ h->FreeCacheKey;

    /// <summary>The slab of <paramref name="block"/>, taken from the free cache of class <paramref name="c"/>
    /// of <paramref name="h"/>, or null when it cannot be a block there: not in a superslab, or not at the
    /// start of a block handed out by a slab of this class that <paramref name="h"/> owns.</summary>
    /// <remarks>The superslab test comes first: only then is the header at the block's 4 MiB boundary
    /// mapped. A slab <paramref name="h"/> owns is not formatted again while h owns it, so its geometry
    /// holds.</remarks>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static SlabMeta* CachedSlabOf(ThreadCache* h, int c, void* block)
    {
        if (!SuperslabArena.Contains(block) && !Registry.IsSuperslab(block)) return null;
        SlabMeta* s = SuperslabHeader.SlabOf(block);
        if (s == null || s->Owner != h || s->ClassIndex != c || SlabMeta.BlockIndexOf(s, block) < 0) return null;
        return s;
    }

    /// <summary>Gives the blocks of class <paramref name="c"/>'s free cache after the newest
    /// <paramref name="keep"/> back to their slabs, then does for each of those slabs what the owner's frees
    /// would have done (<see cref="FreeToRetained"/>), except let go of one that has a block among those kept.</summary>
    /// <remarks>The walk is bounded by the cache's count, and the link after its last block must be null, so a
    /// block freed twice into the cache (a cycle) ends the walk too. A damaged link ends it as well: the blocks
    /// from there on are dropped (never handed out again; their slabs count them as free) and the damage is
    /// reported once the rest is done, so the class goes on working.</remarks>
    /// <exception cref="InvalidOperationException">A cached block was overwritten, or freed twice.</exception>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static void FlushFreeCache(ThreadCache* h, int c, int keep)
    {
        SlabMeta** kept = stackalloc SlabMeta*[FreeCacheLimit / 2];
        SlabMeta** given = stackalloc SlabMeta*[FreeCacheLimit + 1];
        ref nint head = ref ThreadCache.FreeCacheHeadOf(h, c);
        ref long count = ref ThreadCache.FreeCacheCountOf(h, c);
        void* last = null, block = (void*)head;
        int k = 0, n = 0;
        for (; k < keep && block != null; k++)
        {
            SlabMeta* s = CachedSlabOf(h, c, block);
            if (s == null) break;
            kept[k] = s;
            last = block;
            block = CachedNextOf(h, block);
        }
        if (k == keep)
        {
            for (long toGive = count - k; n < toGive && block != null; n++)
            {
                SlabMeta* s = CachedSlabOf(h, c, block);
                if (s == null) break;
                void* next = CachedNextOf(h, block);
                SlabMeta.SetNext(s, block, s->Free);
                s->Free = block;
                given[n] = s;
                block = next;
            }
        }
        string? damage = null;
        bool dropped = k + n < count; // a link that names no cached block, or none too early
        if (dropped) damage = FreeCacheOverwritten;
        else if (block != null) damage = "a block was freed twice into a thread's free cache (double free)";
        if (last == null) head = 0;
        else SetCachedNext(h, last, null);
        h->FreeCacheBytes -= (count - k) * SizeClasses.BlockBytes(c);
        count = k;
        for (int i = 0; i < n; i++)
        {
            SlabMeta* s = given[i];
            if (s->Owner != h) continue; // let go at an earlier entry: another thread's, or nobody's, by now
            if (s->Used == 0 && IsAmong(s, kept, k))
            {
                if (s->OwnerList == SlabMeta.RetainedFull) MoveToAvailable(h, s);
            }
            else if (s->OwnerList == SlabMeta.RetainedFull || (s->Used == 0 && s->OwnerList != SlabMeta.NotListed)) FreeToRetained(h, s);
        }
        if (damage != null)
        {
            if (dropped) SlabInvariants.BlocksDropped();
            ThrowHelper.ThrowCorruption(damage);
        }
    }

    /// <summary>Drops class <paramref name="c"/>'s whole free cache, whose newest block is damaged, and reports
    /// it. The dropped blocks are never handed out again (their slabs count them as free).</summary>
    [DoesNotReturn]
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void DropFreeCache(ThreadCache* h, int c)
    {
        h->FreeCacheBytes -= ThreadCache.FreeCacheCountOf(h, c) * SizeClasses.BlockBytes(c);
        ThreadCache.FreeCacheCountOf(h, c) = 0;
        ThreadCache.FreeCacheHeadOf(h, c) = 0;
        SlabInvariants.BlocksDropped();
        ThrowHelper.ThrowCorruption(FreeCacheOverwritten);
    }

    private static bool IsAmong(SlabMeta* s, SlabMeta** slabs, int count)
    {
        for (int i = 0; i < count; i++)
            if (slabs[i] == s) return true;
        return false;
    }

    /// <summary>Empties every class's free cache of <paramref name="h"/> (<see cref="FlushFreeCache"/>); returns
    /// the first corruption met, after the other classes are flushed.</summary>
    private static InvalidOperationException? FlushFreeCaches(ThreadCache* h)
    {
        InvalidOperationException? failure = null;
        for (int c = FirstCachedClass; c < SizeClasses.Count; c++)
        {
            if (ThreadCache.FreeCacheHeadOf(h, c) == 0 && ThreadCache.FreeCacheCountOf(h, c) == 0) continue;
            try
            {
                FlushFreeCache(h, c, keep: 0);
            }
            catch (InvalidOperationException e)
            {
                failure ??= e;
            }
        }
        return failure;
    }
}
