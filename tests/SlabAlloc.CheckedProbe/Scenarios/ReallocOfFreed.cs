using static SlabAlloc.CheckedProbe.Probe;

namespace SlabAlloc.CheckedProbe.Scenarios;

/// <summary>
/// <c>realloc-freed</c> (run with <c>SLABALLOC_CHECKED=1</c>): passes freed blocks of 64 and 20,000 bytes to
/// Realloc and AlignedRealloc, which would free them again (a double free), and prints
/// <c>REALLOC_OF_FREED_DETECTED: &lt;message&gt;</c> for each rejected call. Exit code 1 when one is
/// accepted or the rejected call leaves a block in use.
/// </summary>
internal static unsafe class ReallocOfFreed
{
    public static int Run(string[] args, long baseline)
    {
        foreach (nuint size in new nuint[] { 64, 20000 })
        {
            foreach (bool aligned in new[] { false, true })
            {
                string call = aligned ? "AlignedRealloc" : "Realloc";
                Console.WriteLine($"SCENARIO {call} of a freed {size}-byte block");
                void* block = SlabMemory.Alloc(size);
                SlabMemory.Free(block);
                long before = SlabMemory.GetStatistics().BlocksInUse;
                try
                {
                    void* moved = aligned ? SlabMemory.AlignedRealloc(block, size * 2, 64) : SlabMemory.Realloc(block, size * 2);
                    Fail($"REALLOC_OF_FREED_MISSED: {call}(0x{(nuint)block:x}, {size * 2}) of a freed block returned 0x{(nuint)moved:x}");
                }
                catch (ArgumentException e)
                {
                    Console.WriteLine($"REALLOC_OF_FREED_DETECTED: {OneLine(e.Message)}");
                }
                long after = SlabMemory.GetStatistics().BlocksInUse;
                if (after != before) Fail($"ACCOUNTING_CHANGED: BlocksInUse {before} -> {after} after the rejected {call} of a freed {size}-byte block");
            }
        }
        return Finish(baseline);
    }
}
