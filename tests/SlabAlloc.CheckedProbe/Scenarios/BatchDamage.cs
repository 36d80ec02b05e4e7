using SlabAlloc.Memory;
using static SlabAlloc.CheckedProbe.Probe;

namespace SlabAlloc.CheckedProbe.Scenarios;

/// <summary>
/// <c>batch-damage</c>: a block held in a thread's remote-free batch is overwritten after its free (a write
/// after free), and the push of the batch meets it. The main thread allocates four slabs of 64-byte blocks; a
/// second thread frees blocks B, C and E of one slab (the batch holds all three, E linked to C linked to B), the
/// link of E is overwritten with an address outside the heap, and the thread then frees block D of another slab,
/// which the batch cannot take, so the free pushes the batch first. That push must report the damage
/// (<c>FREE_REPORTS: message</c>) without following the bad link (with hardening off too, where links are stored
/// as they are) and leave D's free undone, in checked mode too (D still marked handed out), so that D can then be
/// freed once without a double-free error (<c>FREE_AGAIN_SUCCEEDS</c>). B, C and E were freed as far as the
/// statistics go (their slab keeps them as out, with the dropped batch); the rest is freed and
/// <see cref="Probe.Finish"/> checks the allocator and the count.
/// </summary>
internal static unsafe class BatchDamage
{
    public static int Run(string[] args, long baseline)
    {
        if (args.Length != 0) return BadArguments;
        int capacity = SizeClasses.Capacity(SizeClasses.ClassOf(64));
        var blocks = new nint[4 * capacity];
        for (int i = 0; i < blocks.Length; i++) blocks[i] = (nint)SlabMemory.Alloc(64);
        nint[][] slabs = blocks.GroupBy(p => p >> 16).Where(g => g.Count() == capacity).Select(g => g.ToArray()).Take(2).ToArray();
        nint b = slabs[0][0], c = slabs[0][1], e = slabs[0][2], d = slabs[1][0];

        RunOnNewThread(() =>
        {
            SlabMemory.Free((void*)b);
            SlabMemory.Free((void*)c);
            SlabMemory.Free((void*)e);
            *(nint*)e = unchecked((nint)0x7777_0000_1000); // the write after free
            long inUse = SlabMemory.GetStatistics().BlocksInUse;
            try
            {
                SlabMemory.Free((void*)d);
                Fail("FREE_MISSED_DAMAGE");
            }
            catch (InvalidOperationException e)
            {
                Console.WriteLine($"FREE_REPORTS: {OneLine(e.Message)}");
                long after = SlabMemory.GetStatistics().BlocksInUse;
                if (after != inUse) Fail($"FREE_CHANGED_COUNTS: BlocksInUse {inUse} before the reported free, {after} after");
                try
                {
                    SlabMemory.Free((void*)d); // still out: this is its one free
                    Console.WriteLine("FREE_AGAIN_SUCCEEDS");
                }
                catch (Exception again)
                {
                    Fail($"FREE_AGAIN_FAILS: {again.GetType().Name}: {OneLine(again.Message)}");
                }
            }
            return [];
        });

        foreach (nint p in blocks)
            if (p != b && p != c && p != e && p != d) SlabMemory.Free((void*)p);
        SlabMemory.Trim();
        return Finish(baseline);
    }
}
