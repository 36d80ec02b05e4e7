using SlabAlloc.Memory;
using SlabAlloc.Support;

namespace SlabAlloc.Pool;

/// <summary>
/// The shared slab pool: where a thread cache gets a slab when its own runs dry, and where slabs
/// go when no thread owns them. One abstraction, so that the lock-free pool and a mutex baseline
/// are two implementations of one contract, exercised by the same tests.
/// </summary>
/// <remarks>
/// Contract, for every implementation:
/// <list type="bullet">
/// <item><see cref="Acquire"/> returns a slab of the class, owned by <c>owner</c>, with at least one
/// block available after its lists are refilled, trying in order: (1) a slab of the class from the
/// class's partial or empty list, (2) free slots claimed in a mapped superslab, (3) a new superslab.
/// It returns null only when the system refuses memory.</item>
/// <item><see cref="PublishPartial"/> takes a slab in state Queued that has (or is about to have) a
/// free block; <see cref="ReleaseEmpty"/> takes a slab with no block out. The caller holds the slab
/// exclusively until the call and must not touch it afterwards.</item>
/// <item>No slab is ever in two lists, and a slab in a list keeps its slots claimed.</item>
/// </list>
/// </remarks>
internal abstract unsafe class SlabPool
{
    /// <summary>The process-wide pool, of the kind <c>SLABALLOC_POOL</c> chose at start-up.</summary>
    public static readonly SlabPool Shared = SlabOptions.MutexPool
        ? new SharedSlabPool<CoarseLock>(new CoarseLock(new AdaptiveMutex()), isMutex: true)
        : new SharedSlabPool<NoLock>(default, isMutex: false);

    protected SlabPool(bool isMutex) => IsMutex = isMutex;

    /// <summary>True for the mutex pool (<c>SLABALLOC_POOL=mutex</c>), false for the lock-free one.</summary>
    public bool IsMutex { get; }

    /// <summary>Which stage served acquisitions, and how the pool was exercised.</summary>
    public readonly PoolCounters Counters = new();

    /// <summary>Gets a slab of <paramref name="sizeClass"/> for <paramref name="owner"/>, or null when out of memory.</summary>
    public abstract SlabMeta* Acquire(int sizeClass, void* owner);

    /// <summary>Puts a queued slab with free blocks on its class's partial list.</summary>
    public abstract void PublishPartial(SlabMeta* s);

    /// <summary>Keeps an empty slab on its class's empty list, or releases its slots when enough are kept.</summary>
    public abstract void ReleaseEmpty(SlabMeta* s);

    /// <summary>Empty slabs of <paramref name="sizeClass"/> kept on its empty list now.</summary>
    public abstract int EmptySlabs(int sizeClass);

    /// <summary>Empty one-slot slabs kept for any class to re-format (approximate while threads release and acquire).</summary>
    public abstract int SharedEmptySlabs { get; }

    /// <summary>Releases the empty slabs (in the class lists and the reserve) that no acquisition needed
    /// since the previous call (done by itself every <see cref="AdjustableSettings.DecayMs"/> on a release); returns how many.</summary>
    public abstract int Decay();

    /// <summary>The automatic decay, budgeted as on a release, if <see cref="AdjustableSettings.DecayMs"/> has passed since the
    /// last decay; otherwise nothing. For the periodic upkeep of a process that releases nothing.</summary>
    public abstract void DecayIfDue();

    /// <summary>Releases every empty slab (including partial ones that became empty) and returns
    /// empty superslabs to the system. A slab found corrupt (a cyclic remote-free list, logged where
    /// found) is left out of every list and the rest is still trimmed; the first such failure is
    /// returned for the caller to report, null when there was none.</summary>
    public abstract Exception? Trim();
}
