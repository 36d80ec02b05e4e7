using static SlabAlloc.CheckedProbe.Probe;

namespace SlabAlloc.CheckedProbe.Scenarios;

/// <summary>
/// <c>upkeep-backoff &lt;decay-ms&gt;</c>: the periodic upkeep sleeps longer while quiet, and wakes on
/// traffic. Run with <c>SLABALLOC_DECAY_MS=</c>&lt;decay-ms&gt; and <c>SLABALLOC_EMPTY_SLABS_PER_CLASS=64</c>.
/// A thread fills 200 slabs, frees everything and ends; then this thread (which never allocates) only
/// reads statistics every 5 ms and prints the empty slabs the pool kept at first
/// (<c>BACKOFF_KEPT_AT_START</c>), the longest delay seen while the decay was still handing them back
/// (<c>BACKOFF_LONGEST_WHILE_DECAYING</c>) and the delays the upkeep was armed with, in order
/// (<c>BACKOFF_DELAYS</c>), until one reaches the longest, 32 intervals (<c>BACKOFF_REACHED_MS</c>, or
/// <c>BACKOFF_NOT_REACHED</c> after 30 s). Right after the timer was armed with that delay, a new thread
/// allocates (a pool acquisition): <c>WAKE_DELAY</c> is the delay the statistics show right after it, and
/// <c>WAKE_TICKS_MS</c> how long two more upkeep ticks took to come (<c>WAKE_TICKS_LATE</c> after 30 s).
/// </summary>
internal static unsafe class UpkeepBackoff
{
    public static int Run(string[] args, long baseline)
    {
        if (!(args.Length == 1 && int.TryParse(args[0], out int periodMs))) return BadArguments;
        Observe(periodMs);
        return Finish(baseline);
    }

    private static void Observe(int periodMs)
    {
        void Traffic()
        {
            var t = new Thread(() =>
            {
                foreach (nuint size in new nuint[] { 48, 3000, 20 * 1024 })
                {
                    var blocks = new nint[40];
                    for (int i = 0; i < blocks.Length; i++) blocks[i] = (nint)SlabMemory.Alloc(size);
                    foreach (nint p in blocks) SlabMemory.Free((void*)p);
                }
            });
            t.Start();
            t.Join();
        }

        // First, 200 slabs of 1 KiB blocks, all freed: with SLABALLOC_EMPTY_SLABS_PER_CLASS=64 the empty list and
        // the shared reserve keep 128 of them, which the decay hands back 32 an upkeep tick, ticks in which nothing
        // else happens. Those ticks are not quiet: the delay must stay one interval until they are done.
        var many = new Thread(() =>
        {
            var blocks = new nint[200 * 64];
            for (int i = 0; i < blocks.Length; i++) blocks[i] = (nint)SlabMemory.Alloc(1024);
            foreach (nint p in blocks) SlabMemory.Free((void*)p);
        });
        many.Start();
        many.Join();
        int longest = periodMs * 32, longestWhileDecaying = 0, keptAtStart = -1;
        var delays = new List<int>();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        SlabStatistics s = SlabMemory.GetStatistics();
        while (clock.Elapsed < TimeSpan.FromSeconds(30))
        {
            s = SlabMemory.GetStatistics();
            if (keptAtStart < 0) keptAtStart = s.SlabsEmpty + s.SlabsReserved;
            if (s.SlabsEmpty + s.SlabsReserved > 0) longestWhileDecaying = Math.Max(longestWhileDecaying, s.UpkeepDelayMs);
            if (delays.Count == 0 || delays[^1] != s.UpkeepDelayMs) delays.Add(s.UpkeepDelayMs);
            if (s.UpkeepDelayMs >= longest) break;
            Thread.Sleep(5);
        }
        Console.WriteLine($"BACKOFF_KEPT_AT_START {keptAtStart}");
        Console.WriteLine($"BACKOFF_LONGEST_WHILE_DECAYING {longestWhileDecaying}");
        Console.WriteLine($"BACKOFF_DELAYS {string.Join(' ', delays)}");
        if (s.UpkeepDelayMs < longest)
        {
            Console.WriteLine($"BACKOFF_NOT_REACHED {s.UpkeepDelayMs}");
            return;
        }
        Console.WriteLine($"BACKOFF_REACHED_MS {clock.ElapsedMilliseconds}");

        // The timer was armed with the longest delay a few milliseconds ago (the statistics show the delay
        // once the arming succeeded): the next tick is 32 intervals away, unless the traffic below wakes it.
        Traffic();
        s = SlabMemory.GetStatistics();
        Console.WriteLine($"WAKE_DELAY {s.UpkeepDelayMs}");
        long ticks = s.UpkeepTicks;
        clock.Restart();
        while (clock.Elapsed < TimeSpan.FromSeconds(30) && SlabMemory.GetStatistics().UpkeepTicks < ticks + 2) Thread.Sleep(5);
        Console.WriteLine(SlabMemory.GetStatistics().UpkeepTicks >= ticks + 2 ? $"WAKE_TICKS_MS {clock.ElapsedMilliseconds}" : "WAKE_TICKS_LATE");
    }
}
