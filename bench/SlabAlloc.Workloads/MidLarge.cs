using System.Diagnostics;

namespace SlabAlloc.Workloads;

/// <summary>
/// hakmem's mid-large multithreaded benchmark: <c>threads cycles working_set seed</c>. Each thread
/// owns a working set of slots; each cycle picks a slot at random and frees its block if it holds
/// one, else allocates 8-10, 16-18 or 32-34 KiB and touches every page of it. One cycle is one
/// operation.
/// </summary>
/// <remarks>Memory: each thread keeps a running total of the bytes its slots hold and its own peak;
/// the live-bytes peak reported is the sum of the threads' peaks, an upper bound on the process's
/// (the threads need not peak together). The baseline RSS is read before the threads start.</remarks>
internal sealed unsafe class MidLarge : CallForm.IWorkload<MidLarge.Arguments>
{
    public sealed record Arguments(int Threads, int Cycles, int WorkingSet, int Seed);

    public static Arguments Parse(IReadOnlyList<string> a)
    {
        if (a.Count != 4) throw new ArgumentException("midlarge needs: threads cycles working_set seed");
        return new Arguments(int.Parse(a[0]), int.Parse(a[1]), int.Parse(a[2]), int.Parse(a[3]));
    }

    public static RunFigures Run<TAlloc>(Arguments args) where TAlloc : struct, IBenchAllocator =>
        RunFigures.Measure("midlarge", TAlloc.Name, args.Threads, () =>
        {
            long baselineRssKiB = ResidentMemory.CurrentKiB();
            using var start = new Barrier(args.Threads + 1);
            var threads = new Thread[args.Threads];
            var livePeaks = new long[args.Threads];
            for (int t = 0; t < args.Threads; t++)
            {
                int seed = args.Seed + t * 7919, index = t;
                threads[t] = new Thread(() => livePeaks[index] = Worker<TAlloc>(args, seed, start));
                threads[t].Start();
            }
            start.SignalAndWait();
            var clock = Stopwatch.StartNew();
            foreach (Thread t in threads) t.Join();
            clock.Stop();
            return new RunOutcome((long)args.Threads * args.Cycles, clock.Elapsed.TotalSeconds, args.Threads)
            {
                BaselineRssKiB = baselineRssKiB,
                LiveBytesPeak = livePeaks.Sum(),
            };
        });

    /// <summary>Runs one thread's cycles; returns the most bytes its slots held at once.</summary>
    private static long Worker<TAlloc>(Arguments args, int seed, Barrier start) where TAlloc : struct, IBenchAllocator
    {
        var slots = new nint[args.WorkingSet];
        var sizes = new int[args.WorkingSet];
        long live = 0, peak = 0;
        var rng = new Random(seed);
        start.SignalAndWait();
        for (int i = 0; i < args.Cycles; i++)
        {
            int k = rng.Next(slots.Length);
            if (slots[k] != 0)
            {
                TAlloc.Free((void*)slots[k]);
                slots[k] = 0;
                live -= sizes[k];
                continue;
            }
            int kib = rng.Next(3) switch { 0 => 8, 1 => 16, _ => 32 };
            nuint size = (nuint)(kib * 1024 + rng.Next(2 * 1024 + 1));
            var p = (byte*)TAlloc.Alloc(size);
            for (nuint offset = 0; offset < size; offset += 4096) p[offset] = (byte)i;
            p[size - 1] = (byte)i;
            slots[k] = (nint)p;
            sizes[k] = (int)size;
            live += (int)size;
            if (live > peak) peak = live;
        }
        foreach (nint p in slots) if (p != 0) TAlloc.Free((void*)p);
        return peak;
    }
}
