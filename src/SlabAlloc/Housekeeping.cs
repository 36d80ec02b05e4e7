using SlabAlloc.Core;
using SlabAlloc.Diagnostics;
using SlabAlloc.Pool;
using SlabAlloc.Threading;

namespace SlabAlloc;

/// <summary>
/// The upkeep that otherwise waits for the allocator's own traffic: every <see cref="SlabPool.DecayMs"/>
/// (<c>SLABALLOC_DECAY_MS</c>, default 1 s; 0 turns it off), a timer hands back the caches of threads
/// that have ended, runs the pool's decay, and unmaps the empty superslabs kept for reuse once an
/// interval has passed without a slab claimed from one, so that a process that goes quiet after a burst
/// of work returns the memory it kept for reuse within a few seconds, without <c>Trim</c>.
/// </summary>
/// <remarks>
/// <para>Without it, both wait for traffic: a dead thread's cache is reclaimed when another thread
/// attaches, at <c>Trim</c>, or by the finalizer after a garbage collection, and the decay runs when the
/// pool takes a slab back. A process whose threads all ended and that then only waits kept its last
/// threads' slabs owned and its empty slabs resident indefinitely (measured: 13 MiB mapped after 1,000
/// short threads, unchanged 5 s later).</para>
/// <para>A tick that finds nothing to do costs a clock read and a walk of the thread-cache records. It
/// runs on a thread-pool thread; reclaiming and decaying are the same operations other threads run
/// while allocating, and were built to run on any thread concurrently with them.</para>
/// </remarks>
internal static class Housekeeping
{
    /// <summary>A one-shot timer, re-armed at the end of each tick, so ticks never overlap or queue up
    /// behind a slow one.</summary>
    private static Timer? s_timer;
    private static int s_suspended;
    /// <summary>Held by a running tick, so that <see cref="Suspend"/> can wait for one in flight.</summary>
    private static readonly Lock s_tickGate = new();

    /// <summary>Starts the timer once; does nothing when the decay is off. Never throws (no upkeep then,
    /// logged: memory kept for reuse waits for traffic or <c>Trim</c>, as with the decay off).</summary>
    internal static void Start()
    {
        try
        {
            int period = Volatile.Read(ref SlabPool.DecayMs);
            if (period <= 0 || Volatile.Read(ref s_timer) != null) return;
            using (ExecutionContext.SuppressFlow())
            {
                var timer = new Timer(static _ => TickAndRearm(), null, Timeout.Infinite, Timeout.Infinite);
                if (Interlocked.CompareExchange(ref s_timer, timer, null) != null) timer.Dispose();
                else timer.Change(period, Timeout.Infinite);
            }
        }
        catch (Exception e)
        {
            SlabLog.ErrorDetected(e);
        }
    }

    private static void TickAndRearm()
    {
        Tick();
        int period = Volatile.Read(ref SlabPool.DecayMs);
        try { s_timer?.Change(period > 0 ? period : 1000, Timeout.Infinite); } // 0 set at run time: keep looking, do nothing
        catch (ObjectDisposedException) { }
    }

    /// <summary>Holds off the upkeep's ticks until the returned scope is disposed (a tick in flight
    /// finishes first): for <c>Trim</c>, which must see every partial slab.</summary>
    internal static Lock.Scope Exclusive() => s_tickGate.EnterScope();

    /// <summary>Stops the upkeep until <see cref="Resume"/> (nested): for tests that count the pool's
    /// lists or the thread-cache records exactly while threads end.</summary>
    internal static void Suspend()
    {
        Interlocked.Increment(ref s_suspended);
        lock (s_tickGate) { } // a tick already past its check finishes first
    }

    /// <inheritdoc cref="Suspend"/>
    internal static void Resume() => Interlocked.Decrement(ref s_suspended);

    /// <summary>Slot claims (stages 2 and 3) the pool had made at the last tick.</summary>
    private static long s_claimsAtLastTick = -1;

    /// <summary>Unmaps the empty superslabs kept for reuse (<c>SLABALLOC_SUPERSLAB_CACHE</c>) when no slab
    /// was claimed from a superslab since the last tick: a whole interval in which the cache was not
    /// needed. A claim racing with the retirement wins or loses on the superslab's free-slot mask, as it
    /// does against <c>Trim</c>.</summary>
    private static void RetireIdleSuperslabs()
    {
        PoolCounters counters = SlabPool.Shared.Counters;
        long claims = Volatile.Read(ref counters.Stage2) + Volatile.Read(ref counters.Stage3);
        if (claims == s_claimsAtLastTick && Superslabs.EmptyCount > 0) Superslabs.RetireEmpty(0);
        s_claimsAtLastTick = claims;
    }

    /// <summary>One round of upkeep, on the calling thread. Never throws: a dead thread's cache found
    /// corrupt is abandoned and logged where it was found, like any other reclaim's.</summary>
    internal static void Tick()
    {
        lock (s_tickGate)
        {
            if (Volatile.Read(ref s_suspended) > 0 || Volatile.Read(ref SlabPool.DecayMs) == 0) return;
            try
            {
                HeapRecords.ReclaimDead();
                SlabPool.Shared.DecayIfDue();
                RetireIdleSuperslabs();
            }
            catch (Exception e)
            {
                if (!ThrowHelper.WasReported(e)) SlabLog.ErrorDetected(e);
            }
        }
    }
}
