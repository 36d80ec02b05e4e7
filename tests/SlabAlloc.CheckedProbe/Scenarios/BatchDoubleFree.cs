using SlabAlloc.Memory;
using static SlabAlloc.CheckedProbe.Probe;

namespace SlabAlloc.CheckedProbe.Scenarios;

/// <summary>
/// <c>batch-double-free</c> (run with <c>SLABALLOC_REMOTE_BATCH</c> set): a thread frees, into another thread's slab, block B, then C, then B again, so
/// that the second free of B (not in a row, so hardening does not stop it at the free) re-links the chain of
/// the thread's remote-free batch with B, its oldest block, in it twice. The thread ends; <c>Trim</c>
/// reclaims its cache and must report the double free (<c>DOUBLE_FREE_REPORTED</c>) rather than push a chain
/// with C cut off, and the allocator must go on working. In checked mode the second free is rejected at
/// once (<c>DOUBLE_FREE_REJECTED</c>).
/// </summary>
internal static unsafe class BatchDoubleFree
{
    public static int Run(string[] args, long baseline)
    {
        SlabAllocLogging.Configure(LogPrinter.Errors());
        int capacity = SizeClasses.Capacity(SizeClasses.ClassOf(64));
        nint[] blocks = RunOnNewThread(() => Enumerable.Range(0, 4 * capacity).Select(_ => (nint)SlabMemory.Alloc(64)).ToArray());
        nint[] oneSlab = blocks.GroupBy(p => p >> 16).First(g => g.Count() == capacity).ToArray();
        nint b = oneSlab[0], c = oneSlab[1];
        bool rejected = false;
        RunOnNewThread(() =>
        {
            SlabMemory.Free((void*)b);
            SlabMemory.Free((void*)c);
            try { SlabMemory.Free((void*)b); }
            catch (ArgumentException) { rejected = true; }
            return [];
        });
        if (rejected) Console.WriteLine("DOUBLE_FREE_REJECTED");
        try
        {
            SlabMemory.Trim();
            if (!rejected) Fail("DOUBLE_FREE_NOT_REPORTED: Trim pushed the freer's batch without a word");
        }
        catch (InvalidOperationException e) { Console.WriteLine($"DOUBLE_FREE_REPORTED: {OneLine(e.Message)}"); }
        foreach (nint p in blocks.Except([b, c])) SlabMemory.Free((void*)p);
        SlabAllocLogging.Configure(null);
        // A rejected double free changed nothing; an accepted one was counted: the count from here on is
        // the one to come back to.
        return Finish(rejected ? baseline : SlabMemory.GetStatistics().BlocksInUse);
    }
}
