using System.Reflection;
using Xunit.Abstractions;
using SlabAlloc.Frontend;

namespace SlabAlloc.Tests.Frontend;

[Collection("SlabAlloc global state")]
public sealed unsafe class ThreadChurnTests(ITestOutputHelper output)
{
    [Fact]
    public void ThousandsOfShortLivedThreadsKeepMappedMemoryBounded()
    {
        const int Waves = 500, PerWave = 6, BlocksPerThread = 120;
        nint[] handedOver = [];
        long mappedAfterWarmUp = 0, peak = 0;
        for (int wave = 0; wave < Waves; wave++)
        {
            nint[] toFree = handedOver;
            var next = new nint[PerWave][];
            var threads = new Thread[PerWave];
            // Every thread of a wave is alive, with its cache, until all of them have allocated: the same
            // number of caches at once in every wave, however the threads are scheduled (otherwise a busy
            // machine, by overlapping more threads in later waves than in the first, grows the peak).
            var allocated = new Barrier(PerWave);
            for (int t = 0; t < PerWave; t++)
            {
                int id = t, seed = wave * 31 + t;
                threads[t] = new Thread(() =>
                {
                    var rng = new Random(seed);
                    // Free this thread's share of the previous wave's blocks: they belong to dead threads.
                    for (int i = id; i < toFree.Length; i += PerWave) SlabMemory.Free((void*)toFree[i]);
                    var mine = new nint[BlocksPerThread];
                    for (int i = 0; i < mine.Length; i++)
                    {
                        nuint size = (nuint)(rng.Next(4) == 0 ? rng.Next(1025, 40_000) : rng.Next(1, 1025));
                        mine[i] = (nint)SlabMemory.Alloc(size);
                        *(long*)mine[i] = seed;
                    }
                    // Free half, hand the other half to the next wave.
                    for (int i = 0; i < mine.Length; i += 2) SlabMemory.Free((void*)mine[i]);
                    next[id] = mine.Where((_, i) => i % 2 == 1).ToArray();
                    allocated.SignalAndWait();
                });
                threads[t].Start();
            }
            foreach (Thread t in threads) t.Join();
            allocated.Dispose();
            handedOver = next.SelectMany(x => x).ToArray();
            long mapped = SlabMemory.GetStatistics().BytesMapped;
            if (wave == 20) mappedAfterWarmUp = mapped;
            if (wave >= 20) peak = Math.Max(peak, mapped);
        }
        foreach (nint p in handedOver) SlabMemory.Free((void*)p);

        SlabStatistics end = SlabMemory.GetStatistics();
        output.WriteLine($"{Waves * PerWave} threads; mapped after warm-up {mappedAfterWarmUp >> 10} KiB, peak {peak >> 10} KiB, " +
                         $"end {end.BytesMapped >> 10} KiB; thread cache records {end.ThreadCacheRecords}, reclaimed {end.ThreadCachesReclaimed}");
        Assert.True(peak - mappedAfterWarmUp <= 16L << 20, $"mapped memory grew by {(peak - mappedAfterWarmUp) >> 10} KiB under thread churn");
        Assert.True(end.ThreadCacheRecords < 64, $"{end.ThreadCacheRecords} thread cache records for at most {PerWave + 1} threads alive at once");
        Assert.True(end.ThreadCachesReclaimed >= Waves * PerWave - 64);
    }

    /// <summary>No per-thread finalizable object: each one a dead thread leaves behind grows the garbage
    /// collector's gen0 budget, and the process's resident memory with it. Dead threads' caches are found by
    /// scanning (at attach, at the upkeep's ticks, at Trim), which needs no object per thread. The one
    /// finalizable type is the memory pool's buffer owner, which belongs to a pool, not to a thread, and is
    /// reused from rent to rent; only the pool creates it.</summary>
    [Fact]
    public void NoPerThreadTypeOfSlabAllocHasAFinalizer()
    {
        string[] finalizable = typeof(SlabMemory).Assembly.GetTypes()
            .Where(t => t.GetMethod("Finalize", BindingFlags.Instance | BindingFlags.NonPublic | BindingFlags.DeclaredOnly, null, Type.EmptyTypes, null) != null)
            .Select(t => t.FullName ?? t.Name).ToArray();
        Assert.Equal(["SlabAlloc.SlabMemoryOwner"], finalizable);
        ConstructorInfo ownerConstructor = Assert.Single(typeof(SlabMemory).Assembly.GetType("SlabAlloc.SlabMemoryOwner")!
            .GetConstructors(BindingFlags.Instance | BindingFlags.NonPublic | BindingFlags.Public));
        Assert.Equal([typeof(SlabMemoryPool)], ownerConstructor.GetParameters().Select(p => p.ParameterType));
    }

    [Fact]
    public void ADeadThreadsSlabsAreReusedByTheNextThread()
    {
        SlabStatistics before = SlabMemory.GetStatistics();
        for (int i = 0; i < 200; i++)
        {
            var t = new Thread(() =>
            {
                void* p = SlabMemory.Alloc(48);
                void* q = SlabMemory.Alloc(48);
                SlabMemory.Free(p);
                SlabMemory.Free(q);
            });
            t.Start();
            t.Join();
        }
        SlabStatistics after = SlabMemory.GetStatistics();
        // 200 threads one after another need one slab of the class between them, not 200.
        Assert.True(after.AcquiredStage2 + after.AcquiredStage3 - before.AcquiredStage2 - before.AcquiredStage3 <= 2,
            $"{after.AcquiredStage2 - before.AcquiredStage2} slabs claimed and {after.AcquiredStage3 - before.AcquiredStage3} superslabs mapped for 200 sequential threads");
        Assert.True(after.AcquiredStage1 - before.AcquiredStage1 >= 190);
        Assert.Equal(before.BlocksInUse, after.BlocksInUse);
    }
}
