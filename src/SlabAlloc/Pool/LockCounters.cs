using System.Numerics;
using SlabAlloc.Support;
using SlabAlloc.Telemetry;

namespace SlabAlloc.Pool;

/// <summary>The CAS sites of the shared pool, for lock-free statistics.</summary>
internal enum CasSite
{
    /// <summary>Stage 1: popping a slab from a class's partial or empty list.</summary>
    Stage1 = 0,
    /// <summary>Stage 2: claiming free slots in a mapped superslab.</summary>
    Stage2 = 1,
    /// <summary>Stage 3: taking a directory index for a new superslab.</summary>
    Stage3 = 2,
    /// <summary>The release path: pushing slabs onto lists, giving slots back.</summary>
    Release = 3,
}

/// <summary>
/// Optional lock statistics of the shared pool (<c>SLABALLOC_LOCK_STATS=1</c>): lock acquisitions and
/// contention per path, spin and blocking behaviour of the mutex, CAS attempts and failures per stage,
/// and retries per operation. Every counter is listed once here, and
/// <see cref="SlabLockStatistics"/> is built from <see cref="Snapshot"/>, so the two cannot drift.
/// </summary>
/// <remarks>
/// Every recording site is behind <see cref="Enabled"/>, a <c>static readonly</c> field the JIT
/// folds to a constant: with statistics off the calls vanish from the compiled code. They sit only
/// on pool operations (thread-cache misses and slab hand-overs), never on the allocation fast path.
/// Building with <c>-p:SlabAllocLockStats=false</c> removes them from the assembly altogether, which
/// is how "off costs nothing" is measured.
/// </remarks>
internal static class LockCounters
{
#if SLABALLOC_NO_LOCK_STATS
    public const bool Enabled = false;
#else
    public static readonly bool Enabled = SlabOptions.LockStats;
#endif

    public const int HistogramBuckets = 16;

    private static readonly long[] s_locks = new long[2];
    private static readonly long[] s_contended = new long[2];
    private static readonly long[] s_spinHistogram = new long[HistogramBuckets];
    private static long s_blocked;
    private static readonly long[] s_casAttempts = new long[4];
    private static readonly long[] s_casFailures = new long[4];
    private static readonly long[] s_retryHistogram = new long[HistogramBuckets];

    /// <summary>Bucket of a count in a log2 histogram: 0 → 0, 1 → 1, 2-3 → 2, 4-7 → 3, ...</summary>
    public static int Bucket(long value) => value <= 0 ? 0 : Math.Min(HistogramBuckets - 1, BitOperations.Log2((ulong)value) + 1);

    /// <summary>A mutex acquisition on <paramref name="path"/>.</summary>
    public static void RecordLock(PoolPath path, bool contended, int spins, bool blocked)
    {
        Interlocked.Increment(ref s_locks[(int)path]);
        if (!contended) return;
        Interlocked.Increment(ref s_contended[(int)path]);
        Interlocked.Increment(ref s_spinHistogram[Bucket(spins)]);
        if (blocked) Interlocked.Increment(ref s_blocked);
    }

    /// <summary>One lock-free operation at <paramref name="site"/> that needed <paramref name="failures"/> retries.</summary>
    public static void RecordCas(CasSite site, int failures)
    {
        Interlocked.Add(ref s_casAttempts[(int)site], failures + 1);
        if (failures > 0) Interlocked.Add(ref s_casFailures[(int)site], failures);
        Interlocked.Increment(ref s_retryHistogram[Bucket(failures)]);
    }

    /// <summary>Copies every counter.</summary>
    public static (long[] Locks, long[] Contended, long[] SpinHistogram, long Blocked, long[] CasAttempts, long[] CasFailures, long[] RetryHistogram) Snapshot() =>
        (Copy(s_locks), Copy(s_contended), Copy(s_spinHistogram), Volatile.Read(ref s_blocked), Copy(s_casAttempts), Copy(s_casFailures), Copy(s_retryHistogram));

    private static long[] Copy(long[] counters)
    {
        var copy = new long[counters.Length];
        for (int i = 0; i < counters.Length; i++) copy[i] = Volatile.Read(ref counters[i]);
        return copy;
    }
}
