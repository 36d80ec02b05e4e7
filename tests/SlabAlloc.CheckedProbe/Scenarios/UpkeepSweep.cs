using SlabAlloc.Runtime;
using static SlabAlloc.CheckedProbe.Probe;

namespace SlabAlloc.CheckedProbe.Scenarios;

/// <summary>
/// <c>upkeep-sweep</c>: upkeep ticks whose sweep stops on its budget are not quiet. Run with
/// <c>SLABALLOC_DECAY_MS=100</c>. A thread fills 1,000 slabs of 1 KiB blocks and ends, holding them all;
/// once the upkeep has reclaimed its cache, another thread frees one block of each slab (each slab goes
/// to the class's partial list: 100 first, then 900 on top of them), then the rest of the first 100 slabs
/// and all but one block of the other 900, as remote frees, which no pool call sees. Each tick's sweep
/// walks at most 256 remote-free lists: three ticks walk the 900 slabs that stay partial before one
/// reaches the 100 that are empty. Prints the longest delay the upkeep was armed with until those 100 were
/// handed on (<c>SWEEP_LONGEST_DELAY</c>, <c>SWEEP_DONE_MS</c>, or <c>SWEEP_NOT_DONE</c> after 30 s), then
/// frees everything.
/// </summary>
internal static unsafe class UpkeepSweep
{
    public static int Run(string[] args, long baseline)
    {
        Observe();
        return Finish(baseline);
    }

    private static void Observe()
    {
        const int Slabs = 1000, Emptied = 100, PerSlab = 64;
        var blocks = new nint[Slabs * PerSlab];
        var filler = new Thread(() =>
        {
            for (int i = 0; i < blocks.Length; i++) blocks[i] = (nint)SlabMemory.Alloc(1024);
        });
        filler.Start();
        filler.Join();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (SlabMemory.GetStatistics().ThreadCachesReclaimed == 0 && clock.Elapsed < TimeSpan.FromSeconds(30)) Thread.Sleep(5);
        var bySlab = blocks.GroupBy(p => p >> 16).Select(g => g.ToArray()).Where(g => g.Length == PerSlab).Take(Slabs).ToArray();
        Console.WriteLine($"SWEEP_SLABS {bySlab.Length}");
        int partialBefore = SlabMemory.GetStatistics().SlabsPartial;
        // No pass while the freer frees: on a loaded machine the freer may take longer than the sweeps, which would
        // then be done before anything is observed. Suspended passes are not quiet, so the delay is one interval
        // when they resume.
        TestHooks.SuspendUpkeep();
        var freer = new Thread(() =>
        {
            foreach (nint[] g in bySlab) SlabMemory.Free((void*)g[0]); // publishes: the first 100 at the bottom
            for (int i = 0; i < bySlab.Length; i++)
                for (int j = 1; j < (i < Emptied ? PerSlab : PerSlab - 1); j++) SlabMemory.Free((void*)bySlab[i][j]);
        });
        freer.Start();
        freer.Join();
        int longest = 0;
        clock.Restart();
        TestHooks.ResumeUpkeep();
        SlabStatistics s;
        while (true)
        {
            s = SlabMemory.GetStatistics();
            longest = Math.Max(longest, s.UpkeepDelayMs); // before the check: at least one look after the passes resume
            if (s.SlabsPartial <= partialBefore + bySlab.Length - Emptied || clock.Elapsed > TimeSpan.FromSeconds(30)) break;
            Thread.Sleep(5);
        }
        Console.WriteLine($"SWEEP_LONGEST_DELAY {longest}");
        Console.WriteLine(s.SlabsPartial <= partialBefore + bySlab.Length - Emptied ? $"SWEEP_DONE_MS {clock.ElapsedMilliseconds}" : $"SWEEP_NOT_DONE partial {s.SlabsPartial}");
        for (int i = Emptied; i < bySlab.Length; i++) SlabMemory.Free((void*)bySlab[i][PerSlab - 1]);
        var listed = new HashSet<nint>(bySlab.SelectMany(g => g));
        foreach (nint p in blocks) if (!listed.Contains(p)) SlabMemory.Free((void*)p);
    }
}
