using System.Diagnostics;

namespace SlabAlloc.Workloads;

/// <summary>
/// cache-scratch, from Hoard (Berger et al., ASPLOS 2000) as mimalloc-bench runs it: passive false
/// sharing. <c>threads iterations size repetitions</c>.
/// </summary>
/// <remarks>
/// <para>The original's main thread allocates one object of <c>size</c> bytes per thread, one after the
/// other (so neighbours, often on one cache line), and hands one to each thread. A thread first frees
/// the object it was given, then <c>iterations</c> times allocates an object of <c>size</c> bytes,
/// writes and reads back each of its bytes <c>repetitions / threads</c> times (<see cref="CacheLineWrites"/>)
/// and frees it. An allocator that gives a thread back the block it just freed, which was main's
/// neighbour of the other threads' blocks, makes the threads write to one cache line: the run then
/// slows down with threads instead of speeding up. The work is split, not repeated: the total stays
/// the same at any thread count, and the ideal is a P-fold speed-up on P cores.</para>
/// <para>bench.sh: <c>1 1000 1 2000000 P</c> (cache-scratch1) and <c>P 1000 1 2000000 P</c>
/// (cache-scratchN), P the number of cores; here <c>threads</c> takes both roles. The last argument,
/// the concurrency hint for <c>pthread_setconcurrency</c> (which Linux ignores), is dropped. Scaled:
/// repetitions from 2,000,000 to what the caller passes (the usage line shows 200,000), the rest kept.</para>
/// <para>Operations are byte writes (each with its read), threads × iterations × (repetitions / threads)
/// × size, so operations per second is the write rate and the time is the original's measure; it runs
/// from the threads' release to the last one's exit. The bytes read back are summed and checked
/// against what was written, so a block that two threads were given at once fails the run.</para>
/// <para>Memory: the workload holds one object per thread at most (main's until the thread frees it,
/// then the thread's own), so the live peak is threads × size, exactly. The baseline RSS is read
/// before main allocates.</para>
/// </remarks>
internal sealed unsafe class CacheScratch : CallForm.IWorkload<CacheScratch.Arguments>
{
    public sealed record Arguments(int Threads, int Iterations, int Size, int Repetitions);

    public static Arguments Parse(IReadOnlyList<string> a)
    {
        if (a.Count != 4) throw new ArgumentException("cachescratch needs: threads iterations size repetitions");
        var args = new Arguments(int.Parse(a[0]), int.Parse(a[1]), int.Parse(a[2]), int.Parse(a[3]));
        if (args.Threads < 1 || args.Iterations < 1 || args.Size < 1 || args.Repetitions < args.Threads)
            throw new ArgumentException("cachescratch: threads, iterations and size must be at least 1, and repetitions at least threads");
        return args;
    }

    public static RunFigures Run<TAlloc>(Arguments args) where TAlloc : struct, IBenchAllocator =>
        RunFigures.Measure("cachescratch", TAlloc.Name, args.Threads, () =>
        {
            long baselineRssKiB = ResidentMemory.CurrentKiB();
            var handed = new nint[args.Threads];
            for (int i = 0; i < handed.Length; i++) handed[i] = (nint)TAlloc.Alloc((nuint)args.Size);
            int repetitions = args.Repetitions / args.Threads;
            var sums = new long[args.Threads];
            using var start = new Barrier(args.Threads + 1);
            var threads = new Thread[args.Threads];
            for (int i = 0; i < threads.Length; i++)
            {
                int id = i;
                threads[i] = new Thread(() => sums[id] = Worker<TAlloc>((byte*)handed[id], args.Iterations, args.Size, repetitions, (byte)id, start));
                threads[i].Start();
            }
            start.SignalAndWait();
            var clock = Stopwatch.StartNew();
            foreach (Thread t in threads) t.Join();
            clock.Stop();
            long expected = 0;
            for (int i = 0; i < args.Threads; i++) expected += args.Iterations * CacheLineWrites.ExpectedSum(args.Size, repetitions, (byte)i);
            if (sums.Sum() != expected)
                throw new InvalidOperationException($"cachescratch: the bytes read back sum to {sums.Sum()}, not {expected}: threads wrote to each other's objects");
            return new RunOutcome((long)args.Threads * args.Iterations * repetitions * args.Size, clock.Elapsed.TotalSeconds, args.Threads)
            {
                BaselineRssKiB = baselineRssKiB,
                LiveBytesPeak = (long)args.Threads * args.Size,
            };
        });

    /// <summary>Frees the object main handed over, then allocates, writes and frees its own; returns the sum of the bytes read.</summary>
    private static long Worker<TAlloc>(byte* handed, int iterations, int size, int repetitions, byte salt, Barrier start) where TAlloc : struct, IBenchAllocator
    {
        start.SignalAndWait();
        TAlloc.Free(handed);
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
