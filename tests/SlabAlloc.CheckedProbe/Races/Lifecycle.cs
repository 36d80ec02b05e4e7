using static SlabAlloc.CheckedProbe.Probe;
using static SlabAlloc.CheckedProbe.Races.RaceHarness;

namespace SlabAlloc.CheckedProbe.Races;

/// <summary>
/// <c>race lifecycle</c>: slabs handed between threads as fast as possible.
/// Run with <c>SLABALLOC_THREAD_CACHE_LIMIT=4</c>, so that every few allocations a thread lets
/// its slab go (often full, detached) and remote frees publish it again. Four threads allocate stamped
/// blocks of 16 B to 2 KiB and swap them through a shared array by atomic exchange (most frees are
/// remote), then free what is left. Every stamp must hold, and once everything is freed and Trim has
/// run, no slab may be counted full, partial, empty or reserved: a slab's recorded state must follow
/// it through every hand-over.
/// </summary>
internal static unsafe class Lifecycle
{
    public static long Run(TimeSpan time)
    {
        const int Slots = 4096;
        var shared = new nint[Slots];
        long rounds = 0;
        var stop = new StopFlag();
        RunFor(time, stop, 4, id =>
        {
            var rng = new Random(1000 + id);
            while (!stop.IsSet)
            {
                var size = (nuint)rng.Next(16, 2049);
                var p = (byte*)SlabMemory.Alloc(size);
                *(nuint*)p = size;
                p[size - 1] = (byte)size;
                nint old = Interlocked.Exchange(ref shared[rng.Next(Slots)], (nint)p);
                if (old != 0) FreeStamped(old);
                Interlocked.Increment(ref rounds);
            }
        });
        foreach (nint p in shared) if (p != 0) FreeStamped(p);
        ExpectEverythingReturned("lifecycle");
        return rounds;

        static void FreeStamped(nint p)
        {
            nuint size = *(nuint*)p;
            if (size < 16 || size > 2048 || ((byte*)p)[size - 1] != (byte)size) Fail($"RACE_VIOLATION: the block at 0x{p:x} was overwritten");
            SlabMemory.Free((void*)p);
        }
    }
}
