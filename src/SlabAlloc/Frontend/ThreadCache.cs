using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using SlabAlloc.Memory;
using SlabAlloc.Platform;
using SlabAlloc.Support;

namespace SlabAlloc.Frontend;

/// <summary>One pointer per size class: a slab's metadata, or a block.</summary>
[InlineArray(SizeClasses.Count)]
internal struct ClassPointers { private nint _first; }

/// <summary>One flag per size class.</summary>
[InlineArray(SizeClasses.Count)]
internal struct ClassFlags { private byte _first; }

/// <summary>Room for a thread-exit latch (a pthread_mutex_t, see <see cref="Platform.ThreadStacks"/>).</summary>
[InlineArray(Platform.ThreadStacks.LatchBytes / sizeof(long))]
internal struct ExitLatch { private long _first; }

/// <summary>A cache line of padding, between fields the owner writes and fields other threads write.</summary>
[StructLayout(LayoutKind.Sequential, Size = 64)]
internal struct CacheLinePad { private byte _first; }

/// <summary>One counter per size class.</summary>
[InlineArray(SizeClasses.Count)]
internal struct ClassCounts { private long _first; }

/// <summary>
/// A thread cache: the slab each size class currently allocates from, and the thread's counters.
/// Unmanaged, so the fast path finds it from the stack address (<see cref="StackCacheMap"/>, or else the
/// thread-static offset) and updates it without a GC write barrier.
/// </summary>
/// <remarks>
/// <para>Written only by the thread it is attached to (or, after that thread died, by the one thread
/// that reclaims it). Other threads read the counters for statistics without synchronization: each
/// is a naturally aligned 64-bit value, so a read is never torn, only possibly a moment old.</para>
/// <para><see cref="Current"/>[c] is never null: a class with no slab points at the shared empty
/// slab, whose free list is always empty, so the fast path needs no "has a slab" test.</para>
/// <para>Invariant, summed over every heap: for each class,
/// <c>Σ AllocCount − Σ FreeCount = blocks of that class handed out and not yet freed</c>.</para>
/// </remarks>
[StructLayout(LayoutKind.Sequential)]
internal struct ThreadCache
{
    // The first cache line is what StackCacheMap reads to vouch for a heap: the owner's stack range and
    // its exit latch. Written only by the owner when it registers (latch, then range: see StackCacheMap),
    // and StackBytes set to 0 when the heap is reclaimed.

    /// <summary>Lowest address of the owner thread's stack.</summary>
    public nuint StackLow;
    /// <summary>Size of the owner's stack; 0 while the heap is not registered in the stack map.</summary>
    public nuint StackBytes;
    /// <summary>Armed by the owner when it registers; the owner's exit disarms it.</summary>
    public ExitLatch Latch;

    public ClassPointers Current;
    /// <summary>Per class, the heads of two circular lists of slabs the thread keeps owning after they
    /// stopped being current: exhausted ones, and ones the owner has since freed blocks into.</summary>
    public ClassPointers RetainedFull;
    /// <inheritdoc cref="RetainedFull"/>
    public ClassPointers RetainedAvailable;
    public ClassCounts AllocCount;
    public ClassCounts FreeCount;
    /// <summary>Per class of the general path, the free cache: blocks the owner freed, newest first, which its
    /// next allocations of the class take back before any slab's list (<c>SmallBlocks</c>, FreeCache). Linked
    /// through their first word, XORed with <see cref="FreeCacheKey"/>.</summary>
    public ClassPointers FreeCacheHead;
    /// <summary>Per class, the blocks in the free cache (<see cref="FreeCacheHead"/>).</summary>
    public ClassCounts FreeCacheCount;
    /// <summary>The bytes of the blocks in every class's free cache; read by the statistics.</summary>
    public long FreeCacheBytes;
    /// <summary>The secret the free cache's links are XORed with (hardened mode; else 0), drawn when a thread attaches.</summary>
    public nuint FreeCacheKey;
    /// <summary>Per class: set by <c>ReserveThreadCache</c>, the thread keeps its slabs of the class even
    /// when they become empty, instead of handing them back to the pool.</summary>
    public ClassFlags KeepEmpty;
    /// <summary>Sum of the sizes callers asked for (before rounding to a class).</summary>
    public long RequestedBytes;
    /// <summary>Frees of blocks whose slab another thread (or no thread) owned.</summary>
    public long RemoteFrees;
    /// <summary>Of <see cref="RemoteFrees"/>: frees into slabs whose owner thread had ended and whose
    /// cache was not reclaimed yet (owners in the stack map only: every thread, where it is supported).</summary>
    public long RemoteFreesToEnded;
    /// <summary>Of <see cref="RemoteFrees"/>: frees into slabs that no thread owned (let go by their
    /// thread, or handed back with a dead thread's cache).</summary>
    public long RemoteFreesToUnowned;
    /// <summary>Allocations that found the current slab's free list empty (thread-cache misses).</summary>
    public long CacheMisses;
    /// <summary>The thread's remote frees not pushed yet, one batch per class (<see cref="RemoteBatch"/>). A
    /// class's batch is pushed to its slab with one CAS when a free of the class goes to another slab or it holds
    /// <c>SLABALLOC_REMOTE_BATCH</c> blocks; every batch is pushed at the thread's next cache miss, at any thread's
    /// call to <c>Trim</c> and when the cache is reclaimed after its thread ended
    /// (<c>SmallBlocks.TryPushRemoteBatches</c>).</summary>
    public ClassRemoteBatches RemoteBatches;
    /// <summary>Bit c set while class c's remote batch holds blocks (the classes fit in 64 bits: checked when compiled).
    /// Written with the batches; read by other threads as a hint of whether there is anything to push.</summary>
    public ulong RemoteBatchClasses;
    /// <summary>Fails to compile when the classes do not fit in <see cref="RemoteBatchClasses"/>.</summary>
    private const ulong ClassesFitInOneWord = 64 - SizeClasses.Count;
    /// <summary>1 while the owner works on its remote batch: plain stores, ordered against another thread's
    /// claim by that thread's process-wide barrier (<c>SmallBlocks.EnterRemoteBatch</c>).</summary>
    public int RemoteBatchBusy;
    /// <summary>1 while the owner reads or changes its retained lists: plain stores, ordered against another
    /// thread's claim by that thread's process-wide barrier (<c>SmallBlocks.EnterRetained</c>).</summary>
    public int RetainedBusy;
    /// <summary>Failed attempts to register in the stack map (the latch still held by an exiting
    /// previous owner, or no stack range); retried every 64 cache misses, at most 16 times.</summary>
    public int StackRegistrationFailures;

