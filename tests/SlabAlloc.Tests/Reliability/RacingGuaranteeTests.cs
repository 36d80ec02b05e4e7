using static SlabAlloc.Tests.ProbeProcess;

namespace SlabAlloc.Tests.Reliability;

/// <summary>
/// Every promise of the README's Errors table and of "What the default mode guarantees", attacked the
/// way it will be attacked: with threads racing on one pointer. Each race runs in a child process
/// (tests/SlabAlloc.CheckedProbe, <c>race &lt;name&gt; &lt;ms&gt;</c>, one file per race under Races/), because a broken
/// promise corrupts the allocator or crashes the process; the race reports every broken promise, and a
/// crash leaves no <c>PROBE_OK</c>. The pool is the test run's (<c>./build.sh test</c> runs the suite with
/// each pool) unless a race needs the mutex pool. The Stress versions run each race for a minute.
/// </summary>
public sealed class RacingGuaranteeTests
{
    private const string NothingKept = "SLABALLOC_EMPTY_SLABS_PER_CLASS=0 SLABALLOC_SHARED_EMPTY_SLABS=0 SLABALLOC_SUPERSLAB_CACHE=0 SLABALLOC_DECAY_MS=0";

    /// <summary>Each race with the settings it needs ("" for the defaults).</summary>
    public static TheoryData<string, string> Races() => new()
    {
        // A block a slab never handed out is rejected, by its owner and by other threads.
        { "never-handed-out", "" },
        { "never-handed-out", "SLABALLOC_CHECKED=1" },
        // A double free into a slab with no block out is rejected, however many threads race on it.
        { "idle-double-free", "" },
        { "idle-double-free", "SLABALLOC_CHECKED=1" },
        { "idle-double-free-cached", "" },
        { "idle-double-free-cached", "SLABALLOC_CHECKED=1" },
        // Of simultaneous frees (and a realloc) of one large block, exactly one returns; the block is cached or unmapped once.
        { "large-double-free", "" },
        { "large-double-free", "SLABALLOC_LARGE_CACHE_MB=0" },
        // A foreign pointer past a large block's mapping, while the block is freed and unmapped: rejected, no crash.
        { "large-tail", "SLABALLOC_LARGE_CACHE_MB=0" },
        // A stale pointer while its superslab is returned to the system: rejected, no crash.
        { "stale-trim", "SLABALLOC_CHECKED=1 " + NothingKept },
        { "stale-usable", NothingKept },
        // Thread.Interrupt while the mutex pool's lock is busy: no exception, no slab lost, the interrupt kept.
        { "interrupt-free", "SLABALLOC_POOL=mutex" },
        { "interrupt-attach", "SLABALLOC_POOL=mutex SLABALLOC_DECAY_MS=0" },
        // Slabs handed between threads every few allocations: a slab's recorded state follows it.
        { "lifecycle", "SLABALLOC_THREAD_CACHE_LIMIT=4" },
        // Slabs released with their pages resident and claimed again while purges decommit resident slots:
        // a purge never decommits a slot a thread holds, and Trim leaves none resident.
        { "resident-purge", "SLABALLOC_EMPTY_SLABS_PER_CLASS=0 SLABALLOC_SHARED_EMPTY_SLABS=0 SLABALLOC_DECAY_MS=1" },
        // Slabs taken back from live threads while their owners free into them: no live block's slab is taken.
        { "take-back", "" },
        { "take-back", "SLABALLOC_CHECKED=1" },
        // No managed memory left: a thread's first free (its attach) still frees, and Trim still reclaims.
        { "managed-oom", "DOTNET_GCHeapHardLimit=0x4000000 SLABALLOC_DECAY_MS=0" },
        // The first large block refused by the system: OutOfMemoryException, and large blocks work later.
        { "first-large-refused", "" },
    };

    [Theory]
    [MemberData(nameof(Races))]
    public void TheGuaranteeHoldsWhileThreadsRace(string race, string settings) => RunRace(race, settings, 2000 * TestScale.Factor);

    [Theory]
    [MemberData(nameof(Races))]
    [Trait("Category", "Stress")]
    public void TheGuaranteeHoldsWhileThreadsRaceForAMinute(string race, string settings) => RunRace(race, settings, 60_000);

    private static void RunRace(string race, string settings, int milliseconds)
    {
        var environment = settings.Split(' ', StringSplitOptions.RemoveEmptyEntries)
            .Select(kv => kv.Split('=', 2)).ToDictionary(kv => kv[0], kv => kv[1]);
        ProbeResult result = Run(environment, "race", race, milliseconds.ToString(System.Globalization.CultureInfo.InvariantCulture));
        string[] violations = result.Lines("RACE_VIOLATION");
        Assert.True(violations.Length == 0, $"{violations.Length} broken promises, the first: {violations.FirstOrDefault()}\n{result}");
        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Contains("PROBE_OK", result.Stdout);
        Assert.Single(result.Lines($"RACE_ROUNDS {race} "));
    }
}
