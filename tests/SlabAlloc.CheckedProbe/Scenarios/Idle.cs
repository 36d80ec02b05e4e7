using static SlabAlloc.CheckedProbe.Probe;

namespace SlabAlloc.CheckedProbe.Scenarios;

/// <summary>
/// <c>idle &lt;seconds&gt;</c>: a burst of short threads, then nothing; the periodic upkeep gives the memory
/// back. 200 threads in waves of 4, each allocating 64 blocks (16 B to 40 KiB) and freeing 60 of them,
/// handing the other 4 to the next wave, which frees them after their thread has ended (so slabs wait in
/// the pool's partial lists until their last block comes back). A last thread frees the last wave's and
/// leaves empty slabs of its own in its cache when it ends; this thread never allocates or frees (it never
/// attaches, so it reclaims no cache). Then it only reads statistics, every 10 ms, until nothing is left
/// mapped but metadata (<c>IDLE_RETURNED_MS</c>) or the seconds given have passed
/// (<c>IDLE_NOT_RETURNED</c>), and prints <c>IDLE_MAPPED_START</c>, <c>IDLE_MAPPED_BURST</c> and
/// <c>IDLE_MAPPED_END</c> in bytes, and the longest delay the upkeep was armed with meanwhile
/// (<c>IDLE_LONGEST_DELAY_WHILE_RETURNING</c>).
/// </summary>
internal static unsafe class Idle
{
    public static int Run(string[] args, long baseline)
    {
        if (!(args.Length == 1 && int.TryParse(args[0], out int seconds))) return BadArguments;
        BurstThenWait(seconds);
        return Finish(baseline);
    }

    private static void BurstThenWait(int seconds)
    {
        long start = SlabMemory.GetStatistics().BytesMapped;
        var handed = new nint[4][];
        for (int wave = 0; wave < 50; wave++)
        {
            var threads = new Thread[4];
            for (int t = 0; t < 4; t++)
            {
                int lane = t, seed = wave * 4 + t;
                nint[]? inherited = handed[lane];
                threads[t] = new Thread(() =>
                {
                    if (inherited != null) foreach (nint p in inherited) SlabMemory.Free((void*)p);
                    var rng = new Random(seed);
                    var blocks = new nint[64];
                    for (int i = 0; i < blocks.Length; i++)
                    {
                        var size = (nuint)(rng.Next(5) == 0 ? rng.Next(1, 40 * 1024) : rng.Next(16, 1024));
                        blocks[i] = (nint)SlabMemory.Alloc(size);
                        *(byte*)blocks[i] = 1;
                    }
                    for (int i = 4; i < blocks.Length; i++) SlabMemory.Free((void*)blocks[i]);
                    handed[lane] = blocks[..4];
                });
                threads[t].Start();
            }
            foreach (Thread t in threads) t.Join();
        }
        // The last thread frees what the last wave handed on, and leaves slabs of its own, empty, behind:
        // only a reclaim of its cache after it has ended can give them back (this thread never attaches).
        var last = new Thread(() =>
        {
            foreach (nint[] blocks in handed) foreach (nint p in blocks) SlabMemory.Free((void*)p);
            foreach (nuint size in new nuint[] { 64, 20 * 1024 })
            {
                var mine = new nint[16];
                for (int i = 0; i < mine.Length; i++) mine[i] = (nint)SlabMemory.Alloc(size);
                foreach (nint p in mine) SlabMemory.Free((void*)p);
            }
        });
        last.Start();
        last.Join();
        long burst = SlabMemory.GetStatistics().BytesMapped;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        long mapped = burst;
        int longestDelay = 0;
        while (clock.Elapsed < TimeSpan.FromSeconds(seconds))
        {
            SlabStatistics s = SlabMemory.GetStatistics();
            mapped = s.BytesMapped;
            if (s.Superslabs == 0 && s.SlabsOwned + s.SlabsEmpty + s.SlabsPartial + s.SlabsReserved == 0) break;
            longestDelay = Math.Max(longestDelay, s.UpkeepDelayMs);
            Thread.Sleep(10);
        }
        Console.WriteLine($"IDLE_LONGEST_DELAY_WHILE_RETURNING {longestDelay}");
        Console.WriteLine($"IDLE_MAPPED_START {start}");
        Console.WriteLine($"IDLE_MAPPED_BURST {burst}");
        Console.WriteLine($"IDLE_MAPPED_END {mapped}");
        SlabStatistics end = SlabMemory.GetStatistics();
        if (end.Superslabs == 0) Console.WriteLine($"IDLE_RETURNED_MS {clock.ElapsedMilliseconds}");
        else Console.WriteLine($"IDLE_NOT_RETURNED superslabs {end.Superslabs}, slabs owned {end.SlabsOwned} empty {end.SlabsEmpty} partial {end.SlabsPartial} reserved {end.SlabsReserved}");
    }
}
