using SlabAlloc.Memory;
using SlabAlloc.Pool;
using SlabAlloc.Runtime;
using SlabAlloc.Support;

namespace SlabAlloc.Frontend;

/// <summary>
/// One pass of the upkeep: what the allocator hands back without waiting for traffic. A pass reclaims
/// the caches of threads that have ended, runs the pool's decay (and its sweep of the partial lists),
/// and unmaps idle cached superslabs. The timer that runs the passes, and backs off while they find
/// nothing to do, is <c>Runtime.Upkeep</c>; <c>Trim</c> holds the passes off while it runs.
/// </summary>
/// <remarks>
/// Reclaiming and decaying are the same operations other threads run while allocating, and were built
/// to run on any thread concurrently with them. Passes run one at a time, under a gate.
/// </remarks>
internal static class UpkeepPass
{
    private static int s_suspended;
    /// <summary>Held by a running pass, so that <see cref="Suspend"/> can wait for one in flight.</summary>
    private static readonly Lock s_tickGate = new();

    /// <summary>Passes run since start-up.</summary>
    private static long s_passes;

    /// <summary>Passes run since start-up.</summary>
    internal static long Count => Volatile.Read(ref s_passes);

    /// <summary>The delay the upkeep's timer was last armed with, in ms (0 while the upkeep is off): written
    /// by the timer after arming succeeded, read by the statistics.</summary>
    internal static int ArmedDelayMs
    {
        get => Volatile.Read(ref AdjustableSettings.DecayMs) <= 0 ? 0 : Volatile.Read(ref s_armedDelayMs);
        set => Volatile.Write(ref s_armedDelayMs, value);
    }

    private static int s_armedDelayMs;

    /// <summary>Holds off the passes until the returned scope is disposed (a pass in flight
    /// finishes first): for <c>Trim</c>, which must see every partial slab.</summary>
    internal static Uninterruptible.Scope Exclusive() => Uninterruptible.EnterScope(s_tickGate);

    /// <summary>Stops the upkeep until <see cref="Resume"/> (nested): for tests that count the pool's
    /// lists or the thread-cache records exactly while threads end.</summary>
    internal static void Suspend()
    {
        Interlocked.Increment(ref s_suspended);
        Uninterruptible.Enter(s_tickGate); // a pass already past its check finishes first
        s_tickGate.Exit();
    }

    /// <inheritdoc cref="Suspend"/>
    internal static void Resume() => Interlocked.Decrement(ref s_suspended);

    /// <summary>Slot claims (stages 2 and 3) the pool had made at the last pass.</summary>
    private static long s_claimsAtLastTick = -1;

    /// <summary>Unmaps the empty superslabs kept for reuse (<c>SLABALLOC_SUPERSLAB_CACHE</c>) when no slab
    /// was claimed from a superslab since the last pass: a whole interval in which the cache was not
    /// needed. A claim racing with the retirement wins or loses on the superslab's free-slot mask, as it
    /// does against <c>Trim</c>.</summary>
    private static void RetireIdleSuperslabs()
    {
        PoolCounters counters = SlabPool.Shared.Counters;
        long claims = Volatile.Read(ref counters.Stage2) + Volatile.Read(ref counters.Stage3);
        if (claims == s_claimsAtLastTick && Superslabs.EmptyCount > 0) Superslabs.RetireEmpty(0);
        s_claimsAtLastTick = claims;
    }

    /// <summary>One pass, on the calling thread; true if it was quiet (no pool traffic since the
    /// pass before, and nothing changed by this one). Never throws: a dead thread's cache found corrupt is
    /// abandoned and logged where it was found, like any other reclaim's.</summary>
    /// <param name="onPoolTraffic">Called on the first pool acquisition or release after this pass began (<see cref="PoolTrafficWatch"/>).</param>
    internal static bool Run(Action onPoolTraffic)
    {
        // Failures found while the pass holds Trim off are logged once it does not (a logger may wait for a Trim).
        using var reports = ErrorReports.Defer();
        using (Uninterruptible.EnterScope(s_tickGate))
        {
            if (Volatile.Read(ref s_suspended) > 0 || Volatile.Read(ref AdjustableSettings.DecayMs) == 0) return false;
            Interlocked.Increment(ref s_passes);
            // Watches from here on: traffic during or after this pass ends the quiet spell (the callback).
            bool traffic = PoolTrafficWatch.Renew(onPoolTraffic);
            long before = ChangeMark();
            try
            {
                ThreadCacheRecords.ReclaimDead();
                ThreadCacheRecords.TakeBackFreedSlabs(idleOnly: true);
                SlabPool.Shared.DecayIfDue();
                RetireIdleSuperslabs();
            }
            catch (Exception e)
            {
                ErrorReports.ReportCaught(e);
                return false;
            }
            return !traffic && ChangeMark() == before;
        }
    }

    /// <summary>A sum of counters that only grow, which moves whenever a pass hands something back or leaves
    /// work for the next one: caches reclaimed, slabs taken back from live threads, slabs released to their
    /// superslabs, partial slabs found emptied, sweeps stopped on their budget, superslabs unmapped.</summary>
    private static long ChangeMark()
    {
        PoolCounters counters = SlabPool.Shared.Counters;
        return ThreadCacheRecords.Reclaimed + SmallBlocks.SlabsTakenBack + Volatile.Read(ref counters.ReleasedToUnused) + Volatile.Read(ref counters.PartialsEmptied)
            + Volatile.Read(ref counters.SweepsCutShort) + Superslabs.RetiredCount;
    }
}
