using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Runtime.CompilerServices;
using SlabAlloc.Memory;
using SlabAlloc.Runtime;
using SlabAlloc.Support;

namespace SlabAlloc.Telemetry;

/// <summary>
/// SlabAlloc's <see cref="System.Diagnostics.Metrics.Meter"/>: observable instruments over
/// <see cref="SlabMemory.GetStatistics"/> and <see cref="SlabMemory.GetLockStatistics"/>.
/// </summary>
/// <remarks>
/// Every instrument is observable: its callback runs only when a listener collects, so the allocator's
/// paths carry no metrics code at all, and with no listener nothing here runs after start-up.
/// </remarks>
internal static class SlabMeter
{
    private static Meter? s_meter;
    private static readonly Lock s_createGate = new();

    /// <summary>The meter, created now if the background creation has not finished yet.</summary>
    internal static Meter Meter => Volatile.Read(ref s_meter) ?? Create();

    /// <summary>The instruments' names. An instrument's index in <see cref="All"/> is the number its
    /// callback passes to <see cref="Read"/>, and its bit in <see cref="Snapshot.Consumed"/>.</summary>
    internal static class Names
    {
        public const string MemoryInUse = "slaballoc.memory.in_use";
        public const string MemoryMapped = "slaballoc.memory.mapped";
        public const string Superslabs = "slaballoc.superslabs";
        public const string Slabs = "slaballoc.slabs";
        public const string UnusedSlots = "slaballoc.slots.unused";
        public const string ThreadCacheHitRatio = "slaballoc.thread_cache.hit_ratio";
        public const string ThreadCacheMisses = "slaballoc.thread_cache.misses";
        public const string RemoteFrees = "slaballoc.remote_frees";
        public const string Allocations = "slaballoc.allocations";
        public const string Frees = "slaballoc.frees";
        public const string LockAcquisitions = "slaballoc.pool.lock.acquisitions";
        public const string LockContended = "slaballoc.pool.lock.contended_acquisitions";
        public const string CasRetries = "slaballoc.pool.cas.retries";
        public const string RemoteFreesToEndedThreads = "slaballoc.remote_frees.to_ended_threads";
        public const string RemoteFreesToUnownedSlabs = "slaballoc.remote_frees.to_unowned_slabs";
        public const string SlabsLetGoInUse = "slaballoc.slabs.let_go_in_use";
        public const string PartialSlabsAdopted = "slaballoc.slabs.partial_adopted";
        public const string PoolBuffersReclaimed = "slaballoc.memory_pool.buffers_reclaimed";
        public const string PoolOwnersCreated = "slaballoc.memory_pool.owners_created";
        public const string SlabsTakenBack = "slaballoc.slabs.taken_back";

        public static readonly string[] All =
        [
            MemoryInUse, MemoryMapped, Superslabs, Slabs, UnusedSlots, ThreadCacheHitRatio, ThreadCacheMisses,
            RemoteFrees, Allocations, Frees, LockAcquisitions, LockContended, CasRetries,
            RemoteFreesToEndedThreads, RemoteFreesToUnownedSlabs, SlabsLetGoInUse, PartialSlabsAdopted,
            PoolBuffersReclaimed, PoolOwnersCreated, SlabsTakenBack,
        ];
    }

    // Tags, built once: a Measurement copies them, so sharing the arrays is safe.
    private static readonly KeyValuePair<string, object?>[] s_stateOwned = [new("state", "owned")];
    private static readonly KeyValuePair<string, object?>[] s_stateFull = [new("state", "full")];
    private static readonly KeyValuePair<string, object?>[] s_statePartial = [new("state", "partial")];
    private static readonly KeyValuePair<string, object?>[] s_stateEmpty = [new("state", "empty")];
    private static readonly KeyValuePair<string, object?>[] s_stateReserved = [new("state", "reserved")];
    private static readonly KeyValuePair<string, object?>[] s_pathAcquire = [new("path", "acquire_slab")];
    private static readonly KeyValuePair<string, object?>[] s_pathRelease = [new("path", "release_slab")];
    private static readonly KeyValuePair<string, object?>[][] s_casSites =
        [[new("site", "stage1")], [new("site", "stage2")], [new("site", "stage3")], [new("site", "release")]];

