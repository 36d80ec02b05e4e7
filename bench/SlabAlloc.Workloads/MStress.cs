using System.Diagnostics;
using System.Runtime.CompilerServices;

namespace SlabAlloc.Workloads;

/// <summary>
/// mimalloc's stress test (<c>test/test-stress.c</c>), which mimalloc-bench runs as mstress:
/// <c>threads scale iterations</c>.
/// </summary>
/// <remarks>
/// <para>Each iteration starts <c>threads</c> threads and waits for them to end; blocks cross between
/// threads through a shared array of 1,000 transfer slots and survive from one generation of threads to the
/// next. Thread <c>tid</c> makes <c>100 × scale × (tid % 8 + 1)</c> short-lived allocations and half as many
/// retained ones, in a random order: a short-lived allocation (1 to 16 words) goes onto the thread's data
/// array, a retained one (1 to 64 words) onto its retained array; after each, with a chance of 66% a random
/// entry of the data array is freed, and with 25% one is exchanged (an atomic exchange) with a random
/// transfer slot, so the thread takes over whatever another thread (or generation) left there. One
/// allocation in a hundred is 100 times larger (800 B to 51 KiB; the original's larger sizes need
/// <c>scale</c> above 100, which bench.sh does not use). Every block is zeroed when allocated (the original
/// calls <c>calloc</c>), each of its words is then written with a value derived from its position, and
/// every word is checked before the block is freed, so a block handed out twice fails the run. At the end of
/// a thread everything it still holds is freed; after each iteration the main thread frees each transfer
/// slot's block with a chance of one half (all of them after the last). The randomness is the original's:
/// each thread's generator is seeded with <c>(tid + 1) × 43</c>, main's with the first <c>rand()</c> after
/// <c>srand(0x7feb352d)</c> (<see cref="GlibcRandom"/>).</para>
/// <para>bench.sh: <c>mstress P 50 25</c>, P the number of cores. Here <c>threads</c> takes P's place and
/// <c>iterations</c> is what the caller passes (the main job scales it so that a run lasts a few tenths of
/// a second). The zeroing and the growth of the data array (the original's <c>calloc</c> and
/// <c>realloc</c>) are done by the harness the same way for every allocator: an allocation, then a clear
/// or a copy and a free.</para>
/// <para>One operation is one allocation (each is freed within the run). The time runs from the first
/// thread's start to the last transfer slot freed, thread creation included, as in the original.</para>
/// <para>Memory: the threads' live bytes are not tracked (the transfer slots move them between threads);
/// peak RSS less the baseline, read before the first iteration, is the figure to compare.</para>
/// </remarks>
internal sealed unsafe class MStress : CallForm.IWorkload<MStress.Arguments>
{
    public sealed record Arguments(int Threads, int Scale, int Iterations);

    public const int Transfers = 1000;
    private const ulong Cookie = 0xbf58476d1ce4e5b9UL;
    private const int MaxItemShift = 5, MaxItemRetainedShift = MaxItemShift + 2, DataGrowth = 100_000;

    public static Arguments Parse(IReadOnlyList<string> a)
    {
        if (a.Count != 3) throw new ArgumentException("mstress needs: threads scale iterations");
        var args = new Arguments(int.Parse(a[0]), int.Parse(a[1]), int.Parse(a[2]));
        if (args.Threads < 1 || args.Scale < 1 || args.Scale > 100 || args.Iterations < 1)
            throw new ArgumentException("mstress: threads and iterations must be at least 1, scale between 1 and 100");
        return args;
    }

    public static RunFigures Run<TAlloc>(Arguments args) where TAlloc : struct, IBenchAllocator =>
        RunFigures.Measure("mstress", TAlloc.Name, args.Threads, () => new Harness<TAlloc>(args).Execute());

    private sealed class Harness<TAlloc>(Arguments args) where TAlloc : struct, IBenchAllocator
    {
        private readonly nint[] _transfer = new nint[Transfers];
        private long _allocations;

        public RunOutcome Execute()
        {
            long baselineRssKiB = ResidentMemory.CurrentKiB();
            var rand = new GlibcRandom(0x7feb352d);
            ulong r = (ulong)rand.Next();
            long threadsCreated = 0;
            var clock = Stopwatch.StartNew();
            for (int n = 0; n < args.Iterations; n++)
            {
                var threads = new Thread[args.Threads];
                for (int i = 0; i < threads.Length; i++)
                {
                    int tid = i;
                    threads[i] = new Thread(() => Interlocked.Add(ref _allocations, Stress(tid)));
                    threads[i].Start();
                }
                foreach (Thread t in threads) t.Join();
                threadsCreated += threads.Length;
                for (int i = 0; i < Transfers; i++)
                {
                    if (Chance(50, ref r) || n + 1 == args.Iterations)
                        FreeItems((void*)Interlocked.Exchange(ref _transfer[i], 0));
                }
            }
            clock.Stop();
            return new RunOutcome(_allocations, clock.Elapsed.TotalSeconds, threadsCreated) { BaselineRssKiB = baselineRssKiB };
        }

