using System.Globalization;
using System.Text;
using SlabAlloc.Memory;

namespace SlabAlloc;

/// <summary>
/// The shared pool's lock statistics (<c>SLABALLOC_LOCK_STATS=1</c>), from
/// <see cref="SlabMemory.GetLockStatistics"/>. With statistics off, the lock and CAS counters are zero
/// and <see cref="Enabled"/> is false; the stage, cache and superslab figures are always counted.
/// </summary>
public sealed class SlabLockStatistics
{
    /// <summary>The heading of the text report, for grep.</summary>
    public const string ReportHeading = "=== SLABALLOC SHARED POOL LOCK STATISTICS ===";

    /// <summary>Whether lock and CAS counting was on.</summary>
    public bool Enabled { get; init; }
    /// <summary>The pool this process runs.</summary>
    public SlabPoolKind Pool { get; init; }
    /// <summary>Allocations and frees served so far (slab and large).</summary>
    public long Allocations { get; init; }
    /// <inheritdoc cref="Allocations"/>
    public long Frees { get; init; }
    /// <summary>Allocations plus frees: the denominator of <see cref="LockRate"/>.</summary>
    public long AllocatorOperations => Allocations + Frees;
    /// <summary>Mutex acquisitions on the acquire_slab path (stages 1-3) and the release_slab path.</summary>
    public long AcquireSlabLocks { get; init; }
    /// <inheritdoc cref="AcquireSlabLocks"/>
    public long ReleaseSlabLocks { get; init; }
    /// <summary>Acquisitions that found the mutex taken, per path.</summary>
    public long AcquireSlabContended { get; init; }
    /// <inheritdoc cref="AcquireSlabContended"/>
    public long ReleaseSlabContended { get; init; }
    /// <summary>All mutex acquisitions. Exactly zero for the lock-free pool.</summary>
    public long LockAcquisitions => AcquireSlabLocks + ReleaseSlabLocks;
    /// <summary>All contended mutex acquisitions.</summary>
    public long ContendedAcquisitions => AcquireSlabContended + ReleaseSlabContended;
    /// <summary>Lock acquisitions per allocator operation.</summary>
    public double LockRate => AllocatorOperations == 0 ? 0 : (double)LockAcquisitions / AllocatorOperations;
    /// <summary>Contended acquisitions by spin iterations before the lock was obtained, in log2 buckets
    /// (bucket 0: 0, 1: 1, 2: 2-3, 3: 4-7, ...).</summary>
    public IReadOnlyList<long> SpinHistogram { get; init; } = Array.Empty<long>();
    /// <summary>Acquisitions that gave up spinning and blocked in the kernel.</summary>
    public long BlockedAcquisitions { get; init; }
    /// <summary>CAS attempts and failed CAS at stage 1, 2, 3 and on the release path.</summary>
    public IReadOnlyList<long> CasAttempts { get; init; } = Array.Empty<long>();
    /// <inheritdoc cref="CasAttempts"/>
    public IReadOnlyList<long> CasFailures { get; init; } = Array.Empty<long>();
    /// <summary>All failed CAS attempts (retries).</summary>
    public long CasRetries => CasFailures.Sum();
    /// <summary>Lock-free operations by number of retries, in log2 buckets as <see cref="SpinHistogram"/>.</summary>
    public IReadOnlyList<long> RetryHistogram { get; init; } = Array.Empty<long>();
    /// <summary>Slab acquisitions served by stage 1, 2 and 3.</summary>
    public long Stage1 { get; init; }
    /// <inheritdoc cref="Stage1"/>
    public long Stage2 { get; init; }
    /// <inheritdoc cref="Stage1"/>
    public long Stage3 { get; init; }
    /// <summary>Allocations that missed the thread cache.</summary>
    public long ThreadCacheMisses { get; init; }
    /// <summary>Share of allocations served from the thread cache without a refill.</summary>
    public double ThreadCacheHitRate => Allocations == 0 ? 1 : 1 - (double)ThreadCacheMisses / Allocations;
    /// <summary>Frees of blocks another thread owned.</summary>
    public long RemoteFrees { get; init; }
    /// <summary>Superslabs mapped and returned to the OS since start-up.</summary>
    public long SuperslabsMapped { get; init; }
    /// <inheritdoc cref="SuperslabsMapped"/>
    public long SuperslabsUnmapped { get; init; }
    /// <summary>Context switches and page faults of the process since it started.</summary>
    public ProcessCounters Process { get; init; }

