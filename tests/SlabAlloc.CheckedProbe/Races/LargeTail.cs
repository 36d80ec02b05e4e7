using static SlabAlloc.CheckedProbe.Probe;
using static SlabAlloc.CheckedProbe.Races.RaceHarness;

namespace SlabAlloc.CheckedProbe.Races;

/// <summary>
/// <c>race large-tail</c>: a foreign pointer in a large block's granule while the block is freed.
/// One thread allocates and frees 1 MiB blocks in a loop (run with
/// <c>SLABALLOC_LARGE_CACHE_MB=0</c>, so every free unmaps); three threads pass a pointer 2 MiB into the
/// last block's 4 MiB granule, beyond its mapping, to Free, UsableSize, Realloc and AlignedRealloc. Every
/// call must throw <see cref="ArgumentException"/>; none may crash the process.
/// </summary>
internal static unsafe class LargeTail
{
    public static long Run(TimeSpan time)
    {
        const int Size = 1 << 20;
        nuint granule = 0;
        long rounds = 0;
        var stop = new StopFlag();
        var churn = new Thread(() =>
        {
            while (!stop.IsSet)
            {
                var p = (byte*)SlabMemory.Alloc(Size);
                p[0] = 1;
                Volatile.Write(ref granule, (nuint)p & ~(nuint)0x3FFFFF);
                SlabMemory.Free(p);
                Interlocked.Increment(ref rounds);
            }
        });
        churn.Start();
        RunFor(time, stop, 3, id =>
        {
            int call = id;
            while (!stop.IsSet)
            {
                nuint g = Volatile.Read(ref granule);
                if (g == 0) continue;
                ExpectRejectedByCall(g + (2 << 20) + 16, call++ % 4, "a pointer past a large block's mapping");
            }
        });
        churn.Join();
        return rounds;
    }

    private static void ExpectRejectedByCall(nuint p, int call, string what)
    {
        try
        {
            switch (call)
            {
                case 0: SlabMemory.Free((void*)p); break;
                case 1: _ = SlabMemory.UsableSize((void*)p); break;
                case 2: _ = SlabMemory.Realloc((void*)p, 200); break;
                default: _ = SlabMemory.AlignedRealloc((void*)p, 200, 64); break;
            }
            Fail($"RACE_VIOLATION: call {call} accepted 0x{p:x}, {what}");
        }
        catch (ArgumentException) { }
    }
}
