using System.Diagnostics;

namespace SlabAlloc.Workloads;

/// <summary>
/// xmalloc-test (Lever and Boreham, "malloc() Performance in a Multithreaded Linux Environment",
/// USENIX 2000), as mimalloc-bench runs it: <c>threads seconds size</c>. Every free is remote.
/// </summary>
/// <remarks>
/// <para>The original starts <c>-w</c> producer threads and as many consumer threads. A producer
/// allocates a batch (itself a malloc'ed block of 4,096 pointers), fills it with 4,096 blocks of
/// <c>-s</c> bytes (or, with <c>-s -1</c>, sizes drawn with lran2 seeded by the producer's number from
/// 17 sizes between 8 bytes and 2 KiB), writes the first 128 bytes of each, and pushes the batch on a
/// mutex-protected list of at most 100 batches; a consumer pops a batch, frees its blocks and the batch.
/// After <c>-t</c> seconds everyone stops; the throughput is the blocks the consumers freed per second
/// (it prints <c>rtime</c> = 100 / million frees per second), and the main thread frees what is left.</para>
/// <para>bench.sh (xmalloc-testN): <c>-w P -t 5 -s 64</c>, P the number of cores. Here the producer count
/// is <c>threads</c> (so 2 × threads threads run) and the time is scaled from 5 s to whatever the caller
/// passes (the usage line shows 1 s). Everything else is kept: 4,096 blocks a batch, 100 batches at most,
/// the batch allocated through the allocator under test, the 128-byte write, the size list and seeds.
/// The hand-off is <see cref="BatchStack"/>: a lock and two semaphores around the same intrusive list.</para>
/// <para>Accounting: each producer counts the blocks and batches it allocated and each consumer (and
/// the final drain) those it freed; the run fails unless the counts are equal. One operation is one
/// block freed by a consumer while the run lasts (blocks freed by the drain are not counted), and the
/// time runs from the threads' release to the last one's exit, as in the original.</para>
/// <para>Memory: a batch's bytes (its blocks' requested sizes and its own) are counted from before its
/// first block is allocated (at the largest possible sizes, corrected once it is full) until its
/// consumer has freed it, with one atomic add at each end of the batch; the peak of that count is an
/// upper bound on the live bytes, exact to a batch. The baseline RSS is read before the threads start;
/// SlabAlloc's mapped bytes are sampled once the threads have stopped, before the drain.</para>
/// </remarks>
internal sealed unsafe class XmallocTest : CallForm.IWorkload<XmallocTest.Arguments>
{
    public const int BlocksPerBatch = 4096;
    public const int BatchLimit = 100;

    /// <summary>A batch's words: the stack's link, the batch's live bytes, then the blocks.</summary>
    private const int HeaderWords = 2;
    private const int BatchBytes = (HeaderWords + BlocksPerBatch) * sizeof(long);

    /// <summary>The sizes drawn with <c>-s -1</c>: powers of two from 8 to 2,048 and one and a half times each.</summary>
    private static readonly int[] MixedSizes = [8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048];

    /// <param name="Size">Block size in bytes; 0 or less draws each size from <see cref="MixedSizes"/>.</param>
    public sealed record Arguments(int Threads, double Seconds, int Size);

    public static Arguments Parse(IReadOnlyList<string> a)
    {
        if (a.Count != 3) throw new ArgumentException("xmalloc needs: threads seconds size (size -1: mixed sizes)");
        var args = new Arguments(int.Parse(a[0]), double.Parse(a[1], System.Globalization.CultureInfo.InvariantCulture), int.Parse(a[2]));
        if (args.Threads < 1 || args.Seconds <= 0) throw new ArgumentException("xmalloc: threads must be at least 1 and seconds positive");
        return args;
    }

    public static RunFigures Run<TAlloc>(Arguments args) where TAlloc : struct, IBenchAllocator =>
        RunFigures.Measure("xmalloc", TAlloc.Name, args.Threads, () =>
        {
            using var harness = new Harness<TAlloc>(args);
            return harness.Execute();
        });

    private sealed class Harness<TAlloc>(Arguments args) : IDisposable where TAlloc : struct, IBenchAllocator
    {
        private readonly BatchStack _stack = new(BatchLimit);
        private readonly Counts[] _producers = new Counts[args.Threads];
        private readonly Counts[] _consumers = new Counts[args.Threads];
        private volatile bool _stop;
        private long _liveBytes, _liveBytesPeak;

        private struct Counts
        {
            public long Blocks, Batches;
        }

