using SlabAlloc.Memory;
using SlabAlloc.Runtime;

using static SlabAlloc.CheckedProbe.Probe;

namespace SlabAlloc.CheckedProbe.Races;

/// <summary>
/// What the races share: running threads for a given time, holding the mutex pool's lock while a thread
/// waits for it, and the checks that follow a race.
/// </summary>
internal static class RaceHarness
{
    /// <summary>Tells the threads of a race to stop; read on every iteration of their loops.</summary>
    public sealed class StopFlag
    {
        private int _set;
        public bool IsSet => Volatile.Read(ref _set) != 0;
        public void Set() => Volatile.Write(ref _set, 1);
    }

    /// <summary>Starts <paramref name="threads"/> threads running <paramref name="body"/>, sets
    /// <paramref name="stop"/> after <paramref name="time"/> and waits for them. An exception other than the
    /// expected ones ends the thread and is reported.</summary>
    public static void RunFor(TimeSpan time, StopFlag stop, int threads, Action<int> body)
    {
        var all = new Thread[threads];
        for (int t = 0; t < threads; t++)
        {
            int id = t;
            all[t] = new Thread(() =>
            {
                try { body(id); }
                catch (Exception e) { Fail($"RACE_VIOLATION: thread {id} threw {e.GetType().Name}: {OneLine(e.Message)}"); }
            });
            all[t].Start();
        }
        Thread.Sleep(time);
        stop.Set();
        foreach (Thread t in all) t.Join();
    }

    /// <summary>Runs <paramref name="action"/> on the calling thread while another thread holds the mutex
    /// pool's lock, and releases the lock 50 ms after the action began (by then it waits for the lock).</summary>
    public static void WhileLockHeld(Action action)
    {
        if (!TestHooks.PoolIsMutex)
        {
            Fail("PROBE_ERROR: the race needs SLABALLOC_POOL=mutex");
            return;
        }
        using var held = new ManualResetEventSlim();
        using var go = new ManualResetEventSlim();
        var holder = new Thread(() =>
        {
            TestHooks.TryEnterMutexPool();
            held.Set();
            go.Wait();
            Thread.Sleep(50);
            TestHooks.ExitMutexPool();
        });
        holder.Start();
        held.Wait();
        go.Set();
        action();
        // Not Join: the calling thread may carry a pending interrupt, which the caller checks.
        while (holder.IsAlive) Thread.Yield();
    }

    /// <summary>Fails unless the calling thread still has an interrupt pending: its next sleep must throw.</summary>
    public static void ExpectInterruptPending()
    {
        try
        {
            Thread.Sleep(1);
            Fail("RACE_VIOLATION: the thread's interrupt was lost inside SlabAlloc");
        }
        catch (ThreadInterruptedException) { }
    }

    /// <summary>Once every thread of <paramref name="race"/> has ended and everything is freed: after a
    /// <c>Trim</c> no superslab may be left mapped and no slab counted full, partial, empty or reserved.</summary>
    public static void ExpectEverythingReturned(string race)
    {
        SlabMemory.Trim();
        SlabStatistics s = SlabMemory.GetStatistics();
        if (s.Superslabs != 0 || s.SlabsFull + s.SlabsPartial + s.SlabsEmpty + s.SlabsReserved != 0)
            Fail($"RACE_VIOLATION: {race}: after every thread ended and Trim, {s.Superslabs} superslabs are mapped (slabs full {s.SlabsFull}, partial {s.SlabsPartial}, empty {s.SlabsEmpty}, reserved {s.SlabsReserved}, owned {s.SlabsOwned})");
    }
}
