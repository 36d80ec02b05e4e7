using SlabAlloc.Large;
using SlabAlloc.Pool;
using SlabAlloc.Telemetry;

namespace SlabAlloc;

/// <summary>Builds <see cref="SlabLockStatistics"/> from the pool's lock counters and the statistics.</summary>
internal static class LockStatisticsCollector
{
    public static SlabLockStatistics Collect()
    {
        SlabStatistics stats = StatisticsCollector.Collect();
        var (locks, contended, spins, blocked, casAttempts, casFailures, retries) = LockCounters.Snapshot();
        long allocations = 0, frees = 0;
        foreach (SizeClassStatistics c in stats.Classes) { allocations += c.Allocations; frees += c.Frees; }
        allocations += LargeObjects.Allocations;
        frees += LargeObjects.Allocations - LargeObjects.LiveCount;
        return new SlabLockStatistics
        {
            Enabled = LockCounters.Enabled,
            Pool = SlabPool.Shared.IsMutex ? SlabPoolKind.Mutex : SlabPoolKind.LockFree,
            Allocations = allocations,
            Frees = frees,
            AcquireSlabLocks = locks[(int)PoolPath.AcquireSlab],
            ReleaseSlabLocks = locks[(int)PoolPath.ReleaseSlab],
            AcquireSlabContended = contended[(int)PoolPath.AcquireSlab],
            ReleaseSlabContended = contended[(int)PoolPath.ReleaseSlab],
            SpinHistogram = spins,
            BlockedAcquisitions = blocked,
            CasAttempts = casAttempts,
            CasFailures = casFailures,
            RetryHistogram = retries,
            Stage1 = stats.AcquiredStage1,
            Stage2 = stats.AcquiredStage2,
            Stage3 = stats.AcquiredStage3,
            ThreadCacheMisses = stats.ThreadCacheMisses,
            RemoteFrees = stats.RemoteFrees,
            SuperslabsMapped = stats.SuperslabsMappedTotal,
            SuperslabsUnmapped = stats.SuperslabsReturnedTotal,
            Process = ProcessCounters.Read(),
        };
    }
}
