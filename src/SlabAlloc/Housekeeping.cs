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
/// attaches or at <c>Trim</c>, and the decay runs when the
/// pool takes a slab back. A process whose threads all ended and that then only waits kept its last
/// threads' slabs owned and its empty slabs resident indefinitely (measured: 13 MiB mapped after 1,000
/// short threads, unchanged 5 s later).</para>
/// <para>A tick that finds nothing to do costs a clock read and a walk of the thread-cache records. It
/// runs on a thread-pool thread; reclaiming and decaying are the same operations other threads run
/// while allocating, and were built to run on any thread concurrently with them.</para>
/// <para><b>Backing off.</b> A process that stays quiet should not be woken every interval for nothing.
/// A tick is quiet when the pool saw no acquisition or release since the tick before and the tick itself
/// changed nothing (no cache reclaimed, no slab released or found emptied, no superslab unmapped). From
/// the second quiet tick in a row the delay doubles, up to 32 intervals and at most a minute (32 s by
/// default), so an idle process is woken about twice a minute. The first acquisition or release after
/// that wakes the upkeep again (<see cref="PoolTrafficWatch"/>) and the delay is one interval. What
/// the backed-off delay can hold up is only what appears without pool traffic: the cache of a thread that
/// ends while the pool is quiet, and partial slabs emptied by remote frees (the next thread that
/// attaches also hands such a cache back).</para>
/// </remarks>
internal static class Housekeeping
{
    /// <summary>A one-shot timer, re-armed at the end of each tick, so ticks do not queue up behind a slow
    /// one. Pool traffic may re-arm it while a tick runs (<see cref="OnPoolTraffic"/>, including the tick's own
    /// reclaim of a dead thread's cache); a second tick then waits for the gate, and only the re-arming steps
    /// after the ticks may run at the same time, which <see cref="TickAndRearm"/> allows for.</summary>
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
                else Rearm(period);
            }
        }
        catch (Exception e)
        {
            SlabLog.ErrorDetected(e);
        }
    }

    /// <summary>Quiet ticks in a row (see the remarks); 0 after any activity.</summary>
    private static int s_quietTicks;
    private static long s_ticks;

    /// <summary>The most a quiet spell doubles the delay: 2^5 = 32 intervals.</summary>
    internal const int MaxBackoffShift = 5;
    /// <summary>The longest backed-off delay, whatever the interval (unless the interval itself is longer).</summary>
    internal const int MaxBackoffMs = 60_000;

    /// <summary>Ticks run since start-up.</summary>
    internal static long Ticks => Volatile.Read(ref s_ticks);

    /// <summary>The delay the timer was last armed with (written after the arming succeeded).</summary>
    private static int s_armedDelayMs;

    /// <summary>The delay the timer was last armed with, in ms (0 while the upkeep is off).</summary>
    internal static int DelayMs => Volatile.Read(ref SlabPool.DecayMs) <= 0 ? 0 : Volatile.Read(ref s_armedDelayMs);

    /// <summary>While the interval is 0 (set so at run time), how often the timer looks whether it came back.</summary>
    private const int OffLookMs = 1000;

    /// <summary>The delay before the next tick after <paramref name="quietTicks"/> quiet ticks in a row: the
    /// interval for none or one, then doubling, at most <see cref="MaxBackoffShift"/> times and at most
    /// <see cref="MaxBackoffMs"/>, and never less than the interval; <see cref="OffLookMs"/> while the
    /// interval is 0 (the ticks do nothing then, but keep looking).</summary>
    internal static int DelayAfter(int period, int quietTicks)
    {
        if (period <= 0) return OffLookMs;
        int shift = Math.Clamp(quietTicks - 1, 0, MaxBackoffShift);
        return (int)Math.Max(period, Math.Min((long)period << shift, MaxBackoffMs));
    }

    private static void TickAndRearm()
    {
        bool quiet = Tick(); // never quiet while the interval is 0
        int period = Volatile.Read(ref SlabPool.DecayMs);
        int quietTicks = 0;
        if (quiet) quietTicks = Interlocked.Increment(ref s_quietTicks);
        else Volatile.Write(ref s_quietTicks, 0);
        Rearm(DelayAfter(period, quietTicks));
        // Traffic since the tick (OnPoolTraffic) may have re-armed the timer for one interval just before the
        // line above armed it with the backed-off delay: arm it for one interval again. Enough, because the
        // callback resets the count before it re-arms, and the timer orders the two re-arms: either this
        // read sees the reset and the last re-arm is this one, or the callback's re-arm comes after ours.
        if (quietTicks > 1 && Volatile.Read(ref s_quietTicks) == 0) Rearm(DelayAfter(period, 0));
    }

    private static readonly Action s_onPoolTraffic = OnPoolTraffic;

    /// <summary>The pool's first acquisition or release since a tick began: ends a quiet spell, and if the
    /// timer was armed with a backed-off delay, arms it for one interval. Runs on the thread that acquired
    /// or released (see <see cref="PoolTrafficWatch"/>), outside the pool's lock; never throws.</summary>
    private static void OnPoolTraffic()
    {
        if (Interlocked.Exchange(ref s_quietTicks, 0) <= 1) return; // the delay armed was one interval anyway
        try
        {
            Rearm(DelayAfter(Volatile.Read(ref SlabPool.DecayMs), 0));
        }
        catch (ThreadInterruptedException)
        {
            Thread.CurrentThread.Interrupt(); // the timer's lock was contended: keep the caller's interrupt for it
        }
        catch (Exception e)
        {
            // Never out of an allocation: the upkeep then ticks on at its backed-off delay.
            SlabLog.ErrorDetected(e);
        }
    }

    private static void Rearm(int delayMs)
    {
        try
        {
            if (s_timer?.Change(delayMs, Timeout.Infinite) == true) Volatile.Write(ref s_armedDelayMs, delayMs);
        }
        catch (ObjectDisposedException) { }
    }

    /// <summary>Holds off the upkeep's ticks until the returned scope is disposed (a tick in flight
    /// finishes first): for <c>Trim</c>, which must see every partial slab.</summary>
    internal static Uninterruptible.Scope Exclusive() => Uninterruptible.EnterScope(s_tickGate);

    /// <summary>Stops the upkeep until <see cref="Resume"/> (nested): for tests that count the pool's
    /// lists or the thread-cache records exactly while threads end.</summary>
    internal static void Suspend()
    {
        Interlocked.Increment(ref s_suspended);
        Uninterruptible.Enter(s_tickGate); // a tick already past its check finishes first
        s_tickGate.Exit();
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

    /// <summary>One round of upkeep, on the calling thread; true if it was quiet (no pool traffic since the
    /// tick before, and nothing changed by this one). Never throws: a dead thread's cache found corrupt is
    /// abandoned and logged where it was found, like any other reclaim's.</summary>
    internal static bool Tick()
    {
        using (Uninterruptible.EnterScope(s_tickGate))
        {
            if (Volatile.Read(ref s_suspended) > 0 || Volatile.Read(ref SlabPool.DecayMs) == 0) return false;
            Interlocked.Increment(ref s_ticks);
            // Watches from here on: traffic during or after this tick ends the quiet spell (OnPoolTraffic).
            bool traffic = PoolTrafficWatch.Renew(s_onPoolTraffic);
            long before = ChangeMark();
            try
            {
                HeapRecords.ReclaimDead();
                SlabPool.Shared.DecayIfDue();
                RetireIdleSuperslabs();
            }
            catch (Exception e)
            {
                if (!ThrowHelper.WasReported(e)) SlabLog.ErrorDetected(e);
                return false;
            }
            return !traffic && ChangeMark() == before;
        }
    }

    /// <summary>A sum of counters that only grow, which moves whenever a tick hands something back or leaves
    /// work for the next one: caches reclaimed, slabs released to their superslabs, partial slabs found
    /// emptied, sweeps stopped on their budget, superslabs unmapped.</summary>
    private static long ChangeMark()
    {
        PoolCounters counters = SlabPool.Shared.Counters;
        return HeapRecords.Reclaimed + Volatile.Read(ref counters.ReleasedToUnused) + Volatile.Read(ref counters.PartialsEmptied)
            + Volatile.Read(ref counters.SweepsCutShort) + Superslabs.RetiredCount;
    }
}
