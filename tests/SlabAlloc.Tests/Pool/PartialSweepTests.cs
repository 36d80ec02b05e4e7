using System.Collections.Concurrent;
using SlabAlloc.Pool;
using SlabAlloc.Runtime;
using SlabAlloc.Tests.Model;

namespace SlabAlloc.Tests.Pool;

/// <summary>
/// The periodic upkeep's sweep of the partial lists (<c>SlabPool.DecayIfDue</c>) while threads come and
/// go: every thread's dead cache publishes its slabs with blocks out to the partial lists, later threads
/// free those blocks remotely, and a sweeper runs the sweep every millisecond meanwhile. Nothing may be
/// handed out twice or lost: every block keeps its stamp until it is freed, and the accounting comes back
/// exactly. Run with each pool by <c>./build.sh test</c>.
/// </summary>
[Collection("SlabAlloc global state")]
public sealed unsafe class PartialSweepTests
{
    private const long Stamp = 0x5EE9_5EE9_5EE9_5EE9;

    [Fact]
    public void SweepingWhileThreadsComeAndGo_LosesAndDuplicatesNothing()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        SlabMemory.Trim();
        SlabStatistics baseline = SlabMemory.GetStatistics();
        long sweepsBefore = Volatile.Read(ref SlabPool.Shared.Counters.PartialSweeps);
        long emptiedBefore = Volatile.Read(ref SlabPool.Shared.Counters.PartialsEmptied);
        int decayBefore = TestHooks.DecayMs;
        var handedOn = new ConcurrentQueue<nint>();
        int corrupt = 0;
        bool done = false;

        static void Check(nint p, ref int corrupt)
        {
            if (*(long*)p != (p ^ Stamp)) Interlocked.Increment(ref corrupt);
        }

        TestHooks.DecayMs = 1;
        var sweeper = new Thread(() => { while (!Volatile.Read(ref done)) SlabPool.Shared.DecayIfDue(); });
        try
        {
            sweeper.Start();
            // At least 200 waves, and more until the sweeper has swept a few times alongside them and found an
            // emptied slab (a sweeper starved of the CPU by the waves' threads on a small machine may not have yet).
            bool SweptAlongside() =>
                Volatile.Read(ref SlabPool.Shared.Counters.PartialSweeps) - sweepsBefore > 10
                && Volatile.Read(ref SlabPool.Shared.Counters.PartialsEmptied) > emptiedBefore;
            for (int wave = 0; wave < 200 * TestScale.Factor || (!SweptAlongside() && wave < 5000 * TestScale.Factor); wave++)
            {
                var threads = new Thread[3];
                for (int t = 0; t < threads.Length; t++)
                {
                    int seed = wave * 3 + t;
                    threads[t] = new Thread(() =>
                    {
                        var rng = new Random(seed);
                        var mine = new nint[128];
                        for (int i = 0; i < mine.Length; i++)
                        {
                            // Each wave its own band of sizes, so a wave's slabs wait in the partial lists,
                            // untaken, while the next waves free their blocks remotely.
                            var p = (nint)SlabMemory.Alloc((nuint)(16 + seed / 3 % 20 * 96 + rng.Next(96)));
                            *(long*)p = p ^ Stamp;
                            mine[i] = p;
                        }
                        // Half freed by this thread, half handed on to whichever thread comes next.
                        for (int i = 0; i < mine.Length; i++)
                        {
                            if (i % 2 == 0) { Check(mine[i], ref corrupt); SlabMemory.Free((void*)mine[i]); }
                            else handedOn.Enqueue(mine[i]);
                        }
                        // Blocks of threads two waves back, whose caches the last wave's attaches handed back:
                        // remote frees into slabs that wait in the partial lists.
                        for (int i = 0; i < 64 && handedOn.Count > 2 * 3 * 64 && handedOn.TryDequeue(out nint q); i++)
                        {
                            Check(q, ref corrupt);
                            SlabMemory.Free((void*)q);
                        }
                    });
                    threads[t].Start();
                }
                foreach (Thread t in threads) t.Join();
            }
            while (handedOn.TryDequeue(out nint q))
            {
                Check(q, ref corrupt);
                SlabMemory.Free((void*)q);
            }
        }
        finally
        {
            Volatile.Write(ref done, true);
            sweeper.Join();
            TestHooks.DecayMs = decayBefore;
        }

        Assert.Equal(0, corrupt);
        Assert.True(Volatile.Read(ref SlabPool.Shared.Counters.PartialSweeps) - sweepsBefore > 10, "the sweep ran while the threads did");
        Assert.True(Volatile.Read(ref SlabPool.Shared.Counters.PartialsEmptied) - emptiedBefore > 0, "the sweep found slabs that remote frees had emptied");
        GC.Collect();
        GC.WaitForPendingFinalizers();
        SlabMemory.Trim();
        SlabStatistics end = SlabMemory.GetStatistics();
        Assert.Equal(baseline.BlocksInUse, end.BlocksInUse);
        Assert.Equal(baseline.BytesInUse, end.BytesInUse);
        Assert.Equal(0, end.SlabsFull + end.SlabsPartial + end.SlabsEmpty + end.SlabsReserved);
    }
}
