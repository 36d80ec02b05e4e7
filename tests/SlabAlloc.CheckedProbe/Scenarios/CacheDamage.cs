using static SlabAlloc.CheckedProbe.Probe;

namespace SlabAlloc.CheckedProbe.Scenarios;

/// <summary>
/// <c>cache-damage &lt;trim|free&gt;</c>: a block in the middle of the thread's free cache is overwritten
/// after its free (a write after free), and a flush of the cache, not an allocation, meets it. Blocks of
/// 4,000 bytes (16 to a slab) are allocated and freed into the cache, then the link of the 20th block freed is
/// overwritten.
/// <list type="bullet">
/// <item><c>trim</c>: 48 blocks freed (so the two older slabs have no block out); <c>Trim</c> flushes the cache
/// and meets the damage as it gives blocks back; it must report it (<c>TRIM_REPORTS: message</c>), let go of
/// the slabs it can, and leave the allocator working.</item>
/// <item><c>free</c>: 64 blocks freed, which fills the cache; the free of a 65th must make room by flushing,
/// which meets the damage: that free must throw <see cref="InvalidOperationException"/>
/// (<c>FREE_REPORTS: message</c>) and change nothing, so that the block can then be freed once, without a
/// double-free error (<c>FREE_AGAIN_SUCCEEDS</c>).</item>
/// </list>
/// Then the size allocates again (<c>SIZE_ALLOCATES_AGAIN</c>) and <see cref="Probe.Finish"/> checks the
/// allocator and the count of blocks in use. A Debug build runs its invariant checks at every slab let go.
/// </summary>
internal static unsafe class CacheDamage
{
    private const nuint Size = 4000;

    public static int Run(string[] args, long baseline)
    {
        if (args.Length != 1 || args[0] is not ("trim" or "free")) return BadArguments;
        bool byFree = args[0] == "free";
        var blocks = new nint[byFree ? 65 : 48];
        for (int i = 0; i < blocks.Length; i++) blocks[i] = (nint)SlabMemory.Alloc(Size);
        for (int i = 0; i < (byFree ? 64 : 48); i++) SlabMemory.Free((void*)blocks[i]);
        *(nint*)blocks[19] = unchecked((nint)0x7777_0000_1000); // the write after free

        if (!byFree)
        {
            try
            {
                SlabMemory.Trim();
                Fail("TRIM_MISSED_DAMAGE");
            }
            catch (InvalidOperationException e)
            {
                Console.WriteLine($"TRIM_REPORTS: {OneLine(e.Message)}");
            }
        }
        else
        {
            long inUse = SlabMemory.GetStatistics().BlocksInUse;
            try
            {
                SlabMemory.Free((void*)blocks[64]);
                Fail("FREE_MISSED_DAMAGE");
            }
            catch (InvalidOperationException e)
            {
                Console.WriteLine($"FREE_REPORTS: {OneLine(e.Message)}");
                long after = SlabMemory.GetStatistics().BlocksInUse;
                if (after != inUse) Fail($"FREE_CHANGED_COUNTS: BlocksInUse {inUse} before the reported free, {after} after");
                SlabMemory.Free((void*)blocks[64]); // still out: this is its one free
                Console.WriteLine("FREE_AGAIN_SUCCEEDS");
            }
        }

        try
        {
            SlabMemory.Free(SlabMemory.Alloc(Size));
            Console.WriteLine("SIZE_ALLOCATES_AGAIN");
        }
        catch (InvalidOperationException e)
        {
            Fail($"SIZE_STILL_REPORTS: {OneLine(e.Message)}");
        }
        SlabMemory.Trim();
        return Finish(baseline);
    }
}
