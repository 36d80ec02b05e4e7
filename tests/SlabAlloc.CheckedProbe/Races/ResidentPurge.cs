using static SlabAlloc.CheckedProbe.Probe;
using static SlabAlloc.CheckedProbe.Races.RaceHarness;

namespace SlabAlloc.CheckedProbe.Races;

/// <summary>
/// <c>race resident-purge</c>: slabs released with their pages resident, claimed again by other threads,
/// while purges decommit what they find resident. Run with no empty slab kept by the pool
/// (<c>SLABALLOC_EMPTY_SLABS_PER_CLASS=0 SLABALLOC_SHARED_EMPTY_SLABS=0</c>), so that every slab a thread
/// empties goes back to its superslab's free slots at once, pages resident, and with a 1 ms decay, so that
/// the release path purges aged slots every millisecond. Three threads each take 300 blocks of one size
/// (512 B, 3,000 B, 20 KiB, 40 KiB in turn: one-slot and eight-slot slabs), stamp every byte, check every
/// stamp and free them all, over and over; a fourth runs <c>Trim</c> in a loop, which purges every resident
/// slot. A purge that decommitted a slot some thread had claimed would zero its blocks under the thread:
/// every stamp must hold. At the end, with everything freed and trimmed, no slot may be left resident and
/// nothing mapped.
/// </summary>
internal static unsafe class ResidentPurge
{
    private static readonly nuint[] Sizes = [512, 3000, 20 * 1024, 40 * 1024];

    public static long Run(TimeSpan time)
    {
        const int Blocks = 300;
        long rounds = 0;
        var stop = new StopFlag();
        RunFor(time, stop, 4, id =>
        {
            if (id == 3)
            {
                while (!stop.IsSet) SlabMemory.Trim();
                return;
            }
            var blocks = new nint[Blocks];
            for (int round = 0; !stop.IsSet; round++)
            {
                nuint size = Sizes[(round + id) % Sizes.Length];
                var seed = (byte)(id * 64 + round);
                for (int i = 0; i < Blocks; i++)
                {
                    blocks[i] = (nint)SlabMemory.Alloc(size);
                    Stamp((byte*)blocks[i], size, (byte)(seed + i));
                }
                for (int i = 0; i < Blocks; i++)
                {
                    if (!Verify((byte*)blocks[i], size, (byte)(seed + i)))
                        Fail($"RACE_VIOLATION: resident-purge: a {size}-byte block at 0x{blocks[i]:x} lost its stamp while held (its slot decommitted under its slab?)");
                }
                for (int i = 0; i < Blocks; i++) SlabMemory.Free((void*)blocks[i]);
                Interlocked.Increment(ref rounds);
            }
        });
        ExpectEverythingReturned("resident-purge");
        int resident = SlabMemory.GetStatistics().ResidentUnusedSlots;
        if (resident != 0) Fail($"RACE_VIOLATION: resident-purge: {resident} slots still resident after Trim");
        return rounds;
    }
}