    /// <summary>Publishes the meter unless it exists: called by <see cref="StartUp"/> on its background
    /// thread once the warm-up is done, so that nothing has to ask for the meter before a listener can
    /// see it (listeners see a meter published after they started: their <c>InstrumentPublished</c>
    /// callback runs then); anything that needs it at once gets it from <see cref="Meter"/>. Never
    /// throws (metrics are optional: nothing that goes wrong here may stop the allocator, or, on a
    /// background thread, end the process; a listener's own <c>InstrumentPublished</c> callback runs
    /// inside the publication, for one).</summary>
    internal static void TryCreate()
    {
        try { Create(); }
        catch (Exception e) { SlabLog.ErrorDetected(e); } // no meter then (logged, if a logger is set by now)
    }

    /// <summary>Creates and publishes the meter once; later calls return it.</summary>
    private static Meter Create()
    {
        lock (s_createGate)
        {
            return s_meter ?? Publish();
        }
    }

    private static Meter Publish()
    {
        var m = new Meter(SlabAllocMetrics.MeterName);
        try
        {
            AddInstruments(m);
        }
        catch
        {
            m.Dispose(); // withdraws what was published, so a later attempt does not publish a second meter
            throw;
        }
        Volatile.Write(ref s_meter, m);
        return m;
    }

    private static void AddInstruments(Meter m)
    {
        m.CreateObservableUpDownCounter(Names.MemoryInUse, () => Read(0).Stats.BytesInUse, "By",
            "Bytes of blocks handed out and not yet freed (size-class sizes, plus large blocks' usable sizes).");
        m.CreateObservableUpDownCounter(Names.MemoryMapped, () => Read(1).Stats.BytesMapped, "By",
            "Bytes currently mapped from the operating system, metadata included.");
        m.CreateObservableUpDownCounter(Names.Superslabs, () => Read(2).Stats.Superslabs, "{superslab}",
            "Superslabs (4 MiB regions) currently mapped.");
        m.CreateObservableUpDownCounter(Names.Slabs, ObserveSlabs, "{slab}",
            "Slabs by state: owned by a thread cache, full with no owner, partial or empty in the pool's lists.");
        m.CreateObservableUpDownCounter(Names.UnusedSlots, () => Read(4).Stats.UnusedSlots, "{slot}",
            "64 KiB slots of mapped superslabs that belong to no slab.");
        m.CreateObservableGauge(Names.ThreadCacheHitRatio, () => Read(5).Locks.ThreadCacheHitRate, "1",
            "Share of allocations since start-up served from the thread cache without a refill (0..1).");
        m.CreateObservableCounter(Names.ThreadCacheMisses, () => Read(6).Locks.ThreadCacheMisses, "{allocation}",
            "Allocations that missed the thread cache and had to refill.");
        m.CreateObservableCounter(Names.RemoteFrees, () => Read(7).Locks.RemoteFrees, "{free}",
            "Frees of blocks whose slab another thread owned.");
        m.CreateObservableCounter(Names.Allocations, () => Read(8).Locks.Allocations, "{allocation}",
            "Allocations served (slab and large blocks).");
        m.CreateObservableCounter(Names.Frees, () => Read(9).Locks.Frees, "{free}",
            "Frees served (slab and large blocks).");
        m.CreateObservableCounter(Names.LockAcquisitions, ObserveLocks, "{acquisition}",
            "Shared-pool mutex acquisitions per path (SLABALLOC_LOCK_STATS=1; zero for the lock-free pool).");
        m.CreateObservableCounter(Names.LockContended, ObserveContended, "{acquisition}",
            "Shared-pool mutex acquisitions that found the mutex taken, per path (SLABALLOC_LOCK_STATS=1).");
        m.CreateObservableCounter(Names.CasRetries, ObserveCasRetries, "{retry}",
            "Failed CAS attempts in the shared pool, per site (SLABALLOC_LOCK_STATS=1).");
        m.CreateObservableCounter(Names.RemoteFreesToEndedThreads, () => Read(13).Stats.RemoteFreesToEndedThreads, "{free}",
            "Remote frees into slabs whose owner thread had ended and whose cache was not yet reclaimed.");
        m.CreateObservableCounter(Names.RemoteFreesToUnownedSlabs, () => Read(14).Stats.RemoteFreesToUnownedSlabs, "{free}",
            "Remote frees into slabs no thread owned (let go by their thread, or handed back with a dead thread's cache).");
        m.CreateObservableCounter(Names.SlabsLetGoInUse, () => Read(15).Stats.SlabsLetGoInUse, "{slab}",
            "Slabs a thread cache let go while blocks of theirs were still out: handed over to whichever thread frees them.");
        m.CreateObservableCounter(Names.PartialSlabsAdopted, () => Read(16).Stats.PartialSlabsAdopted, "{slab}",
            "Slabs with free blocks taken from the pool's partial lists by a thread cache.");
        m.CreateObservableCounter(Names.PoolBuffersReclaimed, () => Read(17).Stats.PoolBuffersReclaimed, "{buffer}",
            "Buffers rented from SlabMemoryPool that were dropped without Dispose and given back by their finalizer.");
        m.CreateObservableCounter(Names.PoolOwnersCreated, () => Read(18).Stats.PoolOwnersCreated, "{owner}",
            "Owner objects created by SlabMemoryPool; every other rent reused a disposed one.");
        m.CreateObservableCounter(Names.SlabsTakenBack, () => Read(19).Stats.SlabsTakenBack, "{slab}",
            "Slabs taken back from live threads because other threads had freed every block of theirs that was out.");
    }

