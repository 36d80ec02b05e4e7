using static SlabAlloc.CheckedProbe.Probe;
using static SlabAlloc.CheckedProbe.Races.RaceHarness;

namespace SlabAlloc.CheckedProbe.Races;

/// <summary>
/// <c>race stale-trim</c> and <c>race stale-usable</c>: a freed pointer passed to every call while its
/// superslab is returned. Run with nothing kept for reuse (no empty slabs per class, no shared reserve,
/// no superslab cache, no decay). One thread allocates a 64 B block, frees it, publishes the now stale
/// pointer and calls Trim, which returns the block's superslab to the system, in a loop; three threads
/// pass the stale pointer to Free, UsableSize, Realloc and AlignedRealloc (<c>stale-trim</c>, with checked
/// mode on), or only to UsableSize (<c>stale-usable</c>, in any mode: a double free that is not detected
/// corrupts, by design). Nothing may crash. A stale call may meet a new block at the same address (the
/// range is reused), which it then frees; the allocating thread's own free of it is rejected then, so
/// every block is freed exactly once and the count of blocks in use comes back exactly.
/// <c>RACE_STALE_MET_LIVE</c> is how many times that happened.
/// </summary>
internal static unsafe class StaleTrim
{
    /// <param name="readOnly">Only UsableSize (<c>stale-usable</c>).</param>
    public static long Run(TimeSpan time, bool readOnly)
    {
        nuint stale = 0;
        long rounds = 0, stolen = 0;
        var stop = new StopFlag();
        var churn = new Thread(() =>
        {
            while (!stop.IsSet)
            {
                // Not written to: a stale call may free it the moment it is handed out.
                var p = (byte*)SlabMemory.Alloc(64);
                try { SlabMemory.Free(p); }
                catch (ArgumentException) { Interlocked.Increment(ref stolen); } // a stale free met this block first
                Volatile.Write(ref stale, (nuint)p);
                SlabMemory.Trim();
                Interlocked.Increment(ref rounds);
            }
        });
        churn.Start();
        RunFor(time, stop, 3, id =>
        {
            int call = id;
            while (!stop.IsSet)
            {
                nuint p = Volatile.Read(ref stale);
                if (p == 0) continue;
                int which = readOnly ? 1 : call++ % 4;
                try
                {
                    switch (which)
                    {
                        case 0: SlabMemory.Free((void*)p); break;
                        case 1: _ = SlabMemory.UsableSize((void*)p); break;
                        case 2: SlabMemory.Free(SlabMemory.Realloc((void*)p, 200)); break;
                        default: SlabMemory.Free(SlabMemory.AlignedRealloc((void*)p, 200, 64)); break;
                    }
                }
                catch (ArgumentException) { }
            }
        });
        churn.Join();
        Console.WriteLine($"RACE_STALE_MET_LIVE {stolen}");
        return rounds;
    }
}
