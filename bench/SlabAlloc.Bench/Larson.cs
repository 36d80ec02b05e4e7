using System.Diagnostics;

namespace SlabAlloc.Bench;

/// <summary>
/// The Larson server workload (Larson and Krishnan, 1998), with the argument order of the
/// mimalloc-bench version: <c>sleep_sec min_size max_size chunks_per_thread rounds seed threads</c>.
/// </summary>
/// <remarks>
/// The main thread warms up: it allocates every thread's slice of <c>chunks_per_thread</c> blocks,
/// shuffles them and replaces random ones four times over. Each worker then, <c>rounds ×
/// chunks_per_thread</c> times, frees a random block of its slice and allocates a new one of random
/// size in [min, max), writing two bytes into it. When it is done it starts a new thread on the same
/// slice and exits, so blocks are freed by threads that did not allocate them and threads churn.
/// After <c>sleep_sec</c> the main thread stops everyone. One operation is one free plus one malloc.
/// </remarks>
internal static unsafe class Larson
{
    public sealed record Arguments(double SleepSeconds, int MinSize, int MaxSize, int ChunksPerThread, int Rounds, int Seed, int Threads);

    public static Arguments Parse(IReadOnlyList<string> a)
    {
        if (a.Count != 7) throw new ArgumentException("larson needs: sleep_sec min_size max_size chunks_per_thread rounds seed threads");
        return new Arguments(double.Parse(a[0], System.Globalization.CultureInfo.InvariantCulture), int.Parse(a[1]), int.Parse(a[2]), int.Parse(a[3]), int.Parse(a[4]), int.Parse(a[5]), int.Parse(a[6]));
    }

    public static RunFigures Run<TAlloc>(Arguments args) where TAlloc : struct, IBenchAllocator =>
        RunFigures.Measure("larson", TAlloc.Name, args.Threads, () => new Session<TAlloc>(args).Execute());

    private sealed class Session<TAlloc>(Arguments args) where TAlloc : struct, IBenchAllocator
    {
        // Pinned, so workers can hold a raw pointer to their slice.
        private readonly nint[] _blocks = GC.AllocateArray<nint>(args.Threads * args.ChunksPerThread, pinned: true);
        private readonly Slice[] _slices = new Slice[args.Threads];
        private volatile bool _stop;
        private long _threadsCreated;

        private sealed class Slice
        {
            public int Offset;
            public Lran2 Random;
            public long Allocations;
            public volatile bool Finished;
        }

        public (long Ops, double Seconds, long ThreadsCreated) Execute()
        {
            var rng = new Lran2(args.Seed);
            WarmUp(ref rng);
            for (int i = 0; i < args.Threads; i++)
            {
                _slices[i] = new Slice { Offset = i * args.ChunksPerThread, Random = new Lran2(rng.Next()) };
                Start(_slices[i]);
            }
            var clock = Stopwatch.StartNew();
            Thread.Sleep(TimeSpan.FromSeconds(args.SleepSeconds));
            _stop = true;
            foreach (Slice s in _slices)
                while (!s.Finished) Thread.Yield();
            clock.Stop();
            long ops = _slices.Sum(s => s.Allocations);
            foreach (nint p in _blocks) TAlloc.Free((void*)p);
            return (ops, clock.Elapsed.TotalSeconds, Interlocked.Read(ref _threadsCreated));
        }

        private void WarmUp(ref Lran2 rng)
        {
            int n = _blocks.Length;
            for (int i = 0; i < n; i++) _blocks[i] = (nint)TAlloc.Alloc(NextSize(ref rng));
            for (int i = n; i > 0; i--)
            {
                int victim = (int)(rng.Next() % i);
                (_blocks[victim], _blocks[i - 1]) = (_blocks[i - 1], _blocks[victim]);
            }
            for (int i = 0; i < 4 * n; i++)
            {
                int victim = (int)(rng.Next() % n);
                TAlloc.Free((void*)_blocks[victim]);
                _blocks[victim] = (nint)TAlloc.Alloc(NextSize(ref rng));
            }
        }

        private nuint NextSize(ref Lran2 rng)
        {
            int range = args.MaxSize - args.MinSize;
            return (nuint)(range == 0 ? args.MinSize : args.MinSize + (int)(rng.Next() % range));
        }

        private void Start(Slice slice)
        {
            Interlocked.Increment(ref _threadsCreated);
            var t = new Thread(() => Exercise(slice), maxStackSize: 256 * 1024) { IsBackground = true };
            t.Start();
        }

        private void Exercise(Slice slice)
        {
            // A worker that starts after the stop must still report itself finished.
            if (_stop) { slice.Finished = true; return; }
            slice.Finished = false;
            long blocks = (long)args.Rounds * args.ChunksPerThread;
            int chunks = args.ChunksPerThread;
            var array = (byte**)System.Runtime.CompilerServices.Unsafe.AsPointer(ref _blocks[slice.Offset]);
            long done = 0;
            for (; done < blocks; done++)
            {
                int victim = (int)(slice.Random.Next() % chunks);
                TAlloc.Free(array[victim]);
                byte* p = (byte*)TAlloc.Alloc(NextSize(ref slice.Random));
                array[victim] = p;
                p[0] = (byte)'a';
                p[1] = (byte)'b';
                if (_stop) { done++; break; }
            }
            slice.Allocations += done;
            if (_stop) slice.Finished = true;
            else Start(slice);
        }
    }
}