    private static readonly string[] SiteNames = ["stage1", "stage2", "stage3", "release"];

    /// <summary>The stable, greppable text report printed at exit.</summary>
    public string ToReport()
    {
        var sb = new StringBuilder();
        void Line(FormattableString s) => sb.Append(s.ToString(CultureInfo.InvariantCulture)).Append('\n');
        static double Percent(long part, long whole) => whole == 0 ? 0 : 100.0 * part / whole;

        sb.Append(ReportHeading).Append('\n');
        Line($"Pool: {(Pool == SlabPoolKind.Mutex ? "mutex" : "lockfree")}");
        Line($"Lock statistics: {(Enabled ? "on" : "off")}");
        Line($"Allocator operations: {AllocatorOperations} ({Allocations} allocations + {Frees} frees)");
        Line($"Total lock acquisitions: {LockAcquisitions}");
        Line($"Lock rate: {LockRate * 100:F3}%");
        Line($"Contended acquisitions: {ContendedAcquisitions} ({Percent(ContendedAcquisitions, LockAcquisitions):F1}%)");
        sb.Append("--- Breakdown by Code Path ---\n");
        Line($"acquire_slab(): {AcquireSlabLocks} ({Percent(AcquireSlabLocks, LockAcquisitions):F1}%), contended {AcquireSlabContended}");
        Line($"release_slab(): {ReleaseSlabLocks} ({Percent(ReleaseSlabLocks, LockAcquisitions):F1}%), contended {ReleaseSlabContended}");
        sb.Append("--- Mutex spinning ---\n");
        Line($"spins before acquisition (log2 buckets): {Histogram(SpinHistogram)}");
        Line($"blocked after spinning: {BlockedAcquisitions}");
        sb.Append("--- Lock-free CAS ---\n");
        for (int i = 0; i < SiteNames.Length && i < CasAttempts.Count; i++)
            Line($"{SiteNames[i]}: attempts {CasAttempts[i]}, failed {CasFailures[i]}");
        Line($"retries per operation (log2 buckets): {Histogram(RetryHistogram)}");
        sb.Append("--- Slab acquisitions by stage ---\n");
        long acquisitions = Stage1 + Stage2 + Stage3;
        Line($"stage1 (reuse listed slab): {Stage1} ({Percent(Stage1, acquisitions):F1}%)");
        Line($"stage2 (claim unused slots): {Stage2} ({Percent(Stage2, acquisitions):F1}%)");
        Line($"stage3 (map new superslab): {Stage3} ({Percent(Stage3, acquisitions):F1}%)");
        sb.Append("--- Thread caches ---\n");
        Line($"hit rate: {ThreadCacheHitRate * 100:F3}% ({ThreadCacheMisses} misses)");
        Line($"remote frees: {RemoteFrees}");
        sb.Append("--- Superslabs ---\n");
        Line($"mapped: {SuperslabsMapped}, unmapped: {SuperslabsUnmapped}");
        sb.Append("--- Process ---\n");
        Line($"voluntary context switches: {Process.VoluntaryContextSwitches}");
        Line($"involuntary context switches: {Process.InvoluntaryContextSwitches}");
        Line($"minor page faults: {Process.MinorPageFaults}");
        Line($"major page faults: {Process.MajorPageFaults}");
        sb.Append("=== END SLABALLOC SHARED POOL LOCK STATISTICS ===\n");
        return sb.ToString();
    }

    private static string Histogram(IReadOnlyList<long> buckets)
    {
        var parts = new List<string>();
        for (int b = 0; b < buckets.Count; b++)
        {
            if (buckets[b] == 0) continue;
            string range = b switch { 0 => "0", 1 => "1", _ => $"{1 << (b - 1)}-{(1 << b) - 1}" };
            parts.Add(string.Create(CultureInfo.InvariantCulture, $"{range}:{buckets[b]}"));
        }
        return parts.Count == 0 ? "(none)" : string.Join(' ', parts);
    }
}
