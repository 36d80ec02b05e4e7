using System.Runtime.CompilerServices;
using SlabAlloc.Memory;
using SlabAlloc.Platform;
using SlabAlloc.Support;

namespace SlabAlloc.Frontend;

/// <summary>
/// The front end for blocks up to 64 KiB: each thread allocates from slabs it owns, frees its own
/// blocks without atomics, and pushes other threads' blocks onto their slabs' remote-free lists.
/// </summary>
/// <remarks>
/// <para><b>Fast paths.</b> Allocation: find the thread's heap in the stack map
/// (<see cref="StackCacheMap"/>), pop the current slab's free list, count. Owner free: validate the
/// pointer, have the slab's owner heap vouch for the caller's stack, push onto the slab's free list,
/// count. Neither uses an atomic instruction, a lock or a call, and neither tests whether the thread
/// was initialized. When the map does not vouch, the heap comes from the thread-static offset
/// instead: until a thread's first miss that offset is 0, which lands on a shared empty heap whose
/// slabs never have a free block, so the first allocation simply misses into
/// <see cref="AllocateSlow"/>, which attaches the thread and registers its stack.</para>
/// <para><b>Ownership.</b> <c>s->Owner</c> is read by any thread. A heap that vouches for the caller
/// is the caller's own heap (see <see cref="StackCacheMap"/>), and <c>s->Owner</c> only ever equals
/// the caller's own heap when the caller owns the slab, because an owner writes its own heap when it
/// takes a slab and writes null (before any other thread can take it) when it lets it go.</para>
/// </remarks>
internal static unsafe partial class SmallBlocks
{
    /// <summary>Offset from the shared empty heap to this thread's heap (0 until the first miss).</summary>
    [ThreadStatic] private static nint t_heapOffset;

    private static readonly SlabMeta* s_emptySlab = MakeEmptySlab();
    private static readonly ThreadCache* s_emptyHeap = MakeEmptyHeap(s_emptySlab);

    /// <summary>The calling thread's heap from the thread-static (always right, slower than the map).</summary>
    private static ThreadCache* HeapFromThreadStatic
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => (ThreadCache*)((nint)s_emptyHeap + t_heapOffset);
    }

    /// <summary>For tests: the heap the stack map vouches for at the caller's stack, or null.</summary>
    internal static ThreadCache* HeapVouchedByStackMap()
    {
        byte marker;
        ThreadCache* h = StackCacheMap.Candidate(s_emptyHeap, (nuint)(&marker));
        return StackCacheMap.Vouches(h, (nuint)(&marker)) ? h : null;
    }

    /// <summary>For tests: the bytes in the calling thread's own free caches (the statistics sum every thread's).</summary>
    internal static long FreeCacheBytesOfCurrentThread()
    {
        ThreadCache* h = HeapFromThreadStatic;
        return h == s_emptyHeap ? 0 : h->FreeCacheBytes;
    }

    /// <summary>For tests: whether the calling thread keeps its empty slabs of <paramref name="sizeClass"/>
    /// (it reserved them with <c>ReserveThreadCache</c>).</summary>
    internal static bool KeepsEmptySlabs(int sizeClass) => HeapFromThreadStatic->KeepEmpty[sizeClass] != 0;

    /// <summary>For tests: the calling thread's heap from the thread-static (null before it attached).</summary>
    internal static ThreadCache* HeapOfCallingThread() => HeapFromThreadStatic == s_emptyHeap ? null : HeapFromThreadStatic;

    /// <summary>Frees by threads that could not get a thread cache, per class (they are rare: out of memory).</summary>
    private static readonly long[] s_unattachedFrees = new long[SizeClasses.Count];

    /// <summary>Frees of <paramref name="sizeClass"/> counted outside any thread cache.</summary>
    public static long UnattachedFrees(int sizeClass) => Volatile.Read(ref s_unattachedFrees[sizeClass]);

    /// <summary>The calling thread's heap, attaching the thread first if needed; throws when out of memory.</summary>
    private static ThreadCache* EnsureHeap()
    {
        ThreadCache* h = TryEnsureHeap();
        if (h == null) ThrowHelper.ThrowOutOfMemory((nuint)sizeof(ThreadCache));
        return h;
    }

    /// <summary>The calling thread's heap, attaching the thread first if needed; null when out of memory.</summary>
    private static ThreadCache* TryEnsureHeap()
    {
        ThreadCache* h = HeapFromThreadStatic;
        if (h != s_emptyHeap) return h;
        ThreadCacheRecord? record;
        try
        {
            record = ThreadCacheRecords.Attach(Thread.CurrentThread, s_emptyHeap);
        }
        catch (OutOfMemoryException)
        {
            return null; // no managed memory for the thread's record (or Thread object): as out of native memory
        }
        if (record == null) return null;
        h = record.Heap;
        // A reused record's heap: what its last thread chose for itself does not carry over.
        h->StackRegistrationFailures = 0;
        Volatile.Write(ref h->LatchArmed, 0);
        h->KeepEmpty = default;
        h->RemoteFreesWaiting = default;
        h->RetainedBusy = 0;
        // A reused record's free caches were flushed when it was reclaimed; a new thread gets a new secret.
        h->FreeCacheKey = NewFreeCacheKey();
        t_heapOffset = (nint)h - (nint)s_emptyHeap;
        RegisterStack(h);
        return h;
    }

    /// <summary>Attempts at registering in the stack map before a thread settles for the thread-static.</summary>
    private const int MaxStackRegistrationFailures = 16;

    private static void RegisterStack(ThreadCache* h)
    {
        if (StackCacheMap.TryRegister(h, s_emptyHeap)) Volatile.Write(ref h->LatchArmed, 1);
        else h->StackRegistrationFailures++;
    }

    /// <summary>True if <paramref name="s"/> is the placeholder slab of classes with no slab.</summary>
    public static bool IsEmptySlab(SlabMeta* s) => s == s_emptySlab;

    private static SlabMeta* MakeEmptySlab()
    {
        var s = (SlabMeta*)OsMemory.Reserve(OsMemory.PageBytes, OsMemory.PageBytes);
        if (s == null) throw new OutOfMemoryException("SlabAlloc could not start.");
        return s; // zeroed: no free block, no owner, capacity 0
    }

    private static ThreadCache* MakeEmptyHeap(SlabMeta* emptySlab)
    {
        var h = (ThreadCache*)OsMemory.Reserve(OsMemory.RoundUpToPages((nuint)sizeof(ThreadCache)), OsMemory.PageBytes);
        if (h == null) throw new OutOfMemoryException("SlabAlloc could not start.");
        for (int c = 0; c < SizeClasses.Count; c++) h->Current[c] = (nint)emptySlab;
        return h;
    }
}
