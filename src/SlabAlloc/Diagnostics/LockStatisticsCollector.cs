using System.Runtime.CompilerServices;
using SlabAlloc.Core;
using SlabAlloc.Platform;
using SlabAlloc.Pool;

namespace SlabAlloc.Diagnostics;

/// <summary>Builds <see cref="SlabLockStatistics"/> and prints the report at process exit when
/// <c>SLABALLOC_LOCK_STATS=1</c>.</summary>
internal static class LockStatisticsCollector
{
#pragma warning disable CA2255 // a library hooks process exit only when the user asked for the report
    [ModuleInitializer]
    internal static void RegisterExitReport()
#pragma warning restore CA2255
    {
        if (!LockStatistics.Enabled) return;
        AppDomain.CurrentDomain.ProcessExit += static (_, _) => Console.Error.Write(Collect().ToReport());
    }

    public static SlabLockStatistics Collect()
    {
        SlabStatistics stats = StatisticsCollector.Collect();
        var (locks, contended, spins, blocked, casAttempts, casFailures, retries) = LockStatistics.Snapshot();
        long allocations = 0, frees = 0;
        foreach (SizeClassStatistics c in stats.Classes) { allocations += c.Allocations; frees += c.Frees; }
        allocations += LargeObjects.Allocations;
        frees += LargeObjects.Allocations - LargeObjects.LiveCount;
        return new SlabLockStatistics
        {
            Enabled = LockStatistics.Enabled,
            Pool = SlabPool.Shared.Kind,
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
