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
/// docs/performance.md, 2026-12-07 13:28 UTC).</para>
/// <para><b>Bounds.</b> A class's cache holds at most <see cref="FreeCacheLimit"/> blocks, and a thread's caches
/// together about <see cref="FreeCacheThreadBytes"/>: a free that would go past the first flushes the class's
/// oldest half back to their slabs, one that would go past the second the oldest half of the class that holds
/// the most bytes. The flush comes before the free's own push, so a free that a flush's report of corruption
/// interrupts has changed nothing.</para>
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
/// allocator follows it; the blocks the cache held from there on are dropped (never handed out again; their
/// slabs count them as free), and the class goes on working. The chain must also end exactly at the count:
/// a block freed twice into the cache (not in a row, so not caught) makes it a cycle, which the allocation
/// that reaches the count, or the flush that walks it, finds; the whole cache is then dropped unpushed, so
/// the cycle never reaches a slab's list.</para>
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

    /// <summary>Bytes a thread's free caches hold, all classes together, before a free flushes the largest.</summary>
    internal const long FreeCacheThreadBytes = 4 << 20;

    private const string FreeCacheOverwritten =
        "a block in a thread's free cache was overwritten after it was freed (its link names no cached block)";

    private const string FreeCacheMiscounted =
        "a thread's free cache does not end where its count says (a block freed twice into it, or overwritten after it was freed)";

    /// <summary>Drawn once: the per-thread secrets of the free caches' links are derived from it.</summary>
    private static readonly ulong s_freeCacheSeed = (ulong)Random.Shared.NextInt64();

    /// <summary>Secrets drawn so far (see <see cref="NewFreeCacheKey"/>).</summary>
    private static long s_freeCacheKeys;

    /// <summary>A new secret for a thread's free-cache links (hardened mode; else 0). Allocates nothing: a thread
    /// attaches even when no managed memory is left.</summary>
    private static nuint NewFreeCacheKey()
    {
        if (!SlabOptions.Hardened) return 0;
        // SplitMix64 of the seed's sequence: distinct, unpredictable without the seed.
        ulong z = s_freeCacheSeed + (ulong)Interlocked.Increment(ref s_freeCacheKeys) * 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return (nuint)(z ^ (z >> 31)) | 1;
    }

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
    private static void* AllocateGeneralAfterMapMiss(int sizeClass, nuint requested, nuint stackAddress) =>
        AllocateFromFreeCache(HeapAfterMapMiss(stackAddress), sizeClass, requested);

    /// <summary>The newest block of the class's free cache, else a block of the current slab.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void* AllocateFromFreeCache(ThreadCache* h, int sizeClass, nuint requested)
    {
        var block = (void*)ThreadCache.FreeCacheHeadOf(h, sizeClass);
        if (block == null) return AllocateFrom(h, sizeClass, requested);
        SlabMeta* s = CachedSlabOf(h, sizeClass, block);
        if (s == null) DropFreeCache(h, sizeClass, FreeCacheOverwritten);
        void* next = CachedNextOf(h, block);
        ref long count = ref ThreadCache.FreeCacheCountOf(h, sizeClass);
        if ((count == 1) != (next == null)) DropFreeCache(h, sizeClass, FreeCacheMiscounted);
        ThreadCache.FreeCacheHeadOf(h, sizeClass) = (nint)next;
        count--;
        h->FreeCacheBytes -= s->BlockBytes;
        return HandOut(h, s, sizeClass, requested, block);
    }

    /// <summary>The owner's free of a block of the general path: into the class's free cache.</summary>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static void FreeToCache(ThreadCache* h, SlabMeta* s, void* block)
    {
        int c = s->ClassIndex;
        // The owner's free-list checks (see FreeByOwner): a slab with no block out cannot take a free, and
        // hardened, the same block twice in a row would make the cache a cycle.
        int used = s->Used;
        if (used == 0 || (SlabOptions.Hardened && (nint)block == ThreadCache.FreeCacheHeadOf(h, c))) ThrowHelper.ThrowDoubleFree(block);
        uint blockBytes = s->BlockBytes;
        // Room first: a flush that reports corruption then leaves this free undone. It changes no count of s,
        // which has a block out (this one), so is neither emptied nor let go.
        if (ThreadCache.FreeCacheCountOf(h, c) >= FreeCacheLimit || h->FreeCacheBytes + blockBytes > FreeCacheThreadBytes) MakeRoom(h, c, block);
        ref nint head = ref ThreadCache.FreeCacheHeadOf(h, c);
        SetCachedNext(h, block, (void*)head);
        head = (nint)block;
        s->Used = used - 1;
        ThreadCache.FreeCountOf(h, c)++;
        ThreadCache.FreeCacheCountOf(h, c)++;
        h->FreeCacheBytes += blockBytes;
    }

    /// <summary>Makes room in the free caches for <paramref name="block"/> of class <paramref name="c"/>: the class's
    /// oldest half back to the slabs when it is full, else (past the thread's budget) that of the class holding
    /// the most bytes.</summary>
    /// <exception cref="InvalidOperationException">A flush met corruption. The free of <paramref name="block"/> is
    /// then undone: in checked mode its mark goes back to handed out.</exception>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void MakeRoom(ThreadCache* h, int c, void* block)
    {
        try
        {
            if (ThreadCache.FreeCacheCountOf(h, c) >= FreeCacheLimit) FlushFreeCache(h, c, keep: FreeCacheLimit / 2);
            else FlushLargestFreeCache(h);
        }
        catch (InvalidOperationException)
        {
            if (SlabOptions.Checked) SuperslabHeader.MarkAllocated(block);
            throw;
        }
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
    /// <remarks>The chain is walked and every block checked before anything changes. A damaged link ends the
    /// walk: the blocks before it are distinct (a chain that reaches a damaged link went round no cycle), so
    /// they are flushed as usual, and those from it on are dropped. A chain that goes on past the count (a
    /// block freed twice into the cache: a cycle) is dropped whole, with nothing pushed. Either is reported
    /// once the rest is done.</remarks>
    /// <exception cref="InvalidOperationException">A cached block was overwritten, or freed twice.</exception>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static void FlushFreeCache(ThreadCache* h, int c, int keep)
    {
        SlabMeta** kept = stackalloc SlabMeta*[FreeCacheLimit / 2];
        SlabMeta** givenSlabs = stackalloc SlabMeta*[FreeCacheLimit];
        void** given = stackalloc void*[FreeCacheLimit];
        ref nint head = ref ThreadCache.FreeCacheHeadOf(h, c);
        ref long count = ref ThreadCache.FreeCacheCountOf(h, c);
        keep = Math.Min(keep, FreeCacheLimit / 2);
        long walk = Math.Min(count, FreeCacheLimit); // more is a miscount, found below
        void* last = null, block = (void*)head;
        int k = 0, n = 0;
        string? damage = null;
        for (long i = 0; i < walk && block != null; i++)
        {
            SlabMeta* s = CachedSlabOf(h, c, block);
            if (s == null)
            {
                damage = FreeCacheOverwritten;
                break;
            }
            if (k < keep)
            {
                kept[k++] = s;
                last = block;
            }
            else
            {
                givenSlabs[n] = s;
                given[n++] = block;
            }
            block = CachedNextOf(h, block);
        }
        if (damage == null && (k + n < count || block != null)) damage = FreeCacheMiscounted;
        if (damage != null && block != null && k + n == walk) DropFreeCache(h, c, damage); // a cycle: nothing pushed
        for (int i = 0; i < n; i++)
        {
            SlabMeta* s = givenSlabs[i];
            SlabMeta.SetNext(s, given[i], s->Free);
            s->Free = given[i];
        }
        if (last == null) head = 0;
        else SetCachedNext(h, last, null);
        h->FreeCacheBytes -= (count - k) * SizeClasses.BlockBytes(c);
        count = k;
        if (damage != null) SlabInvariants.BlocksDropped();
        for (int i = 0; i < n; i++)
        {
            SlabMeta* s = givenSlabs[i];
            if (s->Owner != h) continue; // let go at an earlier entry: another thread's, or nobody's, by now
            if (s->Used == 0 && IsAmong(s, kept, k))
            {
                if (s->OwnerList == SlabMeta.RetainedFull) MoveToAvailable(h, s);
            }
            else if (s->OwnerList == SlabMeta.RetainedFull || (s->Used == 0 && s->OwnerList != SlabMeta.NotListed)) FreeToRetained(h, s);
        }
        if (damage != null) ThrowHelper.ThrowCorruption(damage);
    }

    /// <summary>Flushes the oldest half of the free cache of the class that holds the most bytes.</summary>
    private static void FlushLargestFreeCache(ThreadCache* h)
    {
        int largest = FirstCachedClass;
        long most = 0;
        for (int c = FirstCachedClass; c < SizeClasses.Count; c++)
        {
            long bytes = ThreadCache.FreeCacheCountOf(h, c) * SizeClasses.BlockBytes(c);
            if (bytes > most)
            {
                most = bytes;
                largest = c;
            }
        }
        FlushFreeCache(h, largest, keep: (int)(ThreadCache.FreeCacheCountOf(h, largest) / 2));
    }

    private static bool IsAmong(SlabMeta* s, SlabMeta** slabs, int count)
    {
        for (int i = 0; i < count; i++)
            if (slabs[i] == s) return true;
        return false;
    }

    /// <summary>Drops class <paramref name="c"/>'s whole free cache, found damaged, and reports it. The dropped
    /// blocks are never handed out again (their slabs count them as free).</summary>
    [DoesNotReturn]
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void DropFreeCache(ThreadCache* h, int c, string damage)
    {
        h->FreeCacheBytes -= ThreadCache.FreeCacheCountOf(h, c) * SizeClasses.BlockBytes(c);
        ThreadCache.FreeCacheCountOf(h, c) = 0;
        ThreadCache.FreeCacheHeadOf(h, c) = 0;
        SlabInvariants.BlocksDropped();
        ThrowHelper.ThrowCorruption(damage);
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
