using static SlabAlloc.CheckedProbe.Probe;

namespace SlabAlloc.CheckedProbe.Scenarios;

/// <summary>
/// <c>double-free</c>, the default mode (run with <c>SLABALLOC_CHECKED=1</c>): frees a small block, a
/// medium block and a block allocated by another thread twice each, and prints
/// <c>DOUBLE_FREE_DETECTED: &lt;message&gt;</c> for every second free that throws
/// <see cref="ArgumentException"/>. Exit code 1 when a double free is not detected or a rejected one
/// changes the count of blocks in use.
/// </summary>
internal static unsafe class DoubleFree
{
    public static int Run(string[] args, long baseline)
    {
        Console.WriteLine("SCENARIO small (64 bytes, freed twice by its own thread)");
        ExpectDoubleFreeDetected((nuint)SlabMemory.Alloc(64));

        Console.WriteLine("SCENARIO medium (20000 bytes, freed twice by its own thread)");
        ExpectDoubleFreeDetected((nuint)SlabMemory.Alloc(20000));

        Console.WriteLine("SCENARIO remote (100 bytes allocated by another thread, freed twice by the main thread)");
        nuint block = 0;
        var allocator = new Thread(() => block = (nuint)SlabMemory.Alloc(100));
        allocator.Start();
        allocator.Join();
        ExpectDoubleFreeDetected(block);

        return Finish(baseline);
    }

    private static void ExpectDoubleFreeDetected(nuint block)
    {
        SlabMemory.Free((void*)block);
        long before = SlabMemory.GetStatistics().BlocksInUse;
        try
        {
            SlabMemory.Free((void*)block);
            Fail($"DOUBLE_FREE_MISSED: the second Free(0x{block:x}) was accepted");
        }
        catch (ArgumentException e)
        {
            Console.WriteLine($"DOUBLE_FREE_DETECTED: {OneLine(e.Message)}");
        }
        long after = SlabMemory.GetStatistics().BlocksInUse;
        if (after != before) Fail($"ACCOUNTING_CHANGED: BlocksInUse {before} -> {after} after the rejected double free");
    }
}
