using System.Runtime.CompilerServices;
using System.Globalization;
using SlabAlloc.Runtime;

namespace SlabAlloc.Support;

/// <summary>
/// Every SlabAlloc setting, read once at start-up from an environment variable <c>SLABALLOC_*</c>
/// or, when that is unset, from the AppContext switch / runtimeconfig property of the same name
/// (for example <c>"SlabAlloc.Checked": true</c> in runtimeconfig.template.json).
/// </summary>
/// <remarks>
/// The values sit in <c>static readonly</c> fields, which the optimizing JIT treats as constants,
/// so a feature that is off costs nothing on the fast path. An invalid value throws at start-up
/// with a message naming the variable.
/// </remarks>
internal static class SlabOptions
{
    /// <summary>Reads every option now (the class constructor), so that an invalid setting fails here,
    /// naming the variable, and so that the values are read before the JIT compiles any method that
    /// folds them into constants. Called once, when the assembly loads.</summary>
    internal static void ReadAll() => RuntimeHelpers.RunClassConstructor(typeof(SlabOptions).TypeHandle);

    /// <summary><c>SLABALLOC_CHECKED</c> (default 0): track every block in a bitmap so a double free is reported.
    /// Costs two atomic bit operations per allocation and free.</summary>
    public static readonly bool Checked = ReadBool("SLABALLOC_CHECKED", "SlabAlloc.Checked", false);

    /// <summary><c>SLABALLOC_EMPTY_SLABS_PER_CLASS</c> (default 2): empty slabs kept formatted per size
    /// class before further empty slabs are released to their superslabs (pages resident until a purge);
    /// half as many, rounded up, for the eight-slot (512 KiB) slabs of classes above 8 KiB.</summary>
    public static readonly int EmptySlabsPerClass = ReadInt("SLABALLOC_EMPTY_SLABS_PER_CLASS", "SlabAlloc.EmptySlabsPerClass", 2, 0, 1 << 20);

    /// <summary><c>SLABALLOC_SHARED_EMPTY_SLABS</c> (default 64, 4 MiB): empty one-slot slabs kept formatted
    /// beyond the per-class limit, for any one-slot class to re-format, before further empty slabs are
    /// released to their superslabs. They absorb the flow of slabs from exiting threads to new ones.</summary>
    public static readonly int SharedEmptySlabs = ReadInt("SLABALLOC_SHARED_EMPTY_SLABS", "SlabAlloc.SharedEmptySlabs", 64, 0, 1 << 20);

    /// <summary><c>SLABALLOC_DECAY_MS</c> (default 1000): how often the pool gives back (decommits) the empty slabs,
    /// in the class lists and the shared reserve, that no acquisition needed since the last time, so memory
    /// kept for reuse returns to the system once the work that needed it stops, without <c>Trim</c>. Checked
    /// on the pool's release path, and by a timer at the same period that also reclaims dead threads'
    /// caches, sweeps the partial lists for emptied slabs, decommits released slots that stayed resident and
    /// unclaimed for an interval, and unmaps idle cached superslabs (the upkeep); 0 none of this, and released
    /// slots are decommitted at once.</summary>
    public static readonly int DecayMs = ReadInt("SLABALLOC_DECAY_MS", "SlabAlloc.DecayMs", 1000, 0, 1 << 30);

    /// <summary><c>SLABALLOC_SUPERSLAB_CACHE</c> (default 2): empty superslabs kept mapped before further
    /// empty ones are returned to the system.</summary>
    public static readonly int SuperslabCache = ReadInt("SLABALLOC_SUPERSLAB_CACHE", "SlabAlloc.SuperslabCache", 2, 0, 1 << 20);

    /// <summary><c>SLABALLOC_LARGE_CACHE_MB</c> (default 64): freed large blocks kept mapped for reuse, in MiB.</summary>
    public static readonly int LargeCacheMiB = ReadInt("SLABALLOC_LARGE_CACHE_MB", "SlabAlloc.LargeCacheMB", 64, 0, 1 << 20);

    /// <summary><c>SLABALLOC_PREFAULT</c> (default 0): fault every page of a new superslab in when it is
    /// mapped, so that a thread later allocating from it takes no page fault.</summary>
    public static readonly bool Prefault = ReadBool("SLABALLOC_PREFAULT", "SlabAlloc.Prefault", false);

    /// <summary><c>SLABALLOC_POOL</c> (default lockfree): <c>lockfree</c> or <c>mutex</c>, the baseline
    /// with the same three stages under one coarse lock.</summary>
    public static readonly bool MutexPool = ReadMutexPool();

    /// <summary><c>SLABALLOC_LOCK_STATS</c> (default 0): count lock acquisitions, contention, spins and CAS
    /// retries in the shared pool, and print the report to stderr at exit. One atomic add per pool event.</summary>
    public static readonly bool LockStats = ReadBool("SLABALLOC_LOCK_STATS", "SlabAlloc.LockStats", false);

    /// <summary><c>SLABALLOC_THREAD_CACHE_LIMIT</c> (default 0 = unlimited): the most free blocks a thread
    /// cache takes from a slab at a time. When set, a thread that runs dry hands its slab back to the
    /// shared pool and takes one from it again, instead of keeping it: every few allocations reach the
    /// pool. A stress setting for comparing pools, not for production.</summary>
    public static readonly int ThreadCacheLimit = ReadInt("SLABALLOC_THREAD_CACHE_LIMIT", "SlabAlloc.ThreadCacheLimit", 0, 0, 1 << 20);