        /// <summary>One thread's work; returns the allocations it made of items (its arrays not counted).</summary>
        private long Stress(int tid)
        {
            ulong r = (ulong)(tid + 1) * 43;
            long allocs = 100L * args.Scale * (tid % 8 + 1);
            long retain = allocs / 2, made = 0;
            nint* data = null;
            long dataSize = 0, dataTop = 0;
            var retained = (nint*)AllocZeroed((nuint)(retain * sizeof(nint)));
            long retainTop = 0;
            while (allocs > 0 || retain > 0)
            {
                if (retain == 0 || (Chance(50, ref r) && allocs > 0))
                {
                    allocs--;
                    if (dataTop >= dataSize)
                    {
                        var grown = (nint*)TAlloc.Alloc((nuint)((dataSize + DataGrowth) * sizeof(nint)));
                        if (data != null) Buffer.MemoryCopy(data, grown, dataSize * sizeof(nint), dataSize * sizeof(nint));
                        TAlloc.Free(data);
                        data = grown;
                        dataSize += DataGrowth;
                    }
                    data[dataTop++] = (nint)AllocItems(1UL << (int)(Pick(ref r) % MaxItemShift), ref r);
                }
                else
                {
                    retained[retainTop++] = (nint)AllocItems(1UL << (int)(Pick(ref r) % MaxItemRetainedShift), ref r);
                    retain--;
                }
                made++;
                if (Chance(66, ref r) && dataTop > 0)
                {
                    long idx = (long)(Pick(ref r) % (ulong)dataTop);
                    FreeItems((void*)data[idx]);
                    data[idx] = 0;
                }
                if (Chance(25, ref r) && dataTop > 0)
                {
                    long dataIdx = (long)(Pick(ref r) % (ulong)dataTop);
                    long transferIdx = (long)(Pick(ref r) % Transfers);
                    data[dataIdx] = Interlocked.Exchange(ref _transfer[transferIdx], data[dataIdx]);
                }
            }
            for (long i = 0; i < retainTop; i++) FreeItems((void*)retained[i]);
            for (long i = 0; i < dataTop; i++) FreeItems((void*)data[i]);
            TAlloc.Free(retained);
            TAlloc.Free(data);
            return made;
        }

        private static void* AllocItems(ulong items, ref ulong r)
        {
            if (Chance(1, ref r))
            {
                // The original draws twice more here for its larger sizes, which need scale above 100.
                if (Chance(1, ref r)) { }
                else if (Chance(10, ref r)) { }
                items *= 100;
            }
            if (items >= 32 && items <= 40) items *= 2;
            var p = (ulong*)AllocZeroed((nuint)(items * sizeof(ulong)));
            for (ulong i = 0; i < items; i++)
            {
                if (p[i] != 0) throw new InvalidOperationException($"mstress: block {(nint)p:x} was not zeroed at word {i}");
                p[i] = (items - i) ^ Cookie;
            }
            return p;
        }

        private static void FreeItems(void* p)
        {
            if (p != null)
            {
                var q = (ulong*)p;
                ulong items = q[0] ^ Cookie;
                for (ulong i = 0; i < items; i++)
                {
                    if ((q[i] ^ Cookie) != items - i)
                        throw new InvalidOperationException($"mstress: block {(nint)p:x} was overwritten at word {i}: handed out twice");
                }
            }
            TAlloc.Free(p);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static void* AllocZeroed(nuint bytes)
        {
            void* p = TAlloc.Alloc(bytes);
            new Span<byte>(p, checked((int)bytes)).Clear();
            return p;
        }
    }

    /// <summary>The original's generator: SplitMix64's finaliser applied to the state, which it replaces.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong Pick(ref ulong r)
    {
        ulong x = r;
        x ^= x >> 30;
        x *= 0xbf58476d1ce4e5b9UL;
        x ^= x >> 27;
        x *= 0x94d049bb133111ebUL;
        x ^= x >> 31;
        r = x;
        return x;
    }

    /// <summary>True with a chance of about <paramref name="percent"/> + 1 in 100 (the original's test is &lt;=).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool Chance(ulong percent, ref ulong r) => Pick(ref r) % 100 <= percent;
}
