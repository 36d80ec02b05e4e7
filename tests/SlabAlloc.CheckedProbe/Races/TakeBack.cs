using System.Collections.Concurrent;
using SlabAlloc.Frontend;
using static SlabAlloc.CheckedProbe.Probe;
using static SlabAlloc.CheckedProbe.Races.RaceHarness;

namespace SlabAlloc.CheckedProbe.Races;

/// <summary>
/// <c>race take-back</c>: slabs taken back from live threads while their owners free into them. Two owner
/// threads each take 600 blocks of one small size (48, 256 or 1,000 B in turn, a seed of their own), stamp
/// every byte, hand about two in three to a freeing thread, which checks and frees them (remote frees), and
/// check and free the rest themselves in a shuffled order, so that an owner often frees the last live block of
/// a retained slab while the others' frees empty it. A fifth thread takes back, over and over, every slab of
/// the owners that other threads' frees emptied (directly, and through <c>Trim</c>). A slab taken while a
/// block of it was live would hand that block out again, to the owner's next blocks or to another thread: every
/// stamp must hold, every block must come back once, and at the end everything is returned. The race fails,
/// too, if no slab was taken back at all (it would have proved nothing).
/// </summary>
internal static unsafe class TakeBack
{
    private static readonly nuint[] Sizes = [48, 256, 1000];

    public static long Run(TimeSpan time)
    {
        const int Blocks = 600;
        long rounds = 0, takes = 0;
        int ownersDone = 0;
        var handed = new BlockingCollection<(nint Block, nuint Size, byte Seed)>(4 * Blocks);
        var stop = new StopFlag();
        long takenBefore = SlabMemory.GetStatistics().SlabsTakenBack;
        RunFor(time, stop, 4, id =>
        {
            if (id == 2)
            {
                foreach ((nint block, nuint size, byte seed) in handed.GetConsumingEnumerable()) CheckAndFree(block, size, seed);
                return;
            }
            if (id == 3)
            {
                for (int i = 0; !stop.IsSet; i++)
                {
                    if (i % 16 == 0) SlabMemory.Trim();
                    else takes += ThreadCacheRecords.TakeBackFreedSlabs(idleOnly: false);
                }
                return;
            }
            try
            {
                var rng = new Random(17 + id);
                var blocks = new nint[Blocks];
                var order = new int[Blocks];
                for (int round = 0; !stop.IsSet; round++)
                {
                    nuint size = Sizes[(round + id) % Sizes.Length];
                    var seed = (byte)(id * 101 + round);
                    for (int i = 0; i < Blocks; i++)
                    {
                        blocks[i] = (nint)SlabMemory.Alloc(size);
                        Stamp((byte*)blocks[i], size, (byte)(seed + i));
                        order[i] = i;
                    }
                    rng.Shuffle(order);
                    foreach (int i in order)
                    {
                        if (rng.Next(3) != 0) handed.Add((blocks[i], size, (byte)(seed + i)));
                        else CheckAndFree(blocks[i], size, (byte)(seed + i));
                    }
                    Interlocked.Increment(ref rounds);
                }
            }
            finally
            {
                // The freeing thread ends once both owners have handed their last blocks over.
                if (Interlocked.Increment(ref ownersDone) == 2) handed.CompleteAdding();
            }
        });
        long taken = SlabMemory.GetStatistics().SlabsTakenBack - takenBefore;
        Console.WriteLine($"take-back: {taken} slabs taken back ({takes} by the direct calls)");
        if (taken == 0) Fail("RACE_VIOLATION: take-back: no slab was taken back: the race proved nothing");
        ExpectEverythingReturned("take-back");
        return rounds;
    }

    private static void CheckAndFree(nint block, nuint size, byte seed)
    {
        if (!Verify((byte*)block, size, seed))
            Fail($"RACE_VIOLATION: take-back: a {size}-byte block at 0x{block:x} lost its stamp while live (its slab taken back under it?)");
        SlabMemory.Free((void*)block);
    }
}
