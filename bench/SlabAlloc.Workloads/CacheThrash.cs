using System.Diagnostics;

namespace SlabAlloc.Workloads;

/// <summary>
/// cache-thrash, from Hoard (Berger et al., ASPLOS 2000) as mimalloc-bench runs it: active false
/// sharing. <c>threads iterations size repetitions</c>.
/// </summary>
/// <remarks>
/// <para>In the original each thread, <c>iterations</c> times, allocates an object of <c>size</c> bytes,
/// writes and reads back each of its bytes <c>repetitions / threads</c> times (<see cref="CacheLineWrites"/>)
/// and frees it. An allocator that carves the threads' small objects out of one shared piece of memory
/// puts objects of different threads on one cache line, and the threads then slow each other down
/// with every write. Unlike <see cref="CacheScratch"/> nothing is handed between threads: the false
/// sharing, if any, is the allocator's own doing. The work is split, not repeated: the total stays the
/// same at any thread count, and the ideal is a P-fold speed-up on P cores.</para>
/// <para>bench.sh: <c>1 1000 1 2000000 P</c> (cache-thrash1) and <c>P 1000 1 2000000 P</c>
/// (cache-thrashN), P the number of cores; here <c>threads</c> takes both roles. The last argument, the
/// concurrency hint for <c>pthread_setconcurrency</c> (which Linux ignores), is dropped. Scaled:
/// repetitions from 2,000,000 to what the caller passes (the usage line shows 200,000), the rest kept.</para>
/// <para>Operations are byte writes (each with its read), threads × iterations × (repetitions / threads)
/// × size; the time runs from the threads' release to the last one's exit. The bytes read back are
/// summed and checked against what was written.</para>
/// <para>Memory: each thread holds one object at most, so the live peak is threads × size, exactly.
/// The baseline RSS is read before the threads start.</para>
/// </remarks>
internal sealed unsafe class CacheThrash : CallForm.IWorkload<CacheThrash.Arguments>
{
    public sealed record Arguments(int Threads, int Iterations, int Size, int Repetitions);

    public static Arguments Parse(IReadOnlyList<string> a)
    {
        if (a.Count != 4) throw new ArgumentException("cachethrash needs: threads iterations size repetitions");
        var args = new Arguments(int.Parse(a[0]), int.Parse(a[1]), int.Parse(a[2]), int.Parse(a[3]));
        if (args.Threads < 1 || args.Iterations < 1 || args.Size < 1 || args.Repetitions < args.Threads)
            throw new ArgumentException("cachethrash: threads, iterations and size must be at least 1, and repetitions at least threads");
        return args;
    }

    public static RunFigures Run<TAlloc>(Arguments args) where TAlloc : struct, IBenchAllocator =>
        RunFigures.Measure("cachethrash", TAlloc.Name, args.Threads, () =>
        {
            long baselineRssKiB = ResidentMemory.CurrentKiB();
            int repetitions = args.Repetitions / args.Threads;
            var sums = new long[args.Threads];
            using var start = new Barrier(args.Threads + 1);
            var threads = new Thread[args.Threads];
            for (int i = 0; i < threads.Length; i++)
            {
                int id = i;
                threads[i] = new Thread(() => sums[id] = Worker<TAlloc>(args.Iterations, args.Size, repetitions, (byte)id, start));
                threads[i].Start();
            }
            start.SignalAndWait();
            var clock = Stopwatch.StartNew();
            foreach (Thread t in threads) t.Join();
            clock.Stop();
            long expected = 0;
            for (int i = 0; i < args.Threads; i++) expected += args.Iterations * CacheLineWrites.ExpectedSum(args.Size, repetitions, (byte)i);
            if (sums.Sum() != expected)
                throw new InvalidOperationException($"cachethrash: the bytes read back sum to {sums.Sum()}, not {expected}: threads wrote to each other's objects");
            return new RunOutcome((long)args.Threads * args.Iterations * repetitions * args.Size, clock.Elapsed.TotalSeconds, args.Threads)
            {
                BaselineRssKiB = baselineRssKiB,
                LiveBytesPeak = (long)args.Threads * args.Size,
            };
        });

    /// <summary>Allocates, writes and frees one object after another; returns the sum of the bytes read.</summary>
    private static long Worker<TAlloc>(int iterations, int size, int repetitions, byte salt, Barrier start) where TAlloc : struct, IBenchAllocator
    {
        start.SignalAndWait();
        long sum = 0;
        for (int i = 0; i < iterations; i++)
        {
            var p = (byte*)TAlloc.Alloc((nuint)size);
            sum += CacheLineWrites.Repeat(p, size, repetitions, salt);
            TAlloc.Free(p);
        }
        return sum;
    }
}
