using SlabAlloc.Frontend;
using SlabAlloc.Pool;
using SlabAlloc.Support;

namespace SlabAlloc.Runtime;

/// <summary>
/// The upkeep that otherwise waits for the allocator's own traffic: every <see cref="AdjustableSettings.DecayMs"/>
/// (<c>SLABALLOC_DECAY_MS</c>, default 1 s; 0 turns it off), a timer hands back the caches of threads
/// that have ended, runs the pool's decay, and unmaps the empty superslabs kept for reuse once an
/// interval has passed without a slab claimed from one, so that a process that goes quiet after a burst
/// of work returns the memory it kept for reuse within a few seconds, without <c>Trim</c>.
/// </summary>
/// <remarks>
/// <para>Without it, both wait for traffic: a dead thread's cache is reclaimed when another thread
/// attaches or at <c>Trim</c>, and the decay runs when the
/// pool takes a slab back. A process whose threads all ended and that then only waits kept its last
/// threads' slabs owned and its empty slabs resident indefinitely (docs/design-measurements.md,
/// "Periodic upkeep").</para>
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
internal static class Upkeep
{
    /// <summary>A one-shot timer, re-armed at the end of each tick, so ticks do not queue up behind a slow
    /// one. Pool traffic may re-arm it while a tick runs (<see cref="OnPoolTraffic"/>, including the tick's own
    /// reclaim of a dead thread's cache); a second tick then waits for the gate, and only the re-arming steps
    /// after the ticks may run at the same time, which <see cref="TickAndRearm"/> allows for.</summary>
    private static Timer? s_timer;

    /// <summary>Starts the timer once; does nothing when the decay is off. Never throws (no upkeep then,
    /// logged: memory kept for reuse waits for traffic or <c>Trim</c>, as with the decay off).</summary>
    internal static void Start()
    {
        try
        {
            int period = Volatile.Read(ref AdjustableSettings.DecayMs);
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
            ErrorReports.ReportCaught(e);
        }
    }

    /// <summary>Quiet ticks in a row (see the remarks); 0 after any activity.</summary>
    private static int s_quietTicks;

    /// <summary>The most a quiet spell doubles the delay: 2^5 = 32 intervals.</summary>
    internal const int MaxBackoffShift = 5;
    /// <summary>The longest backed-off delay, whatever the interval (unless the interval itself is longer).</summary>
    internal const int MaxBackoffMs = 60_000;




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
        bool quiet = UpkeepPass.Run(s_onPoolTraffic); // never quiet while the interval is 0
        int period = Volatile.Read(ref AdjustableSettings.DecayMs);
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
            Rearm(DelayAfter(Volatile.Read(ref AdjustableSettings.DecayMs), 0));
        }
        catch (ThreadInterruptedException)
        {
            Thread.CurrentThread.Interrupt(); // the timer's lock was contended: keep the caller's interrupt for it
        }
        catch (Exception e)
        {
            // Never out of an allocation: the upkeep then ticks on at its backed-off delay.
            ErrorReports.ReportCaught(e); // logged when an open scope (Trim, a reclaim) ends
        }
    }

    private static void Rearm(int delayMs)
    {
        try
        {
            if (s_timer?.Change(delayMs, Timeout.Infinite) == true) UpkeepPass.ArmedDelayMs = delayMs;
        }
        catch (ObjectDisposedException) { }
    }


}
