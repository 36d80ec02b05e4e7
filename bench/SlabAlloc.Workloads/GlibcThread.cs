using System.Diagnostics;

namespace SlabAlloc.Workloads;

/// <summary>
/// glibc's malloc benchmark bench-malloc-thread, as mimalloc-bench runs it (glibc-thread):
/// <c>threads seconds</c>.
/// </summary>
/// <remarks>
/// <para>The original draws two tables once with <c>rand()</c> (never seeded, so seed 1): 8,000 block
/// sizes between 4 bytes and 32 KiB with an inverse-square distribution (most are small, a few are
/// large), then 4,096 slot numbers below 1,024. Each thread owns a working set of 1,024 slots, empty at
/// the start, and walks both tables cyclically from their second entry: it frees the block in the next
/// slot (nothing if the slot is empty), allocates a block of the next size there and writes each of its
/// bytes (byte i with i). Every thread follows the same sequence. After a fixed time (an alarm) the
/// threads stop and the program prints the iterations done; mimalloc-bench's relative time is 10^9 /
/// iterations. With one thread the original runs the loop on the main thread; here it always runs on
/// started threads.</para>
/// <para>bench.sh: <c>glibc-thread P</c>, P the number of cores, for the original's built-in 2 seconds.
/// Here the thread count is <c>threads</c> and the time is what the caller passes (the usage line shows
/// 1 s). The tables are the original's: <see cref="GlibcRandom"/> reproduces glibc's <c>rand()</c>, and the
/// sizes are computed with the same single-precision arithmetic. The bytes written are the original's,
/// copied from a 0..255 pattern rather than stored one at a time, so that the write costs what the
/// compiled C loop (which the C compiler vectorizes) costs, not a byte-at-a-time loop.</para>
/// <para>One operation is one iteration (a free and an allocation). The time runs from the threads'
/// release to the last one's stop; each thread then frees its working set, outside the time.</para>
/// <para>Memory: each thread keeps a running total of the bytes its slots hold and its own peak, with
/// one add per iteration (the same for every allocator); the live peak reported is the sum of the
/// threads' peaks, an upper bound on the process's. The baseline RSS is read before the threads start;
/// SlabAlloc's mapped bytes are sampled once the threads have stopped (as they begin to free their sets).</para>
/// </remarks>
internal sealed unsafe class GlibcThread : CallForm.IWorkload<GlibcThread.Arguments>
{
    public const int WorkingSet = 1024;
    public const int MinSize = 4, MaxSize = 32768;
    private const int SizeCount = 8000, SlotCount = 4 * WorkingSet;

    public sealed record Arguments(int Threads, double Seconds);

    public static Arguments Parse(IReadOnlyList<string> a)
    {
        if (a.Count != 2) throw new ArgumentException("glibcthread needs: threads seconds");
        var args = new Arguments(int.Parse(a[0]), double.Parse(a[1], System.Globalization.CultureInfo.InvariantCulture));
        if (args.Threads < 1 || args.Seconds <= 0) throw new ArgumentException("glibcthread: threads must be at least 1 and seconds positive");
        return args;
    }

    /// <summary>The original's two tables, drawn from one <see cref="GlibcRandom"/> at seed 1, the sizes first.</summary>
    internal static readonly (int[] Sizes, int[] Slots) Tables = Draw();

    /// <summary>Byte i is i: the pattern every block is written with, a piece at a time.</summary>
    private static readonly byte[] Pattern = MakePattern();

    public static RunFigures Run<TAlloc>(Arguments args) where TAlloc : struct, IBenchAllocator =>
        RunFigures.Measure("glibcthread", TAlloc.Name, args.Threads, () => new Harness<TAlloc>(args).Execute());

    private sealed class Harness<TAlloc>(Arguments args) where TAlloc : struct, IBenchAllocator
    {
        private volatile bool _stop;

