using SlabAlloc.Frontend;
using SlabAlloc.Large;
using SlabAlloc.Memory;
using SlabAlloc.Platform;
using SlabAlloc.Pool;

namespace SlabAlloc;

/// <summary>
/// Builds a <see cref="SlabStatistics"/> snapshot. Reads only memory that is never unmapped (thread
/// heaps, the directory and its slab metadata), so it is safe while other threads allocate and free.
/// </summary>
internal static unsafe class StatisticsCollector
{
    /// <param name="upkeepTicks">The periodic upkeep's figures, which live above this layer (see <see cref="SlabStatistics.UpkeepTicks"/>).</param>
    /// <param name="upkeepDelayMs">See <see cref="SlabStatistics.UpkeepDelayMs"/>.</param>
    public static SlabStatistics Collect(long upkeepTicks = 0, int upkeepDelayMs = 0)
    {
        var allocs = new long[SizeClasses.Count];
        var frees = new long[SizeClasses.Count];
        for (int c = 0; c < SizeClasses.Count; c++) frees[c] = SmallBlocks.UnattachedFrees(c);
        long requested = 0, misses = 0, remote = 0, remoteToEnded = 0, remoteToUnowned = 0, cachedBlocks = 0, freeCacheBytes = 0, batched = 0;
        int live = 0;
        for (ThreadCacheRecord? r = ThreadCacheRecords.Head; r != null; r = r.Next)
        {
            ThreadCache* h = r.Heap;
            for (int c = 0; c < SizeClasses.Count; c++)
            {
                allocs[c] += Volatile.Read(ref h->AllocCount[c]);
                frees[c] += Volatile.Read(ref h->FreeCount[c]);
            }
            requested += Volatile.Read(ref h->RequestedBytes);
            misses += Volatile.Read(ref h->CacheMisses);
            remote += Volatile.Read(ref h->RemoteFrees);
            remoteToEnded += Volatile.Read(ref h->RemoteFreesToEnded);
            remoteToUnowned += Volatile.Read(ref h->RemoteFreesToUnowned);
            if (!ThreadCacheRecords.IsLive(r)) continue;
            live++;
            for (int c = 0; c < SizeClasses.Count; c++) batched += Volatile.Read(ref ThreadCache.RemoteBatchOf(h, c)->Count);
            freeCacheBytes += Volatile.Read(ref h->FreeCacheBytes);
            for (int c = 0; c < SizeClasses.Count; c++)
            {
                var s = (SlabMeta*)Volatile.Read(ref h->Current[c]);
                if (!SmallBlocks.IsEmptySlab(s)) cachedBlocks += Math.Max(0, s->Capacity - s->Used);
            }
        }

        var owned = new int[SizeClasses.Count];
        var full = new int[SizeClasses.Count];
        var partial = new int[SizeClasses.Count];
        var empty = new int[SizeClasses.Count];
        int superslabs = 0, unusedSlots = 0, residentSlots = 0, reserved = 0;
        int count = SuperslabDirectory.Count;
        for (uint i = 0; i < count; i++)
        {
            SuperslabEntry* e = SuperslabDirectory.Entry(i);
            if (Volatile.Read(ref e->Live) == 0) continue;
            superslabs++;
            unusedSlots += System.Numerics.BitOperations.PopCount((ulong)Volatile.Read(ref e->FreeMask));
            residentSlots += Superslabs.ResidentFreeSlots(e);
            for (int slot = 1; slot < Geometry.SlotsPerSuperslab; slot++)
            {
                SlabMeta* s = SuperslabEntry.Slab(e, slot);
                int c = s->ClassIndex;
                switch (s->Lifecycle)
                {
                    case SlabLifecycle.Owned: owned[c]++; break;
                    case SlabLifecycle.Full: full[c]++; break;
                    case SlabLifecycle.Partial: partial[c]++; break;
                    case SlabLifecycle.Empty: empty[c]++; break;
                    case SlabLifecycle.Reserved: reserved++; break;
                }
            }
        }

        var classes = new SizeClassStatistics[SizeClasses.Count];
        long inUseBytes = LargeObjects.LiveBytes, inUseBlocks = LargeObjects.LiveCount;
        for (int c = 0; c < SizeClasses.Count; c++)
        {
            classes[c] = new SizeClassStatistics(c, SizeClasses.BlockBytes(c), allocs[c], frees[c], owned[c], full[c], partial[c], empty[c]);
            inUseBlocks += allocs[c] - frees[c];
            inUseBytes += (allocs[c] - frees[c]) * SizeClasses.BlockBytes(c);
        }

        PoolCounters pool = SlabPool.Shared.Counters;
        (_, nuint arenaBytes, nuint arenaOpen) = SuperslabArena.Range;
        return new SlabStatistics
        {
            BytesRequestedTotal = requested,
            BytesInUse = inUseBytes,
            BlocksInUse = inUseBlocks,
            BytesMapped = OsMemory.MappedBytes,
            Superslabs = superslabs,
            EmptySuperslabs = Superslabs.EmptyCount,
            SuperslabsMappedTotal = Superslabs.MappedCount,
            SuperslabsReturnedTotal = Superslabs.RetiredCount,
            SuperslabRangesKept = Superslabs.KeptRangeCount,
            SuperslabArenaBytes = (long)arenaBytes,
            SuperslabArenaOpenBytes = (long)arenaOpen,
            SuperslabArenaUsedUp = SuperslabArena.IsUsedUp,
            UnusedSlots = unusedSlots,
            ResidentUnusedSlots = residentSlots,
            SlabsOwned = owned.Sum(),
            SlabsFull = full.Sum(),
            SlabsPartial = partial.Sum(),
            SlabsEmpty = empty.Sum(),
            SlabsReserved = reserved,
            BlocksInThreadCaches = cachedBlocks,
            BytesInFreeCaches = freeCacheBytes,
            ThreadCaches = live,
            ThreadCacheRecords = ThreadCacheRecords.RecordCount,
            ThreadCachesReclaimed = ThreadCacheRecords.Reclaimed,
            ThreadCacheMisses = misses,
            RemoteFrees = remote,
            RemoteFreesToEndedThreads = remoteToEnded,
            RemoteFreesToUnownedSlabs = remoteToUnowned,
            BlocksInRemoteBatches = batched,
            SlabsLetGoInUse = SmallBlocks.SlabsLetGoInUse,
            SlabsTakenBack = SmallBlocks.SlabsTakenBack,
            PartialSlabsAdopted = Volatile.Read(ref pool.Stage1Partial),
            AcquiredStage1 = Volatile.Read(ref pool.Stage1),
            AcquiredStage2 = Volatile.Read(ref pool.Stage2),
            AcquiredStage3 = Volatile.Read(ref pool.Stage3),
            LargeBlocks = LargeObjects.LiveCount,
            LargeBytes = LargeObjects.LiveBytes,
            LargeCachedBytes = LargeObjects.CachedBytes,
            PoolBuffersReclaimed = SlabMemoryPool.Reclaimed,
            PoolOwnersCreated = SlabMemoryPool.OwnersCreated,
            UpkeepTicks = upkeepTicks,
            UpkeepDelayMs = upkeepDelayMs,
            Classes = classes,
        };
    }
}