    /// <summary><c>SLABALLOC_REMOTE_BATCH</c> (default 32): the most frees of blocks of another thread's slab
    /// that a thread holds back to push to that slab together, with one CAS. A thread keeps one batch per size
    /// class: its frees of a class into one slab are batched, whatever frees of other classes come between, and a
    /// free of the class into another slab pushes the class's batch first. The held blocks count as freed; their
    /// slab gets them at the latest at the freeing thread's next cache miss, at any thread's call to
    /// <c>Trim</c> (which claims live threads' batches), or when the thread has ended and its cache is
    /// reclaimed. So a live thread that frees into other threads' slabs and then stops allocating keeps at
    /// most that many blocks of one slab per class from them until the next <c>Trim</c>. 0 pushes every remote
    /// free at once.</summary>
    public static readonly int RemoteBatch = ReadInt("SLABALLOC_REMOTE_BATCH", "SlabAlloc.RemoteBatch", 32, 0, 4096);

    /// <summary><c>SLABALLOC_MAX_MAPPED_MB</c> (default 0 = unlimited): the most memory SlabAlloc maps from the
    /// system, metadata included, in MiB. Past it, allocations throw <see cref="OutOfMemoryException"/>;
    /// memory freed afterwards can be allocated again. One comparison per mapping (never on the fast path).</summary>
    public static readonly int MaxMappedMiB = ReadInt("SLABALLOC_MAX_MAPPED_MB", "SlabAlloc.MaxMappedMB", 0, 0, int.MaxValue);

    /// <summary><c>SLABALLOC_PORTABLE_REGIONS</c> (default 0): run, on Linux too, the portable platform layer that
    /// other systems get, so that it is tested here: regions come from <c>NativeMemory.AlignedAlloc</c> instead
    /// of <c>mmap</c>, with no decommit (decayed slabs stay resident, and returned superslabs stay allocated and
    /// counted as mapped until a new superslab reuses them), no address-space reservations (no superslab
    /// bitmap: <c>Free</c> asks the radix map), and no stack map (the thread cache is found through the
    /// thread-static). The process counters still read <c>/proc</c>. For testing: it costs the memory the Linux
    /// layer gives back, and the thread-static reads (docs/design-measurements.md, "Stack map instead of
    /// thread-static reads").</summary>
    public static readonly bool PortableRegions = ReadBool("SLABALLOC_PORTABLE_REGIONS", "SlabAlloc.PortableRegions", false);

    /// <summary><c>SLABALLOC_HARDENED</c> (default 1): free-list links are stored XORed with a per-slab secret
    /// and checked when followed, and an immediate double free on the owner's list is rejected, so a heap
    /// overflow or a double free is reported as corruption instead of handing out arbitrary memory.
    /// Measured cost: docs/design-measurements.md, "Free-list hardening"; 0 turns it off.</summary>
    public static readonly bool Hardened = ReadBool("SLABALLOC_HARDENED", "SlabAlloc.Hardened", true);

    /// <summary><c>SLABALLOC_WARMUP</c> (default 1): when the assembly loads, a background thread runs the
    /// allocator's common paths once (48 blocks from 64 B to a 128 KiB large block, all freed, its slabs
    /// handed back) so that the JIT compiles them and the runtime loads their types while the program is
    /// still starting, instead of on the program's first allocations (the warm-up).
    /// Costs that thread a few milliseconds of CPU once; the statistics count its blocks and its thread
    /// cache. Skipped under Native AOT and when <c>SLABALLOC_MAX_MAPPED_MB</c> is set.</summary>
    public static readonly bool WarmUp = ReadBool("SLABALLOC_WARMUP", "SlabAlloc.WarmUp", true);

    private static string? Raw(string variable, string switchName)
    {
        string? value = Environment.GetEnvironmentVariable(variable);
        if (!string.IsNullOrEmpty(value)) return value.Trim();
        object? data = AppContext.GetData(switchName);
        return data?.ToString();
    }

    private static bool ReadBool(string variable, string switchName, bool fallback)
    {
        string? raw = Raw(variable, switchName);
        if (raw is null) return fallback;
        return raw.ToLowerInvariant() switch
        {
            "1" or "true" or "yes" or "on" => true,
            "0" or "false" or "no" or "off" => false,
            _ => throw Invalid(variable, raw, "expected 0/1, true/false, yes/no or on/off"),
        };
    }

    private static int ReadInt(string variable, string switchName, int fallback, int min, int max)
    {
        string? raw = Raw(variable, switchName);
        if (raw is null) return fallback;
        if (!int.TryParse(raw, NumberStyles.Integer, CultureInfo.InvariantCulture, out int value) || value < min || value > max)
            throw Invalid(variable, raw, $"expected a whole number from {min} to {max}");
        return value;
    }

    private static bool ReadMutexPool()
    {
        string? raw = Raw("SLABALLOC_POOL", "SlabAlloc.Pool");
        if (raw is null) return false;
        return raw.ToLowerInvariant() switch
        {
            "lockfree" or "lock-free" => false,
            "mutex" => true,
            _ => throw Invalid("SLABALLOC_POOL", raw, "expected lockfree or mutex"),
        };
    }

    private static InvalidOperationException Invalid(string variable, string raw, string expected) =>
        new($"SlabAlloc: invalid value '{raw}' for {variable}: {expected}.");
}