    // What other threads read or write on their frees, a cache line away from the owner's counters.
    private CacheLinePad _pad;
    /// <summary>1 once the owner armed its exit latch (it registered in the stack map); reset when a new
    /// thread takes the cache. With the latch disarmed since, the owner has ended. Read by other threads'
    /// frees, so it is kept off the lines the owner writes as it allocates.</summary>
    public int LatchArmed;
    /// <summary>Per class: set by another thread's free when it is the first to wait in a slab this cache
    /// owns, so that the owner looks through its exhausted slabs for frees on its next miss. Written by
    /// any thread (a plain store: a hint), taken by the owner with an exchange.</summary>
    public ClassFlags RemoteFreesWaiting;
    /// <summary>Nonzero while another thread has claimed the remote batch to push it (a <c>Trim</c>, or the
    /// reclaim of the ended owner): that thread's managed id. Claimed by compare-exchange from 0, released by
    /// a store; the owner leaves the batch alone meanwhile.</summary>
    public int RemoteBatchClaimedBy;
    /// <summary>Nonzero while another thread holds the retained lists to take back the slabs other threads'
    /// frees emptied (<c>SmallBlocks.UnlinkFreedSlabs</c>): its managed id. The owner keeps out of them meanwhile.</summary>
    public int RetainedClaimedBy;
    /// <summary>The owner's <see cref="CacheMisses"/> when a taker last looked at this cache: unchanged at the next
    /// look, the thread has not allocated past its current slabs since. Written by takers only.</summary>
    public long MissesAtLastLook;
    /// <summary>Looks at this cache that takers skip before the next, and the number skipped after the last
    /// fruitless look (doubled at each one, back to 0 when a look takes a slab). Written by takers only.</summary>
    public int TakeBackSkip, TakeBackBackoff;

    // Unchecked views for the fast paths: the class index is in range by construction, and InlineArray
    // indexing would add a bounds check to every allocation and free.

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe SlabMeta* CurrentSlab(ThreadCache* h, int sizeClass) => (SlabMeta*)((nint*)&h->Current)[sizeClass];

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe ref nint FreeCacheHeadOf(ThreadCache* h, int sizeClass) => ref ((nint*)&h->FreeCacheHead)[sizeClass];

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe ref long FreeCacheCountOf(ThreadCache* h, int sizeClass) => ref ((long*)&h->FreeCacheCount)[sizeClass];

    /// <summary>True when no class's free cache holds a block.</summary>
    public static unsafe bool FreeCachesEmpty(ThreadCache* h)
    {
        for (int c = 0; c < SizeClasses.Count; c++)
            if (FreeCacheHeadOf(h, c) != 0 || FreeCacheCountOf(h, c) != 0) return false;
        return h->FreeCacheBytes == 0;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe RemoteBatch* RemoteBatchOf(ThreadCache* h, int sizeClass) => (RemoteBatch*)&h->RemoteBatches + sizeClass;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe ref long AllocCountOf(ThreadCache* h, int sizeClass) => ref ((long*)&h->AllocCount)[sizeClass];

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe ref long FreeCountOf(ThreadCache* h, int sizeClass) => ref ((long*)&h->FreeCount)[sizeClass];
}
