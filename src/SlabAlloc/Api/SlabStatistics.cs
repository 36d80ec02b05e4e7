using System.Globalization;
using System.Text;
using SlabAlloc.Frontend;
using SlabAlloc.Memory;

namespace SlabAlloc;

/// <summary>A snapshot of SlabAlloc's state, from <see cref="SlabMemory.GetStatistics"/>.</summary>
/// <remarks>
/// Counters are summed from every thread cache without stopping the threads, so while other threads
/// allocate, the figures can be a moment apart from one another. When no other thread is working,
/// they are exact: <see cref="BytesInUse"/> is then precisely the bytes of blocks not yet freed.
/// </remarks>
public sealed class SlabStatistics
{
    /// <summary>Sum of every size ever passed to an allocation (before rounding up to a size class).</summary>
    public long BytesRequestedTotal { get; init; }
    /// <summary>Bytes of the blocks handed out and not yet freed (size-class sizes, plus large blocks' usable sizes).</summary>
    public long BytesInUse { get; init; }
    /// <summary>Blocks handed out and not yet freed, slab and large.</summary>
    public long BlocksInUse { get; init; }
    /// <summary>Bytes currently mapped from the operating system, metadata included.</summary>
    public long BytesMapped { get; init; }
    /// <summary>Superslabs (4 MiB regions) currently mapped.</summary>
    public int Superslabs { get; init; }
    /// <summary>Mapped superslabs with no slab in them, kept for reuse.</summary>
    public int EmptySuperslabs { get; init; }
    /// <summary>Superslabs mapped and returned since start-up.</summary>
    public long SuperslabsMappedTotal { get; init; }
    /// <inheritdoc cref="SuperslabsMappedTotal"/>
    public long SuperslabsReturnedTotal { get; init; }
    /// <summary>Superslabs returned to the system whose address range is kept, with no memory behind it,
    /// for the next superslab (a returned superslab's addresses are never unmapped, so that a stale pointer
    /// into them is read safely).</summary>
    public int SuperslabRangesKept { get; init; }
    /// <summary>Address space reserved at start-up for superslabs (the superslab arena), with no memory
    /// behind it until a superslab is cut from it; 0 when there is none (not Linux, or a limit on the
    /// address space).</summary>
    public long SuperslabArenaBytes { get; init; }
    /// <summary>Bytes of the arena opened so far: superslabs cut from it, mapped or since returned.</summary>
    public long SuperslabArenaOpenBytes { get; init; }
    /// <summary>True when the arena has no range left to cut (every range has been cut, or the system refused to
    /// open one; logged once): new superslabs are then mapped on their own, and each free of their blocks
    /// looks the address up in the registry first. True too when there is no arena.</summary>
    public bool SuperslabArenaUsedUp { get; init; }
    /// <summary>Slots of mapped superslabs that belong to no slab.</summary>
    public int UnusedSlots { get; init; }
    /// <summary>Of <see cref="UnusedSlots"/>, those released with their pages left resident (64 KiB each), for the
    /// next slab of any class to reuse without page faults; given back to the system after a decay interval
    /// with no use (and by <c>Trim</c>).</summary>
    public int ResidentUnusedSlots { get; init; }
    /// <summary>Slabs per state, summed over size classes.</summary>
    public int SlabsOwned { get; init; }
    /// <inheritdoc cref="SlabsOwned"/>
    public int SlabsFull { get; init; }
    /// <inheritdoc cref="SlabsOwned"/>
    public int SlabsPartial { get; init; }
    /// <inheritdoc cref="SlabsOwned"/>
    public int SlabsEmpty { get; init; }
    /// <summary>Empty one-slot slabs in the pool's shared reserve, which any class up to 8 KiB may re-format
    /// (<c>SLABALLOC_SHARED_EMPTY_SLABS</c>); counted under no class.</summary>
    public int SlabsReserved { get; init; }
    /// <summary>Blocks the slabs thread caches currently allocate from can still hand out: freed ones and
    /// ones never handed out (slabs a thread retains but does not allocate from are not counted).</summary>
    public long BlocksInThreadCaches { get; init; }
    /// <summary>Bytes of the blocks above 1 KiB that live threads freed into their free caches, where their next
    /// allocations of the size take them back first (a cached block of a slab a thread allocates from is in
    /// <see cref="BlocksInThreadCaches"/> too). A moment-old sum.</summary>
    public long BytesInFreeCaches { get; init; }
    /// <summary>Threads with a cache now, and the most that ever existed at once.</summary>
    public int ThreadCaches { get; init; }
    /// <inheritdoc cref="ThreadCaches"/>
    public int ThreadCacheRecords { get; init; }
    /// <summary>Thread caches handed back after their thread ended.</summary>
    public long ThreadCachesReclaimed { get; init; }
    /// <summary>Allocations that found neither a free block nor a block never handed out in their size
    /// class's current slab, and so took back other threads' frees or another slab (thread-cache misses).</summary>
    public long ThreadCacheMisses { get; init; }
    /// <summary>Frees of blocks whose slab another thread owned.</summary>
    public long RemoteFrees { get; init; }
    /// <summary>Of <see cref="RemoteFrees"/>: frees into slabs whose owner thread had ended and whose cache
    /// was not handed back yet (counted for threads in the stack map: every thread, where it is supported).</summary>
    public long RemoteFreesToEndedThreads { get; init; }
    /// <summary>Of <see cref="RemoteFrees"/>: frees into slabs no thread owned: let go by their thread
    /// (when it ended, or on <c>Trim</c>) with blocks still out, and waiting for those blocks in the pool.</summary>
    public long RemoteFreesToUnownedSlabs { get; init; }
    /// <summary>Of the blocks freed, those that live threads hold back in their remote-free batches
    /// (<c>SLABALLOC_REMOTE_BATCH</c>): counted as freed, not yet pushed to their slabs. A moment-old sum.</summary>
    public long BlocksInRemoteBatches { get; init; }
    /// <summary>Slabs a thread let go while blocks of theirs were still out (when it ended, or on
    /// <c>Trim</c>): each is handed over to the threads that free those blocks, then to the pool.</summary>
    public long SlabsLetGoInUse { get; init; }
    /// <summary>Slabs taken back from live threads (by <c>Trim</c>, the periodic upkeep, or a cache miss that
    /// would otherwise grow the footprint) because other threads had freed every block of theirs that was out,
    /// while the owner had not allocated from them since; each went back to the pool.</summary>
    public long SlabsTakenBack { get; init; }
    /// <summary>Of <see cref="AcquiredStage1"/>: partial slabs, taken over with blocks still out that another
    /// thread handed out.</summary>
    public long PartialSlabsAdopted { get; init; }
    /// <summary>Slab acquisitions served by stage 1 (a listed slab of the class), 2 (free slots in a mapped superslab) and 3 (a new superslab).</summary>
    public long AcquiredStage1 { get; init; }
    /// <inheritdoc cref="AcquiredStage1"/>
    public long AcquiredStage2 { get; init; }
    /// <inheritdoc cref="AcquiredStage1"/>
    public long AcquiredStage3 { get; init; }
    /// <summary>Large blocks (above 64 KiB) in use, their usable bytes, and freed large mappings kept for reuse.</summary>
    public long LargeBlocks { get; init; }
    /// <inheritdoc cref="LargeBlocks"/>
    public long LargeBytes { get; init; }
    /// <inheritdoc cref="LargeBlocks"/>
    public long LargeCachedBytes { get; init; }
    /// <summary>Buffers rented from a <see cref="SlabMemoryPool"/> whose owner was dropped without Dispose
    /// and whose block the owner's finalizer gave back, since start-up.</summary>
    public long PoolBuffersReclaimed { get; init; }
    /// <summary>Owner objects every <see cref="SlabMemoryPool"/> has created since start-up; every other rent
    /// reused a disposed owner.</summary>
    public long PoolOwnersCreated { get; init; }
    /// <summary>Ticks of the periodic upkeep run since start-up (<c>SLABALLOC_DECAY_MS</c>).</summary>
    public long UpkeepTicks { get; init; }
    /// <summary>The delay the upkeep's next tick was scheduled with, in ms: the interval while the pool is
    /// busy or has memory to hand back, up to 32 times longer (at most a minute) while the process is quiet;
    /// 0 when the upkeep is off.</summary>
    public int UpkeepDelayMs { get; init; }
    /// <summary>Per size class figures, indexed by class.</summary>
    public IReadOnlyList<SizeClassStatistics> Classes { get; init; } = Array.Empty<SizeClassStatistics>();

