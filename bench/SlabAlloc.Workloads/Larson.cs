using System.Diagnostics;

namespace SlabAlloc.Workloads;

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
/// <para>Memory: the harness keeps each slot's requested size beside its block and each worker a
/// running total of its slice's bytes, so the live bytes are known exactly at no cost but one int
/// store per operation, the same for every allocator. They are summed at the end of the warm-up and
/// when the run stops; in the steady state they hardly move (a sum of thousands of uniform sizes), so
/// the larger of the two is the peak. The baseline RSS is read after the harness's arrays are touched
/// and before the first allocation, so peak RSS less baseline is the allocator's footprint (and the
/// worker threads') beyond the .NET runtime's. For SlabAlloc, its mapped bytes are sampled at the same
/// two points (not a true peak, but the pool only grows while blocks are held).</para>
/// </remarks>
internal sealed unsafe class Larson : CallForm.IWorkload<Larson.Arguments>
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
        // The requested size of the block in each slot of _blocks, pinned for the same reason.
        private readonly int[] _sizes = GC.AllocateArray<int>(args.Threads * args.ChunksPerThread, pinned: true);
        private readonly Slice[] _slices = new Slice[args.Threads];
        private volatile bool _stop;
        private long _threadsCreated;

        private sealed class Slice
        {
            public int Offset;
            public Lran2 Random;
            public long Allocations;
            // The requested bytes of the slice's blocks: each thread working on the slice adds its change
            // as it ends (before the next starts), and the main thread reads it once the slice has finished.
            public long LiveBytes;
            public volatile bool Finished;
        }

        public RunOutcome Execute()
        {
            // Touched now, so that the harness's own arrays are in the baseline and not in the growth.
            _blocks.AsSpan().Clear();
            _sizes.AsSpan().Clear();
            long baselineRssKiB = ResidentMemory.CurrentKiB();
            var rng = new Lran2(args.Seed);
            WarmUp(ref rng);
            long livePeak = SizesSum(0, _sizes.Length);
            long mapped = SlabMapped();
            for (int i = 0; i < args.Threads; i++)
            {
                int offset = i * args.ChunksPerThread;
                _slices[i] = new Slice { Offset = offset, Random = new Lran2(rng.Next()), LiveBytes = SizesSum(offset, args.ChunksPerThread) };
                Start(_slices[i]);
            }
            var clock = Stopwatch.StartNew();
            Thread.Sleep(TimeSpan.FromSeconds(args.SleepSeconds));
            _stop = true;
            foreach (Slice s in _slices)
                while (!s.Finished) Thread.Yield();
            clock.Stop();
            long ops = _slices.Sum(s => s.Allocations);
            long live = _slices.Sum(s => s.LiveBytes);
            if (live != SizesSum(0, _sizes.Length))
                throw new InvalidOperationException($"larson: the workers' live bytes {live} differ from the slots' sizes {SizesSum(0, _sizes.Length)}");
            livePeak = Math.Max(livePeak, live);
            mapped = Math.Max(mapped, SlabMapped());
            foreach (nint p in _blocks) TAlloc.Free((void*)p);
            return new RunOutcome(ops, clock.Elapsed.TotalSeconds, Interlocked.Read(ref _threadsCreated))
            {
                BaselineRssKiB = baselineRssKiB,
                LiveBytesPeak = livePeak,
                SlabMappedBytes = mapped,
            };
        }

        private long SizesSum(int offset, int count)
        {
            long sum = 0;
            foreach (int size in _sizes.AsSpan(offset, count)) sum += size;
            return sum;
        }

        private static long SlabMapped() => typeof(TAlloc) == typeof(SlabAllocator) ? SlabMemory.GetStatistics().BytesMapped : 0;

        private void WarmUp(ref Lran2 rng)
        {
            int n = _blocks.Length;
            for (int i = 0; i < n; i++)
            {
                _sizes[i] = NextSize(ref rng);
                _blocks[i] = (nint)TAlloc.Alloc((nuint)_sizes[i]);
            }
            for (int i = n; i > 0; i--)
            {
                int victim = (int)(rng.Next() % i);
                (_blocks[victim], _blocks[i - 1]) = (_blocks[i - 1], _blocks[victim]);
                (_sizes[victim], _sizes[i - 1]) = (_sizes[i - 1], _sizes[victim]);
            }
            for (int i = 0; i < 4 * n; i++)
            {
                int victim = (int)(rng.Next() % n);
                TAlloc.Free((void*)_blocks[victim]);
                _sizes[victim] = NextSize(ref rng);
                _blocks[victim] = (nint)TAlloc.Alloc((nuint)_sizes[victim]);
            }
        }

        private int NextSize(ref Lran2 rng)
        {
            int range = args.MaxSize - args.MinSize;
            return range == 0 ? args.MinSize : args.MinSize + (int)(rng.Next() % range);
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
            var sizes = (int*)System.Runtime.CompilerServices.Unsafe.AsPointer(ref _sizes[slice.Offset]);
            long done = 0, liveChange = 0;
            for (; done < blocks; done++)
            {
                int victim = (int)(slice.Random.Next() % chunks);
                TAlloc.Free(array[victim]);
                int size = NextSize(ref slice.Random);
                byte* p = (byte*)TAlloc.Alloc((nuint)size);
                array[victim] = p;
                liveChange += size - sizes[victim];
                sizes[victim] = size;
                p[0] = (byte)'a';
                p[1] = (byte)'b';
                if (_stop) { done++; break; }
            }
            slice.Allocations += done;
            slice.LiveBytes += liveChange;
            if (_stop) slice.Finished = true;
            else Start(slice);
        }
    }
}
