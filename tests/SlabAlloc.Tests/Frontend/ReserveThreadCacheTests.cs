using SlabAlloc.Frontend;
using SlabAlloc.Memory;
using SlabAlloc.Runtime;

namespace SlabAlloc.Tests.Frontend;

[Collection("SlabAlloc global state")]
public sealed unsafe class ReserveThreadCacheTests
{
    [Theory]
    [InlineData(64, 1000)]
    [InlineData(3000, 200)]
    [InlineData(40_000, 50)]
    public void AfterReservingTheNextAllocationsOfThatSizeNeverMissTheThreadCache(int size, int count)
    {
        // On a fresh thread, so nothing but the reservation warmed its cache.
        long missesDuring = -1, poolAcquisitionsDuring = -1;
        var t = new Thread(() =>
        {
            SlabMemory.ReserveThreadCache((nuint)size, count);
            SlabStatistics before = SlabMemory.GetStatistics();
            var blocks = new nint[count];
            for (int i = 0; i < count; i++) blocks[i] = (nint)SlabMemory.Alloc((nuint)size);
            SlabStatistics after = SlabMemory.GetStatistics();
            missesDuring = after.ThreadCacheMisses - before.ThreadCacheMisses;
            poolAcquisitionsDuring = Acquisitions(after) - Acquisitions(before);
            foreach (nint p in blocks) SlabMemory.Free((void*)p);
        });
        t.Start();
        t.Join();
        // Every block comes from the thread's own slabs: no trip to the shared pool. What misses remain
        // are the thread's own refills (its freed list moved to the allocation list, the next reserved
        // slab taken from its retained list, a batch carved): a few per slab.
        Assert.Equal(0, poolAcquisitionsDuring);
        long slabs = (count + SlabAllocTestsCapacity(size) - 1) / SlabAllocTestsCapacity(size);
        Assert.InRange(missesDuring, 0, 3 * slabs);
    }

    [Fact]
    public void AReservationHolds_WhileAnotherThreadTrimsAgainAndAgain()
    {
        // Trim takes back the emptied slabs of idle live threads; a reserved class's are not taken, whether the
        // Trim runs while the reservation is made or while the thread waits with its slabs empty.
        const int Size = 64, Count = 3000, Reservations = 10;
        bool stop = false;
        var trimmer = new Thread(() =>
        {
            while (!Volatile.Read(ref stop)) SlabMemory.Trim();
        });
        trimmer.Start();
        try
        {
            for (int reservation = 0; reservation < Reservations; reservation++)
            {
                long poolAcquisitionsDuring = -1;
                var t = new Thread(() =>
                {
                    SlabMemory.ReserveThreadCache(Size, Count);
                    Thread.Sleep(20); // idle, every reserved slab empty: what a taker looks for
                    SlabStatistics before = SlabMemory.GetStatistics();
                    var blocks = new nint[Count];
                    for (int i = 0; i < Count; i++) blocks[i] = (nint)SlabMemory.Alloc(Size);
                    SlabStatistics after = SlabMemory.GetStatistics();
                    poolAcquisitionsDuring = Acquisitions(after) - Acquisitions(before);
                    foreach (nint p in blocks) SlabMemory.Free((void*)p);
                });
                t.Start();
                t.Join();
                Assert.True(poolAcquisitionsDuring == 0, $"reservation {reservation}: {poolAcquisitionsDuring} slabs taken from the pool after it was made");
            }
        }
        finally
        {
            Volatile.Write(ref stop, true);
            trimmer.Join();
        }
    }

    [Fact]
    public void AReservationEndsWithItsThreadAndIsNotInheritedWithTheHeap()
    {
        // The first thread reserves and exits. Threads that take over heap records after it (the
        // reserver's among them) must not keep empty slabs they never reserved.
        int sizeClass = SlabAlloc.Memory.SizeClasses.ClassOf(64);
        nint reserverHeap = 0;
        bool reserverKeeps = false;
        var reserver = new Thread(() =>
        {
            SlabMemory.ReserveThreadCache(64, 100);
            reserverKeeps = TestHooks.KeepsEmptySlabs(sizeClass);
            reserverHeap = (nint)TestHooks.CacheOfCallingThread();
        });
        reserver.Start();
        reserver.Join();
        Assert.True(reserverKeeps);
        // Waves of more threads than there are heap records attach at once, so that every record free to
        // take is taken; the reserver's becomes free to take once its thread has finished exiting (its
        // exit latch released), which a wave that misses it leaves for the next. Every thread of every
        // wave is checked. The bound is on waves, not on time.
        const int MaxWaves = 100;
        int inherited = 0, tookTheReserversHeap = 0, waves = 0;
        while (tookTheReserversHeap == 0 && waves < MaxWaves)
        {
            waves++;
            SlabMemory.Trim(); // dead threads' records handed back now, not by the finalizer during the wave
            int count = SlabAlloc.Frontend.ThreadCacheRecords.RecordCount + 2;
            using var attached = new Barrier(count);
            var threads = Enumerable.Range(0, count).Select(_ => new Thread(() =>
            {
                SlabMemory.Free(SlabMemory.Alloc(64));
                if (TestHooks.KeepsEmptySlabs(sizeClass)) Interlocked.Increment(ref inherited);
                if ((nint)TestHooks.CacheOfCallingThread() == reserverHeap) Interlocked.Increment(ref tookTheReserversHeap);
                attached.SignalAndWait();
            })).ToArray();
            foreach (Thread t in threads) t.Start();
            foreach (Thread t in threads) t.Join();
        }
        Assert.True(tookTheReserversHeap == 1, $"no thread of {waves} attach waves took over the reserving thread's heap: the test did not test inheritance");
        Assert.Equal(0, inherited);
    }

    [Fact]
    public void SizesAboveTheLargestClassAreRejected()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => SlabMemory.ReserveThreadCache(64 * 1024 + 1, 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => SlabMemory.ReserveThreadCache(64, -1));
    }

    private static long Acquisitions(SlabStatistics s) => s.AcquiredStage1 + s.AcquiredStage2 + s.AcquiredStage3;

    private static int SlabAllocTestsCapacity(int size) =>
        SlabAlloc.Memory.SizeClasses.Capacity(SlabAlloc.Memory.SizeClasses.ClassOf((nuint)size));
}
