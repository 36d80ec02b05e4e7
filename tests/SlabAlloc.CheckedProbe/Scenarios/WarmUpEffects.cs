using static SlabAlloc.CheckedProbe.Probe;

namespace SlabAlloc.CheckedProbe.Scenarios;

/// <summary>
/// <c>warmup</c>: what the start-up thread's warm-up leaves behind, and what it spares the first
/// allocation. Waits for the start-up thread to finish (it publishes the meter after the warm-up), then
/// prints what the statistics show (<c>WARMUP_ALLOCATIONS</c>, <c>WARMUP_FREES</c>, <c>BLOCKS_IN_USE</c>,
/// <c>SLABS_OWNED</c>, <c>THREAD_CACHE_RECORDS</c>) and how many methods the JIT compiled on this thread
/// for its first 64-byte allocation and free (<c>FIRST_PAIR_JIT_METHODS</c>). Nothing on this thread
/// has allocated before. No time limit: the test's guard on the child process has one.
/// </summary>
internal static unsafe class WarmUpEffects
{
    public static int Run(string[] args, long baseline)
    {
        Measure();
        // Not the count read at the start, when the warm-up's blocks may have been out: once the start-up
        // thread is done, nothing of its may be left in use.
        return Finish(baseline: 0);
    }

    private static void Measure()
    {
        using var published = new ManualResetEventSlim();
        using var listener = new System.Diagnostics.Metrics.MeterListener
        {
            InstrumentPublished = (instrument, _) => { if (instrument.Meter.Name == SlabAllocMetrics.MeterName) published.Set(); },
        };
        listener.Start();
        published.Wait();
        SlabLockStatistics locks = SlabMemory.GetLockStatistics();
        SlabStatistics stats = SlabMemory.GetStatistics();
        Console.WriteLine($"WARMUP_ALLOCATIONS {locks.Allocations}");
        Console.WriteLine($"WARMUP_FREES {locks.Frees}");
        Console.WriteLine($"BLOCKS_IN_USE {stats.BlocksInUse}");
        Console.WriteLine($"SLABS_OWNED {stats.SlabsOwned}");
        Console.WriteLine($"THREAD_CACHE_RECORDS {stats.ThreadCacheRecords}");
        long before = System.Runtime.JitInfo.GetCompiledMethodCount(currentThread: true);
        SlabMemory.Free(SlabMemory.Alloc(64));
        long compiled = System.Runtime.JitInfo.GetCompiledMethodCount(currentThread: true) - before;
        Console.WriteLine($"FIRST_PAIR_JIT_METHODS {compiled}");
    }
}
