using SlabAlloc.Frontend;
using SlabAlloc.Memory;
using SlabAlloc.Platform;
using SlabAlloc.Runtime;
using SlabAlloc.Testing;

namespace SlabAlloc.Tests.Api;

/// <summary>
/// The statistics that say where blocks cross threads: remote frees into an ended thread's slabs and
/// into slabs no thread owns, slabs let go with blocks out, and partial slabs adopted. A thread
/// allocates stamped blocks and ends; other threads free them before, during and after its cache is
/// handed back, and every figure is checked exactly against what the test did.
/// </summary>
/// <remarks>In the non-parallel "SlabAlloc global state" collection: the figures are process-wide. The
/// upkeep is suspended so that the test decides when the dead thread's cache is handed back. A free can tell
/// that a slab's owner has ended only from its exit latch, so only for owners in the stack map: every thread
/// in the Linux platform layer, none in the portable one, where a free into an ended thread's slab counts in
/// neither figure until the slab is let go.</remarks>
[Collection("SlabAlloc global state")]
public sealed unsafe class HandOffStatisticsTests
{
    private const nuint Size = 48;

    /// <summary>Starts a thread that allocates <paramref name="count"/> stamped blocks and ends; returns the
    /// blocks and the address of its cache, once its exit latch is disarmed (the thread has fully ended).</summary>
    private static (nint[] Blocks, nint Cache) AllocateOnAThreadThatEnds(int count, long firstId)
    {
        var blocks = new nint[count];
        nint cache = 0;
        var t = new Thread(() =>
        {
            for (int i = 0; i < count; i++)
            {
                void* p = SlabMemory.Alloc(Size);
                BlockStamp.Write(p, Size, BlockStamp.BaseAlignmentLog, firstId + i);
                blocks[i] = (nint)p;
            }
            cache = (nint)TestHooks.CacheOfCallingThread();
        });
        t.Start();
        t.Join();
        WaitUntilEnded(cache);
        return (blocks, cache);
    }

    /// <summary>Waits until the thread whose cache is <paramref name="cache"/>, joined already, has fully
    /// ended: Join returns when the managed thread is done, and the C library runs its key destructors,
    /// which disarm the exit latch, a moment later. Until then its slabs count as a live thread's. In the
    /// portable layer no latch is armed, and the joined thread counts as ended at once.</summary>
    private static void WaitUntilEnded(nint cache)
    {
        Assert.NotEqual(0, cache);
        var h = (ThreadCache*)cache;
        // A bound on the wait, so that a latch never disarmed fails the test instead of hanging it.
        Assert.True(SpinWait.SpinUntil(() => !ThreadStacks.IsArmed(&h->Latch), TimeSpan.FromMinutes(1)),
            "the ended thread's exit latch was never disarmed");
    }

    /// <summary>Attaches the calling thread (gives it a cache) now: a thread's attach hands back the caches
    /// of ended threads, which would otherwise happen at its first free.</summary>
    private static void Attach() => SlabMemory.Free(SlabMemory.Alloc(16));

    private static void FreeVerified(nint block, long id)
    {
        Assert.Equal(id, BlockStamp.Verify((void*)block).Id);
        SlabMemory.Free((void*)block);
    }

    private static int DistinctSlabs(IEnumerable<nint> blocks) => blocks.Select(p => (nint)SuperslabHeader.SlabOf((void*)p)).Distinct().Count();

