using static SlabAlloc.CheckedProbe.Probe;

namespace SlabAlloc.CheckedProbe.Scenarios;

/// <summary>
/// <c>resident-idle &lt;seconds&gt;</c> (run with a short <c>SLABALLOC_DECAY_MS</c> and no empty slab kept by the
/// pool): slots released with their pages resident are decommitted by the upkeep alone once the process goes
/// quiet. This thread keeps one 64-byte block, so its superslab stays mapped; a second thread allocates and
/// frees 240 blocks of 3,000 bytes and 30 of 20 KiB (one-slot and eight-slot slabs) and ends. Its cache is
/// handed back by the upkeep, its slabs are released to their superslab with their pages resident, and the
/// next decays decommit them. This thread only reads statistics, every 10 ms, until no slot is resident
/// (<c>RESIDENT_PURGED_MS</c>) or the seconds given have passed (<c>RESIDENT_NOT_PURGED</c>), and prints the most
/// resident slots seen (<c>RESIDENT_SEEN</c>) and the unused slots at the end (<c>UNUSED_SLOTS_END</c>).
/// </summary>
internal static unsafe class ResidentIdle
{
    public static int Run(string[] args, long baseline)
    {
        if (!(args.Length == 1 && int.TryParse(args[0], out int seconds))) return BadArguments;
        void* kept = SlabMemory.Alloc(64);
        RunOnNewThread(() =>
        {
            var blocks = new List<nint>();
            for (int i = 0; i < 240; i++) blocks.Add((nint)SlabMemory.Alloc(3000));
            for (int i = 0; i < 30; i++) blocks.Add((nint)SlabMemory.Alloc(20 * 1024));
            foreach (nint p in blocks) SlabMemory.Free((void*)p);
            return [];
        });

        var clock = System.Diagnostics.Stopwatch.StartNew();
        int seen = 0;
        SlabStatistics s;
        while (true)
        {
            s = SlabMemory.GetStatistics();
            seen = Math.Max(seen, s.ResidentUnusedSlots);
            if (seen > 0 && s.ResidentUnusedSlots == 0)
            {
                Console.WriteLine($"RESIDENT_PURGED_MS {clock.ElapsedMilliseconds}");
                break;
            }
            if (clock.Elapsed.TotalSeconds > seconds)
            {
                Console.WriteLine($"RESIDENT_NOT_PURGED: {s.ResidentUnusedSlots} slots still resident after {seconds} s (most seen {seen})");
                break;
            }
            Thread.Sleep(10);
        }
        Console.WriteLine($"RESIDENT_SEEN {seen}");
        Console.WriteLine($"UNUSED_SLOTS_END {s.UnusedSlots}");
        SlabMemory.Free(kept);
        SlabMemory.Trim();
        return Finish(baseline);
    }
}
