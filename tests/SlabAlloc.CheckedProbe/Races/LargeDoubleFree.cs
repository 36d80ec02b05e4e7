using System.Diagnostics;
using static SlabAlloc.CheckedProbe.Probe;
using static SlabAlloc.CheckedProbe.Races.RaceHarness;

namespace SlabAlloc.CheckedProbe.Races;

/// <summary>
/// <c>race large-double-free</c>: two threads free the same large block at the same moment.
/// Repeatedly: a 256 KiB block is allocated and stamped, then two threads free it and a third
/// reallocates it (to twice the size, then frees the new block) at the same moment. Exactly one of the
/// three may return; the others must throw <see cref="ArgumentException"/>. Then two
/// 256 KiB blocks are allocated: they must be different and must not overlap. Run with and without the
/// large-block cache (<c>SLABALLOC_LARGE_CACHE_MB=0</c>).
/// </summary>
internal static unsafe class LargeDoubleFree
{
    public static long Run(TimeSpan time)
    {
        const int Size = 256 * 1024, Freers = 3;
        var clock = Stopwatch.StartNew();
        nuint block = 0;
        int returned = 0;
        long rounds = 0;
        using var start = new Barrier(Freers + 1);
        using var done = new Barrier(Freers + 1);
        var stop = new StopFlag();
        var freers = new Thread[Freers];
        for (int f = 0; f < Freers; f++)
        {
            int id = f;
            freers[f] = new Thread(() =>
            {
                while (true)
                {
                    start.SignalAndWait();
                    if (stop.IsSet) return;
                    try
                    {
                        void* p = (void*)Volatile.Read(ref block);
                        // One of the three moves the block instead of freeing it (Realloc claims it first).
                        if (id == 0) SlabMemory.Free(SlabMemory.Realloc(p, 2 * Size));
                        else SlabMemory.Free(p);
                        Interlocked.Increment(ref returned);
                    }
                    catch (ArgumentException) { }
                    done.SignalAndWait();
                }
            });
            freers[f].Start();
        }
        while (clock.Elapsed < time || rounds < 20)
        {
            var p = (nuint)SlabMemory.Alloc(Size);
            Stamp((byte*)p, 4096, 0x3C);
            Volatile.Write(ref block, p);
            Volatile.Write(ref returned, 0);
            start.SignalAndWait();
            done.SignalAndWait();
            if (returned != 1) Fail($"RACE_VIOLATION: {returned} of {Freers} simultaneous frees of the large block 0x{p:x} returned");
            var x = (nuint)SlabMemory.Alloc(Size);
            var y = (nuint)SlabMemory.Alloc(Size);
            if (x + Size > y && y + Size > x) Fail($"RACE_VIOLATION: the large blocks 0x{x:x} and 0x{y:x} overlap");
            SlabMemory.Free((void*)x);
            if (x != y) SlabMemory.Free((void*)y);
            rounds++;
        }
        stop.Set();
        start.SignalAndWait();
        foreach (Thread t in freers) t.Join();
        return rounds;
    }
}