        public RunOutcome Execute()
        {
            long baselineRssKiB = ResidentMemory.CurrentKiB();
            using var start = new Barrier(2 * args.Threads + 1);
            var threads = new List<Thread>();
            for (int i = 0; i < args.Threads; i++)
            {
                int id = i;
                threads.Add(new Thread(() => Consume(id, start)));
                threads.Add(new Thread(() => Produce(id, start)));
            }
            foreach (Thread t in threads) t.Start();
            start.SignalAndWait();
            var clock = Stopwatch.StartNew();
            Thread.Sleep(TimeSpan.FromSeconds(args.Seconds));
            _stop = true;
            _stack.Close(args.Threads, args.Threads);
            foreach (Thread t in threads) t.Join();
            clock.Stop();
            long mapped = typeof(TAlloc) == typeof(SlabAllocator) ? SlabMemory.GetStatistics().BytesMapped : 0;
            long freedInRun = _consumers.Sum(c => c.Blocks);
            Counts drained = Drain();
            Verify(drained);
            return new RunOutcome(freedInRun, clock.Elapsed.TotalSeconds, 2L * args.Threads)
            {
                BaselineRssKiB = baselineRssKiB,
                LiveBytesPeak = Interlocked.Read(ref _liveBytesPeak),
                SlabMappedBytes = mapped,
            };
        }

        private void Produce(int id, Barrier start)
        {
            var rng = new Lran2(id);
            int largest = args.Size > 0 ? args.Size : MixedSizes[^1];
            long reserved = BatchBytes + (long)BlocksPerBatch * largest;
            long blocks = 0, batches = 0;
            start.SignalAndWait();
            while (!_stop)
            {
                AddLive(reserved);
                var batch = (nint*)TAlloc.Alloc(BatchBytes);
                batches++;
                long bytes = BatchBytes;
                for (int i = 0; i < BlocksPerBatch; i++)
                {
                    int size = args.Size > 0 ? args.Size : MixedSizes[rng.Next() % MixedSizes.Length];
                    var p = (byte*)TAlloc.Alloc((nuint)size);
                    new Span<byte>(p, Math.Min(size, 128)).Fill((byte)i);
                    batch[HeaderWords + i] = (nint)p;
                    bytes += size;
                }
                blocks += BlocksPerBatch;
                batch[1] = (nint)bytes;
                AddLive(bytes - reserved);
                _stack.Push(batch);
            }
            _producers[id] = new Counts { Blocks = blocks, Batches = batches };
        }

        private void Consume(int id, Barrier start)
        {
            long blocks = 0, batches = 0;
            start.SignalAndWait();
            while (!_stop)
            {
                nint* batch = _stack.Pop();
                if (batch == null) continue; // closed: the loop's test ends it
                long bytes = FreeBatch(batch);
                blocks += BlocksPerBatch;
                batches++;
                AddLive(-bytes);
            }
            _consumers[id] = new Counts { Blocks = blocks, Batches = batches };
        }

        /// <summary>Frees a batch's blocks and the batch; returns the bytes it held.</summary>
        private static long FreeBatch(nint* batch)
        {
            for (int i = 0; i < BlocksPerBatch; i++) TAlloc.Free((void*)batch[HeaderWords + i]);
            long bytes = batch[1];
            TAlloc.Free(batch);
            return bytes;
        }

        /// <summary>Frees the batches left on the stack once every thread has stopped.</summary>
        private Counts Drain()
        {
            var drained = new Counts();
            for (nint* batch; (batch = _stack.Pop()) != null;)
            {
                AddLive(-FreeBatch(batch));
                drained.Blocks += BlocksPerBatch;
                drained.Batches++;
            }
            return drained;
        }

        private void Verify(Counts drained)
        {
            long allocatedBlocks = _producers.Sum(c => c.Blocks), allocatedBatches = _producers.Sum(c => c.Batches);
            long freedBlocks = _consumers.Sum(c => c.Blocks) + drained.Blocks, freedBatches = _consumers.Sum(c => c.Batches) + drained.Batches;
            long live = Interlocked.Read(ref _liveBytes);
            if (allocatedBlocks != freedBlocks || allocatedBatches != freedBatches || live != 0)
                throw new InvalidOperationException(
                    $"xmalloc: allocated {allocatedBlocks} blocks in {allocatedBatches} batches but freed {freedBlocks} in {freedBatches}; {live} bytes unaccounted for");
        }

        private void AddLive(long delta)
        {
            long now = Interlocked.Add(ref _liveBytes, delta);
            for (long peak; now > (peak = Volatile.Read(ref _liveBytesPeak));)
                if (Interlocked.CompareExchange(ref _liveBytesPeak, now, peak) == peak) break;
        }

        public void Dispose() => _stack.Dispose();
    }
}
