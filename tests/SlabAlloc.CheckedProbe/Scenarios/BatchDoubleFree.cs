using SlabAlloc.Memory;
using static SlabAlloc.CheckedProbe.Probe;

namespace SlabAlloc.CheckedProbe.Scenarios;

/// <summary>
/// <c>batch-double-free [two-classes]</c> (run with <c>SLABALLOC_REMOTE_BATCH</c> set): a thread frees, into another
/// thread's slab, block B, then C, then B again, so that the second free of B (not in a row, so hardening does not stop
/// it at the free) re-links the chain of the thread's remote-free batch with B, its oldest block, in it twice. The
/// thread ends; <c>Trim</c> reclaims its cache and must report the double free (<c>DOUBLE_FREE_REPORTED</c>) rather
/// than push a chain with C cut off, and the allocator must go on working. In checked mode the second free is rejected
/// at once (<c>DOUBLE_FREE_REJECTED</c>). With <c>two-classes</c> the thread does the same with 64 B and 128 B blocks
/// in turn, damaging one batch of each class: the first damage is reported, the other counted (an error line
/// of its own); in checked mode both second frees are rejected.
/// </summary>
internal static unsafe class BatchDoubleFree
{
    public static int Run(string[] args, long baseline)
    {
        SlabAllocLogging.Configure(LogPrinter.Errors());
        nuint[] sizes = args.Length > 0 && args[0] == "two-classes" ? [64, 128] : [64];
        var blocks = new nint[sizes.Length][];
        var pairs = new (nint B, nint C)[sizes.Length];
        for (int k = 0; k < sizes.Length; k++)
        {
            nuint size = sizes[k];
            int capacity = SizeClasses.Capacity(SizeClasses.ClassOf(size));
            blocks[k] = RunOnNewThread(() => Enumerable.Range(0, 4 * capacity).Select(_ => (nint)SlabMemory.Alloc(size)).ToArray());
            nint[] oneSlab = blocks[k].GroupBy(p => (nint)SuperslabHeader.SlabOf((void*)p)).First(g => g.Count() == capacity).ToArray();
            pairs[k] = (oneSlab[0], oneSlab[1]);
        }
        int rejected = 0;
        RunOnNewThread(() =>
        {
            foreach ((nint b, _) in pairs) SlabMemory.Free((void*)b);
            foreach ((_, nint c) in pairs) SlabMemory.Free((void*)c);
            foreach ((nint b, _) in pairs)
            {
                try { SlabMemory.Free((void*)b); }
                catch (ArgumentException) { rejected++; }
            }
            return [];
        });
        for (int i = 0; i < rejected; i++) Console.WriteLine("DOUBLE_FREE_REJECTED");
        try
        {
            SlabMemory.Trim();
            if (rejected == 0) Fail("DOUBLE_FREE_NOT_REPORTED: Trim pushed the freer's batch without a word");
        }
        catch (InvalidOperationException e) { Console.WriteLine($"DOUBLE_FREE_REPORTED: {OneLine(e.Message)}"); }
        for (int k = 0; k < sizes.Length; k++)
            foreach (nint p in blocks[k].Except([pairs[k].B, pairs[k].C])) SlabMemory.Free((void*)p);
        SlabAllocLogging.Configure(null);
        // A rejected double free changed nothing; an accepted one was counted: the count from here on is
        // the one to come back to.
        return Finish(rejected == sizes.Length ? baseline : SlabMemory.GetStatistics().BlocksInUse);
    }
}