    private static Measurement<int>[] ObserveSlabs()
    {
        SlabStatistics s = Read(3).Stats;
        return
        [
            new(s.SlabsOwned, s_stateOwned), new(s.SlabsFull, s_stateFull),
            new(s.SlabsPartial, s_statePartial), new(s.SlabsEmpty, s_stateEmpty),
            new(s.SlabsReserved, s_stateReserved),
        ];
    }

    private static Measurement<long>[] ObserveLocks()
    {
        SlabLockStatistics l = Read(10).Locks;
        return [new(l.AcquireSlabLocks, s_pathAcquire), new(l.ReleaseSlabLocks, s_pathRelease)];
    }

    private static Measurement<long>[] ObserveContended()
    {
        SlabLockStatistics l = Read(11).Locks;
        return [new(l.AcquireSlabContended, s_pathAcquire), new(l.ReleaseSlabContended, s_pathRelease)];
    }

    private static Measurement<long>[] ObserveCasRetries()
    {
        SlabLockStatistics l = Read(12).Locks;
        var m = new Measurement<long>[Math.Min(l.CasFailures.Count, s_casSites.Length)];
        for (int i = 0; i < m.Length; i++) m[i] = new(l.CasFailures[i], s_casSites[i]);
        return m;
    }

    // One snapshot per collection pass. A listener collects by calling every enabled instrument's
    // callback one after another; building the statistics walks every thread heap and every
    // superslab's slab metadata, so each callback must not build its own. The callbacks share one
    // snapshot and each marks its bit in Consumed. A snapshot is rebuilt when the instrument asking
    // has already read it (a callback running again means a new pass, however soon after the last
    // one, so two passes around an allocation never see the same figures) or when it is older than
    // MaxAge (so an instrument that one listener reads much later than another listener's pass does
    // not get stale figures). A pass costs one GetStatistics() walk plus one GetLockStatistics()
    // (which walks the thread heaps and the directory once more for its allocation counts).
    internal static TimeSpan MaxAge = TimeSpan.FromMilliseconds(50); // settable for tests only
    private static readonly Lock s_gate = new();
    private static Snapshot? s_current;
    private static long s_snapshots;
    private static long s_callbacks;

    /// <summary>Snapshots built so far: one per collection pass. Unchanged while no listener collects.</summary>
    internal static long SnapshotsTaken => Volatile.Read(ref s_snapshots);

    /// <summary>Instrument callbacks run so far. Unchanged while no listener collects.</summary>
    internal static long CallbackInvocations => Volatile.Read(ref s_callbacks);

    internal sealed class Snapshot(SlabStatistics stats, SlabLockStatistics locks)
    {
        public SlabStatistics Stats { get; } = stats;
        public SlabLockStatistics Locks { get; } = locks;
        public long Timestamp { get; } = Stopwatch.GetTimestamp();
        /// <summary>Bit i: the instrument at <c>Names.All[i]</c> has read this snapshot.</summary>
        public int Consumed;
    }

    /// <summary>The current pass's snapshot, for the instrument at <paramref name="instrument"/> in <see cref="Names.All"/>.</summary>
    private static Snapshot Read(int instrument)
    {
        int bit = 1 << instrument;
        lock (s_gate)
        {
            Interlocked.Increment(ref s_callbacks);
            Snapshot? s = s_current;
            if (s is null || (s.Consumed & bit) != 0 || Stopwatch.GetElapsedTime(s.Timestamp) > MaxAge)
            {
                s = new Snapshot(SlabMemory.GetStatistics(), SlabMemory.GetLockStatistics());
                s_current = s;
                Interlocked.Increment(ref s_snapshots);
            }
            s.Consumed |= bit;
            return s;
        }
    }
}
