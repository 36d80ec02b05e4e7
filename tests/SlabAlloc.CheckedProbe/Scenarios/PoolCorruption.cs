using static SlabAlloc.CheckedProbe.Probe;

namespace SlabAlloc.CheckedProbe.Scenarios;

/// <summary>
/// <c>pool-corruption</c>: two slabs of one class in the shared pool's partial list, each with blocks still
/// out (their owner exited and its cache was handed back). One block of the lower slab is freed twice,
/// which makes that slab's remote-free list a cycle (run with <c>SLABALLOC_REMOTE_BATCH=0</c>: a batched
/// second free in a row is rejected at once); a large block sits in the large-block cache.
/// <c>Trim</c> meets the cycle after it has set the upper slab aside: it must log and report it
/// (<c>RECLAIM_CORRUPTION_REPORTED</c>), keep the upper slab in the pool (a new thread's first
/// allocation of the class reuses it: <c>KEPT_SLAB_REUSED</c>), still empty the large-block cache
/// (<c>LARGE_CACHE_FLUSHED</c>), and a second <c>Trim</c> must return (<c>TRIM_RETURNS</c>).
/// </summary>
internal static unsafe class PoolCorruption
{
    public static int Run(string[] args, long baseline)
    {
        if (args.Length == 1 && args[0] == "acquire")
        {
            CorruptThenAcquire();
            return Finish(SlabMemory.GetStatistics().BlocksInUse);
        }
        if (args.Length != 0) return BadArguments;
        Corrupt();
        // The double-freed block was counted twice: the count from here on is the one to come back to.
        return Finish(SlabMemory.GetStatistics().BlocksInUse);
    }

    private static void Corrupt()
    {
        SlabAllocLogging.Configure(LogPrinter.Errors());
        nint[] kept = TwoSlabsInThePool();
        if (kept.Length == 0) return;
        SlabMemory.Free((void*)kept[1]);
        SlabMemory.Free((void*)kept[1]); // the lower slab's remote-free list is now a cycle
        SlabMemory.Free(SlabMemory.Alloc(1 << 20));
        try
        {
            SlabMemory.Trim();
        }
        catch (InvalidOperationException e)
        {
            Console.WriteLine($"RECLAIM_CORRUPTION_REPORTED: {e.Message}");
        }
        if (SlabMemory.GetStatistics().LargeCachedBytes == 0) Console.WriteLine("LARGE_CACHE_FLUSHED");
        else Fail("LARGE_CACHE_KEPT: Trim stopped before emptying the large-block cache");

        SlabStatistics before = SlabMemory.GetStatistics();
        nint[] fresh = RunOnNewThread(() => [(nint)SlabMemory.Alloc(64)]);
        SlabStatistics after = SlabMemory.GetStatistics();
        if (after.AcquiredStage1 - before.AcquiredStage1 == 1 && after.AcquiredStage2 == before.AcquiredStage2 && after.AcquiredStage3 == before.AcquiredStage3)
            Console.WriteLine("KEPT_SLAB_REUSED");
        else Fail($"KEPT_SLAB_LOST: the next slab of the class came from stage 2 or 3 ({after.AcquiredStage2 - before.AcquiredStage2}, {after.AcquiredStage3 - before.AcquiredStage3})");

        SlabMemory.Trim();
        Console.WriteLine("TRIM_RETURNS");
        SlabMemory.Free((void*)fresh[0]);
        SlabMemory.Free((void*)kept[0]);
        SlabMemory.Free((void*)kept[2]); // into the slab left out of use: accepted, never reused
        SlabAllocLogging.Configure(null);
    }

    /// <summary><c>pool-corruption acquire</c>: the same two slabs and the same cycle, met this time by a thread that
    /// allocates through the upper slab and pops the lower one from the pool. The logger, at the error, runs
    /// <c>Trim</c> on another thread and waits for it: the error must be logged once nothing of the pool is held
    /// (with <c>SLABALLOC_POOL=mutex</c>, its lock; <c>LOGGER_TRIM_RETURNED</c>, or <c>LOGGER_WAITED_FOR_EVER</c> and
    /// exit code 4 after 20 s). The allocation that met it reports it (<c>ACQUIRE_REPORTED</c>).</summary>
    private static void CorruptThenAcquire()
    {
        SlabAllocLogging.Configure(LogPrinter.Errors(TrimOnAnotherThreadOnce));
        nint[] kept = TwoSlabsInThePool();
        if (kept.Length == 0) return;
        SlabMemory.Free((void*)kept[1]);
        SlabMemory.Free((void*)kept[1]); // the lower slab's remote-free list is now a cycle
        string? reported = null;
        RunOnNewThread(() =>
        {
            var blocks = new List<nint>();
            try
            {
                for (int i = 0; i < 2200; i++) blocks.Add((nint)SlabMemory.Alloc(64));
            }
            catch (InvalidOperationException e)
            {
                reported = e.Message;
            }
            foreach (nint p in blocks) SlabMemory.Free((void*)p);
            return [];
        });
        if (reported == null) Fail("ACQUIRE_NOT_REPORTED: 2,200 allocations of the class never met the cycle");
        else Console.WriteLine($"ACQUIRE_REPORTED: {OneLine(reported)}");
        SlabMemory.Trim();
        Console.WriteLine("TRIM_RETURNS");
        SlabMemory.Free((void*)kept[0]);
        SlabAllocLogging.Configure(null);
    }

    /// <summary>Two slabs of the 64-byte class in the pool's partial list, the lower one holding the second and third
    /// block returned, the upper one the first; empty when the set-up failed (reported).</summary>
    private static nint[] TwoSlabsInThePool()
    {
        // One thread fills a 64 KiB slab of 64-byte blocks and starts a second; it keeps one block of the
        // first and two of the second, frees the rest and exits. Handing its cache back lets the current
        // (second) slab go first, then the first: the first ends on top of the partial list.
        nint[] kept = RunOnNewThread(() =>
        {
            var blocks = new nint[1100];
            for (int i = 0; i < blocks.Length; i++) blocks[i] = (nint)SlabMemory.Alloc(64);
            nint firstSlab = blocks[0] >> 16, lastSlab = blocks[^1] >> 16;
            if (firstSlab == lastSlab || blocks.Any(p => p >> 16 != firstSlab && p >> 16 != lastSlab)) return [];
            nint x = blocks[0], y1 = blocks[^1], y2 = blocks[^2];
            foreach (nint p in blocks) if (p != x && p != y1 && p != y2) SlabMemory.Free((void*)p);
            return [x, y1, y2];
        });
        if (kept.Length == 0) { Fail("SETUP: 1100 blocks of 64 B did not span exactly two slabs"); return []; }
        SlabMemory.Trim(); // the dead thread's cache handed back: both slabs to the partial list
        return kept;
    }
}
