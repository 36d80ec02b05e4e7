using SlabAlloc.Runtime;
using static SlabAlloc.CheckedProbe.Probe;

namespace SlabAlloc.CheckedProbe.Scenarios;

/// <summary>
/// <c>arena-refused</c>: the system refuses to open the next range of the superslab arena (the fault hook
/// refuses the second reservation of an allocation, the first being the mapping count's), and refuses the
/// superslab mapped on its own after it; without an arena, it refuses the first reservation, the
/// superslab's. Stamped 2,000-byte blocks are allocated until one allocation meets the refusal: it must
/// throw <see cref="OutOfMemoryException"/> and leave every block intact. Then the system gives memory
/// again: new superslabs are mapped on their own and the arena stays closed. Prints <c>ARENA</c> (none, or
/// the bytes open), <c>REFUSED</c> with the blocks allocated before the refusal, <c>OUTSIDE_ARENA</c> with
/// the count of later blocks outside the arena, one <c>LOGGED_WARNING</c> per warning and the statistics'
/// arena line (<c>STATISTICS</c>).
/// </summary>
internal static unsafe class ArenaRefused
{
    private const nuint Size = 2000;
    private const int After = 20_000;

    public static int Run(string[] args, long baseline)
    {
        var early = (byte*)SlabMemory.Alloc(Size);
        (nuint arenaBase, nuint arenaBytes, nuint open) = TestHooks.SuperslabArenaRange;
        Console.WriteLine(arenaBytes == 0 ? "ARENA: none" : $"ARENA: {open} bytes open");
        SlabAllocLogging.Configure(LogPrinter.Warnings());
        var blocks = new List<nint> { (nint)early };
        Stamp(early, Size, 0);
        bool refused = false;
        long refuseFrom = arenaBytes == 0 ? 1 : 2;
        // Enough to need a new superslab several times over: the refusal is met on the way.
        for (int i = 1; i < 50_000 && !refused; i++)
        {
            TestHooks.FailReservationsFrom(refuseFrom);
            try
            {
                var p = (byte*)SlabMemory.Alloc(Size);
                Stamp(p, Size, (byte)i);
                blocks.Add((nint)p);
            }
            catch (OutOfMemoryException)
            {
                refused = true;
                Console.WriteLine($"REFUSED: after {blocks.Count} blocks, {TestHooks.ReservationsRefused} reservations refused");
            }
            finally { TestHooks.StopFailingReservations(); }
        }
        if (!refused) Fail("PROBE_ERROR: no allocation met a refusal");
        int before = blocks.Count;
        for (int i = 0; i < After; i++)
        {
            var p = (byte*)SlabMemory.Alloc(Size);
            Stamp(p, Size, (byte)(before + i));
            blocks.Add((nint)p);
        }
        int outside = blocks.Skip(before).Count(p => (nuint)p - arenaBase >= arenaBytes);
        Console.WriteLine($"OUTSIDE_ARENA: {outside} of {After}");
        SlabAllocLogging.Configure(null);
        PrintArenaStatistics();
        for (int i = 0; i < blocks.Count; i++)
        {
            if (!Verify((byte*)blocks[i], Size, (byte)i)) Fail($"STAMP_DAMAGED: block {i}");
            SlabMemory.Free((void*)blocks[i]);
        }
        return Finish(baseline);
    }
}
