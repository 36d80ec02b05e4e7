using SlabAlloc.Runtime;
using static SlabAlloc.CheckedProbe.Probe;

namespace SlabAlloc.CheckedProbe.Scenarios;

/// <summary>
/// <c>arena-used-up</c>: allocates a few blocks (from the superslab arena, where there is one, printed as
/// <c>ARENA</c>), then marks the arena as used up, so that every new superslab is mapped on its
/// own and its blocks are validated through the registry, then works those blocks as the arena's are worked:
/// two threads allocate 24 MiB of stamped 64-byte and 2,000-byte blocks (new superslabs, outside the arena),
/// each frees half of its own blocks and half of the other's while the other runs, and hostile pointers are
/// given to <c>Free</c>: an interior pointer, a superslab header, the same block twice in a row, a block of a
/// slab with none out, and an address no one mapped. Prints <c>OUTSIDE_ARENA</c> with the count of blocks
/// outside the arena, one <c>REJECTED: &lt;message&gt;</c> per hostile call, one <c>LOGGED_WARNING</c> per
/// warning SlabAlloc logged (the two threads meet the used-up arena at once: it must be logged once) and the
/// statistics' arena line (<c>STATISTICS</c>), and fails on any accepted call, a damaged stamp or inexact
/// accounting. With <c>waiting-logger</c>, the logger, at the warning, runs <c>Trim</c> on another thread and waits
/// for it (<see cref="Probe.TrimOnAnotherThreadOnce"/>): the warning must reach it with nothing of the pool held.
/// </summary>
internal static unsafe class ArenaUsedUp
{
    private const int BlocksPerThread = 100_000;

    public static int Run(string[] args, long baseline)
    {
        if (args.Length > 1 || args.Length == 1 && args[0] != "waiting-logger") return BadArguments;
        // Blocks from the arena first (they open a range of it), so that the run-out is met in use.
        var early = new nint[1000];
        for (int i = 0; i < early.Length; i++) early[i] = (nint)SlabMemory.Alloc(64);
        (nuint arenaBase, nuint arenaBytes, nuint open) = TestHooks.SuperslabArenaRange;
        Console.WriteLine(arenaBytes == 0 ? "ARENA: none" : $"ARENA: {open} bytes open");
        SlabAllocLogging.Configure(LogPrinter.Warnings(args.Length == 1 ? TrimOnAnotherThreadOnce : null));
        TestHooks.UseUpSuperslabArena();
        nint[][] owned = new nint[2][];
        var threads = new Thread[2];
        using var allocated = new Barrier(2);
        for (int t = 0; t < 2; t++)
        {
            int me = t;
            threads[t] = new Thread(() =>
            {
                var mine = new nint[BlocksPerThread];
                for (int i = 0; i < mine.Length; i++)
                {
                    nuint size = i % 8 == 0 ? 2000u : 64u;
                    var p = (byte*)SlabMemory.Alloc(size);
                    Stamp(p, size, (byte)(me * 31 + i));
                    mine[i] = (nint)p;
                }
                owned[me] = mine;
                allocated.SignalAndWait();
                // Own blocks at even indices, the other thread's at odd ones, both threads at once.
                nint[] other = owned[1 - me];
                for (int i = 0; i < BlocksPerThread; i++)
                {
                    nuint size = i % 8 == 0 ? 2000u : 64u;
                    nint p = (i & 1) == 0 ? mine[i] : other[i];
                    byte seed = (byte)(((i & 1) == 0 ? me : 1 - me) * 31 + i);
                    if (!Verify((byte*)p, size, seed)) Fail($"STAMP_DAMAGED: block {i} of thread {((i & 1) == 0 ? me : 1 - me)}");
                    SlabMemory.Free((void*)p);
                }
            });
            threads[t].Start();
        }
        foreach (Thread t in threads) t.Join();
        int outside = owned.SelectMany(b => b).Count(p => (nuint)p - arenaBase >= arenaBytes);
        Console.WriteLine($"OUTSIDE_ARENA: {outside} of {2 * BlocksPerThread}");
        SlabAllocLogging.Configure(null);
        PrintArenaStatistics();
        if (outside == 0) Fail("PROBE_ERROR: no block came from a superslab outside the arena");

        // A block outside the arena (this thread's slabs from before may still be in it).
        var company = new List<nint>();
        byte* block;
        while ((nuint)(block = (byte*)SlabMemory.Alloc(64)) - arenaBase < arenaBytes && company.Count < 200_000) company.Add((nint)block);
        nuint outsideBlock = (nuint)block;
        if (outsideBlock - arenaBase < arenaBytes) Fail("PROBE_ERROR: no new 64-byte block came from outside the arena");
        Reject(block + 16, "an interior pointer");
        Reject((void*)(outsideBlock & ~(nuint)(4 * 1024 * 1024 - 1)), "a superslab header");
        var lone = (byte*)SlabMemory.Alloc(64);
        SlabMemory.Free(lone);
        Reject(lone, "the same block twice in a row");
        SlabMemory.Free(block);
        Reject(block, "a block of a slab with none out");
        Reject((void*)0x1000, "an address no one mapped");
        foreach (nint p in company) SlabMemory.Free((void*)p);
        foreach (nint p in early) SlabMemory.Free((void*)p);
        return Finish(baseline);
    }

    private static void Reject(void* p, string what)
    {
        long before = SlabMemory.GetStatistics().BlocksInUse;
        try
        {
            SlabMemory.Free(p);
            Fail($"ACCEPTED: {what}");
        }
        catch (ArgumentException e) { Console.WriteLine($"REJECTED: {what}: {OneLine(e.Message)}"); }
        long after = SlabMemory.GetStatistics().BlocksInUse;
        if (after != before) Fail($"ACCOUNTING_WRONG: {what} changed BlocksInUse from {before} to {after}");
    }
}
