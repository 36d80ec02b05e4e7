using SlabAlloc.CheckedProbe.Races;
using SlabAlloc.CheckedProbe.Scenarios;

namespace SlabAlloc.CheckedProbe;

/// <summary>
/// A child process for SlabAlloc.Tests (see tests/SlabAlloc.Tests/ProbeProcess.cs), for what cannot be
/// tested inside the test process: settings that are read once at start-up, and hostile pointers that
/// would corrupt the test process's allocator if SlabAlloc wrongly accepted them.
/// <c>SlabAlloc.CheckedProbe [&lt;mode&gt; [arguments]]</c> runs one mode (<c>double-free</c> when none is
/// given); each mode is one class, in Scenarios/, or in Races/ for <c>race &lt;name&gt; &lt;milliseconds&gt;</c>.
/// </summary>
/// <remarks>
/// The output protocol, which the tests read line by line: every check that fails prints a line of its
/// own (<see cref="Probe.Fail"/>); most modes then check that the allocator still works and that its
/// accounting is exact, and print <c>PROBE_OK</c> last when everything passed. Exit codes: 0 when
/// everything passed, 1 when a check failed, 2 for a command line that does not parse (the usage is
/// printed) or an unknown race, and whatever else a mode documents (<c>overflow</c>).
/// </remarks>
internal static class Program
{
    /// <summary>One mode: its name on the command line, its arguments as the usage shows them, and its
    /// entry. The entry gets the arguments after the name and the count of blocks in use read before
    /// anything else ran, and returns the exit code (<see cref="Probe.BadArguments"/> when the arguments
    /// do not parse).</summary>
    private sealed record Mode(string Name, string Arguments, Func<string[], long, int> Run);

    /// <summary>Every mode, in the order the usage lists them.</summary>
    private static readonly Mode[] Modes =
    [
        new("double-free", "", DoubleFree.Run),
        new("realloc-freed", "", ReallocOfFreed.Run),
        new("uncarved", "<Free|AlignedFree|Realloc|AlignedRealloc|UsableSize> <owner|remote>", Uncarved.Run),
        new("arena-used-up", "[waiting-logger]", ArenaUsedUp.Run),
        new("arena-refused", "", ArenaRefused.Run),
        new("overflow", "[size]", Overflow.Run),
        new("double-free-immediate", "[size]", DoubleFreeImmediate.Run),
        new("workout", "", Workout.Run),
        new("meter", "<instruments>", MeterPublished.Run),
        new("warmup", "", WarmUpEffects.Run),
        new("idle", "<seconds>", Idle.Run),
        new("resident-idle", "<seconds>", ResidentIdle.Run),
        new("upkeep-backoff", "<decay-ms>", UpkeepBackoff.Run),
        new("upkeep-sweep", "", UpkeepSweep.Run),
        new("reclaim-corruption", "<trim|attach|upkeep> [waiting-logger]", ReclaimCorruption.Run),
        new("pool-corruption", "[acquire]", PoolCorruption.Run),
        new("invariant", "", InvariantViolation.Run),
        new("dropped-owners", "<count>", DroppedOwners.Run),
        new("batch-double-free", "[two-classes]", BatchDoubleFree.Run),
        new("batch-damage", "", BatchDamage.Run),
        new("cache-damage", "<trim|free>", CacheDamage.Run),
        new("race", $"<{string.Join('|', RaceRunner.Names)}> <milliseconds>", RaceRunner.Run),
    ];

    private static int Main(string[] args)
    {
        string name = args.Length > 0 ? args[0] : "double-free";
        // Read before any mode runs: what a mode leaves in use is measured against it.
        long baseline = SlabMemory.GetStatistics().BlocksInUse;
        Mode? mode = Array.Find(Modes, m => m.Name == name);
        int exitCode = mode == null ? Probe.BadArguments : mode.Run(args.Length > 0 ? args[1..] : [], baseline);
        if (exitCode != Probe.BadArguments) return exitCode;
        Console.Error.WriteLine($"usage: SlabAlloc.CheckedProbe [{string.Join(" | ", Modes.Select(m => m.Arguments.Length == 0 ? m.Name : $"{m.Name} {m.Arguments}"))}]");
        return 2;
    }
}