    /// <summary>A human-readable report, one figure per line, then one line per size class in use.</summary>
    public override string ToString()
    {
        var sb = new StringBuilder();
        void Line(string name, object value) => sb.Append(CultureInfo.InvariantCulture, $"{name,-26} {value}\n");
        Line("bytes requested (total)", BytesRequestedTotal);
        Line("bytes in use", BytesInUse);
        Line("blocks in use", BlocksInUse);
        Line("bytes mapped", BytesMapped);
        Line("superslabs", $"{Superslabs} ({EmptySuperslabs} empty; {SuperslabsMappedTotal} mapped, {SuperslabsReturnedTotal} returned in all; {SuperslabRangesKept} ranges kept)");
        Line("superslab arena", SuperslabArenaBytes == 0 ? "none"
            : $"{SuperslabArenaBytes} bytes reserved, {SuperslabArenaOpenBytes} open{(SuperslabArenaUsedUp ? "; used up" : "")}");
        Line("slabs", $"owned {SlabsOwned}, full {SlabsFull}, partial {SlabsPartial}, empty {SlabsEmpty}, reserved {SlabsReserved}; unused slots {UnusedSlots} ({ResidentUnusedSlots} resident)");
        Line("thread caches", $"{ThreadCaches} live, {ThreadCacheRecords} made, {ThreadCachesReclaimed} reclaimed; {BlocksInThreadCaches} free blocks, {BytesInFreeCaches} bytes in free caches");
        Line("cache misses", ThreadCacheMisses);
        Line("remote frees", $"{RemoteFrees} ({RemoteFreesToEndedThreads} into ended threads' slabs, {RemoteFreesToUnownedSlabs} into unowned ones; {BlocksInRemoteBatches} held in batches)");
        Line("slab acquisitions", $"stage1 {AcquiredStage1} ({PartialSlabsAdopted} partial), stage2 {AcquiredStage2}, stage3 {AcquiredStage3}");
        Line("slabs let go in use", SlabsLetGoInUse);
        Line("slabs taken back", SlabsTakenBack);
        Line("memory pool", $"{PoolOwnersCreated} owners created, {PoolBuffersReclaimed} buffers reclaimed undisposed");
        Line("large blocks", $"{LargeBlocks} ({LargeBytes} bytes), cached {LargeCachedBytes} bytes");
        Line("upkeep", UpkeepDelayMs == 0 ? $"off ({UpkeepTicks} ticks)" : $"{UpkeepTicks} ticks, next after {UpkeepDelayMs} ms");
        sb.Append("class  block  in-use  allocs  frees  owned full partial empty\n");
        foreach (SizeClassStatistics c in Classes)
        {
            if (c.Allocations == 0 && c.SlabsOwned + c.SlabsFull + c.SlabsPartial + c.SlabsEmpty == 0) continue;
            sb.Append(CultureInfo.InvariantCulture,
                $"{c.SizeClass,5} {c.BlockBytes,6} {c.BlocksInUse,7} {c.Allocations,7} {c.Frees,6} {c.SlabsOwned,6} {c.SlabsFull,4} {c.SlabsPartial,7} {c.SlabsEmpty,5}\n");
        }
        return sb.ToString();
    }
}