        public RunOutcome Execute()
        {
            long baselineRssKiB = ResidentMemory.CurrentKiB();
            var iterations = new long[args.Threads];
            var livePeaks = new long[args.Threads];
            using var start = new Barrier(args.Threads + 1);
            using var stopped = new CountdownEvent(args.Threads);
            var threads = new Thread[args.Threads];
            for (int i = 0; i < threads.Length; i++)
            {
                int id = i;
                threads[i] = new Thread(() => (iterations[id], livePeaks[id]) = Worker(start, stopped));
                threads[i].Start();
            }
            start.SignalAndWait();
            var clock = Stopwatch.StartNew();
            Thread.Sleep(TimeSpan.FromSeconds(args.Seconds));
            _stop = true;
            stopped.Wait();
            clock.Stop();
            long mapped = typeof(TAlloc) == typeof(SlabAllocator) ? SlabMemory.GetStatistics().BytesMapped : 0;
            foreach (Thread t in threads) t.Join();
            return new RunOutcome(iterations.Sum(), clock.Elapsed.TotalSeconds, args.Threads)
            {
                BaselineRssKiB = baselineRssKiB,
                LiveBytesPeak = livePeaks.Sum(),
                SlabMappedBytes = mapped,
            };
        }

        /// <summary>One thread's loop; returns its iterations and the most bytes its slots held at once.</summary>
        private (long Iterations, long LivePeak) Worker(Barrier start, CountdownEvent stopped)
        {
            var blocks = new nint[WorkingSet];
            var blockSizes = new int[WorkingSet];
            int[] sizes = Tables.Sizes, slots = Tables.Slots;
            fixed (byte* pattern = Pattern)
            {
                int sizeIndex = 0, slotIndex = 0;
                long done = 0, live = 0, peak = 0;
                start.SignalAndWait();
                while (!_stop)
                {
                    slotIndex = slotIndex == slots.Length - 1 ? 0 : slotIndex + 1;
                    sizeIndex = sizeIndex == sizes.Length - 1 ? 0 : sizeIndex + 1;
                    int slot = slots[slotIndex], size = sizes[sizeIndex];
                    TAlloc.Free((void*)blocks[slot]);
                    var p = (byte*)TAlloc.Alloc((nuint)size);
                    blocks[slot] = (nint)p;
                    live += size - blockSizes[slot];
                    blockSizes[slot] = size;
                    if (live > peak) peak = live;
                    for (int offset = 0; offset < size; offset += Pattern.Length)
                    {
                        int n = Math.Min(Pattern.Length, size - offset);
                        Buffer.MemoryCopy(pattern, p + offset, n, n);
                    }
                    done++;
                }
                stopped.Signal();
                foreach (nint b in blocks) TAlloc.Free((void*)b);
                return (done, peak);
            }
        }
    }

    private static (int[] Sizes, int[] Slots) Draw()
    {
        var rng = new GlibcRandom(1);
        var sizes = new int[SizeCount];
        for (int i = 0; i < sizes.Length; i++) sizes[i] = BlockSize(rng.Next());
        var slots = new int[SlotCount];
        for (int i = 0; i < slots.Length; i++) slots[i] = rng.Next() % WorkingSet;
        return (sizes, slots);
    }

    /// <summary>The original's inverse-square draw, in single precision as there: the inverse of a value drawn
    /// uniformly between 1 / <see cref="MinSize"/> and 1 / <see cref="MaxSize"/>, truncated.</summary>
    private static int BlockSize(int random)
    {
        const float exponent = -2;
        float minPow = MathF.Pow(MinSize, exponent + 1), maxPow = MathF.Pow(MaxSize, exponent + 1);
        float r = (float)random / GlibcRandom.RandMax;
        return (int)(uint)MathF.Pow((maxPow - minPow) * r + minPow, 1 / (exponent + 1));
    }

    private static byte[] MakePattern()
    {
        var pattern = new byte[256];
        for (int i = 0; i < pattern.Length; i++) pattern[i] = (byte)i;
        return pattern;
    }
}