    [Fact]
    public void FreesIntoAnEndedThreadsSlabs_ThenIntoUnownedOnes_AndTheSlabsHandedOver_AreCountedExactly()
    {
        const int N = 3000; // three 64 KiB slabs of 48 B blocks
        SlabMemory.Trim(); // hand back every cache of an earlier test's ended thread first
        TestHooks.SuspendUpkeep();
        try
        {
            Attach();
            SlabStatistics s0 = SlabMemory.GetStatistics();
            (nint[] blocks, nint cache) = AllocateOnAThreadThatEnds(N, firstId: 1);
            bool inStackMap = Volatile.Read(ref ((ThreadCache*)cache)->LatchArmed) != 0;

            // The even blocks, while the ended thread still owns its slabs: every slab keeps odd blocks out.
            for (int i = 0; i < N; i += 2) FreeVerified(blocks[i], 1 + i);
            SlabStatistics s1 = SlabMemory.GetStatistics();
            Assert.Equal(N / 2, s1.RemoteFrees - s0.RemoteFrees);
            // Owners outside the stack map cannot be told ended (see remarks).
            Assert.Equal(inStackMap ? N / 2 : 0, s1.RemoteFreesToEndedThreads - s0.RemoteFreesToEndedThreads);
            Assert.Equal(0, s1.RemoteFreesToUnownedSlabs - s0.RemoteFreesToUnownedSlabs);
            Assert.Equal(0, s1.SlabsLetGoInUse - s0.SlabsLetGoInUse);

            // Handing the cache back lets every one of its slabs go, each with odd blocks still out.
            int slabsInUse = DistinctSlabs(blocks.Where((_, i) => i % 2 == 1));
            SlabMemory.Trim();
            SlabStatistics s2 = SlabMemory.GetStatistics();
            Assert.Equal(slabsInUse, s2.SlabsLetGoInUse - s1.SlabsLetGoInUse);
            Assert.Equal(1, s2.ThreadCachesReclaimed - s1.ThreadCachesReclaimed);

            // One odd block per slab from here publishes each slab as partial; a new thread's first
            // allocation of the class adopts one of them.
            var firstOfSlab = new Dictionary<nint, int>();
            for (int i = 1; i < N; i += 2) firstOfSlab.TryAdd((nint)SuperslabHeader.SlabOf((void*)blocks[i]), i);
            foreach (int i in firstOfSlab.Values) FreeVerified(blocks[i], 1 + i);
            SlabStatistics s3 = SlabMemory.GetStatistics();
            Assert.Equal(firstOfSlab.Count, s3.RemoteFreesToUnownedSlabs - s2.RemoteFreesToUnownedSlabs);
            Assert.Equal(0, s3.RemoteFreesToEndedThreads - s2.RemoteFreesToEndedThreads);

            nint adopted = 0, cacheB = 0;
            var b = new Thread(() =>
            {
                adopted = (nint)SlabMemory.Alloc(Size);
                cacheB = (nint)TestHooks.CacheOfCallingThread();
            });
            b.Start();
            b.Join();
            // The frees below go into the adopted slab too, which the ended thread b owns.
            WaitUntilEnded(cacheB);
            SlabStatistics s4 = SlabMemory.GetStatistics();
            Assert.Equal(1, s4.PartialSlabsAdopted - s3.PartialSlabsAdopted);
            nint adoptedSlab = (nint)SuperslabHeader.SlabOf((void*)adopted);
            Assert.Contains(adoptedSlab, firstOfSlab.Keys);
            int oddInAdopted = Enumerable.Range(0, N).Count(i => i % 2 == 1 && (nint)SuperslabHeader.SlabOf((void*)blocks[i]) == adoptedSlab);

            // The rest; then nothing is left out.
            SlabMemory.Free((void*)adopted);
            var freedAlready = new HashSet<int>(firstOfSlab.Values);
            for (int i = 1; i < N; i += 2)
                if (!freedAlready.Contains(i)) FreeVerified(blocks[i], 1 + i);
            SlabMemory.Trim();
            SlabStatistics s5 = SlabMemory.GetStatistics();
            Assert.Equal(s0.BlocksInUse, s5.BlocksInUse);
            long remote = s5.RemoteFrees - s0.RemoteFrees, ended = s5.RemoteFreesToEndedThreads - s0.RemoteFreesToEndedThreads;
            long unowned = s5.RemoteFreesToUnownedSlabs - s0.RemoteFreesToUnownedSlabs;
            if (inStackMap)
            {
                Assert.Equal(remote, ended + unowned);
            }
            else
            {
                // Neither figure counts the frees into the ended threads' slabs: the first N / 2, b's block and
                // the odd blocks of the slab b adopted, but for the one freed before b adopted it.
                Assert.Equal(0, ended);
                Assert.Equal(N / 2 - (oddInAdopted - 1), unowned);
            }
        }
        finally
        {
            TestHooks.ResumeUpkeep();
        }
    }

    [Fact]
    public void FreesRacingTheHandBackOfTheirSlabs_AreEachCountedOnce_IntoAnEndedThreadsSlabOrAnUnownedOne()
    {
        const int N = 20_000, Freers = 2;
        var random = new Random(20261206);
        SlabMemory.Trim();
        TestHooks.SuspendUpkeep();
        try
        {
            int splitRounds = 0;
            for (int round = 0; round < 5; round++)
            {
                SlabStatistics before = SlabMemory.GetStatistics();
                // The freers attach first: an attach after the thread ended would hand its cache back.
                using var attached = new Barrier(Freers + 1);
                using var go = new Barrier(Freers + 2);
                nint[] blocks = [];
                int[] order = [];
                var freers = Enumerable.Range(0, Freers).Select(f => new Thread(() =>
                {
                    Attach();
                    attached.SignalAndWait();
                    go.SignalAndWait();
                    for (int k = f; k < N; k += Freers) FreeVerified(blocks[order[k]], 1 + order[k]);
                })).ToList();
                freers.ForEach(t => t.Start());
                attached.SignalAndWait();

                (blocks, nint cache) = AllocateOnAThreadThatEnds(N, firstId: 1);
                bool inStackMap = Volatile.Read(ref ((ThreadCache*)cache)->LatchArmed) != 0;
                order = Enumerable.Range(0, N).ToArray();
                random.Shuffle(order);

                // The two freers free the blocks in a random order while a third thread hands the ended
                // thread's cache back (Trim) at a random moment: each free lands before or after its slab
                // is let go.
                int delayIterations = random.Next(0, 100_000);
                var trimmer = new Thread(() =>
                {
                    go.SignalAndWait();
                    Thread.SpinWait(delayIterations);
                    SlabMemory.Trim();
                });
                trimmer.Start();
                go.SignalAndWait();
                freers.ForEach(t => t.Join());
                trimmer.Join();
                SlabMemory.Trim();

                SlabStatistics after = SlabMemory.GetStatistics();
                long remote = after.RemoteFrees - before.RemoteFrees;
                long ended = after.RemoteFreesToEndedThreads - before.RemoteFreesToEndedThreads;
                long unowned = after.RemoteFreesToUnownedSlabs - before.RemoteFreesToUnownedSlabs;
                Assert.Equal(N, remote);
                if (inStackMap)
                {
                    Assert.Equal(N, ended + unowned);
                    if (ended > 0 && unowned > 0) splitRounds++;
                }
                else
                {
                    // Only the frees after the hand-back are counted (see remarks).
                    Assert.Equal(0, ended);
                    if (unowned > 0 && unowned < N) splitRounds++;
                }
                Assert.Equal(before.BlocksInUse, after.BlocksInUse);
                Assert.Equal(1 + Freers, after.ThreadCachesReclaimed - before.ThreadCachesReclaimed); // the ended thread and the freers
            }
            // The hand-back landed between two frees in some round (in about 8 of 10 rounds when this was written).
            Assert.True(splitRounds > 0, "no round had frees on both sides of the hand-back: the race was not exercised");
        }
        finally
        {
            TestHooks.ResumeUpkeep();
        }
    }
}
