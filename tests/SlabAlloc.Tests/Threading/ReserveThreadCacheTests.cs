namespace SlabAlloc.Tests.Threading;

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
    public void SizesAboveTheLargestClassAreRejected()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => SlabMemory.ReserveThreadCache(64 * 1024 + 1, 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => SlabMemory.ReserveThreadCache(64, -1));
    }

    private static long Acquisitions(SlabStatistics s) => s.AcquiredStage1 + s.AcquiredStage2 + s.AcquiredStage3;

    private static int SlabAllocTestsCapacity(int size) =>
        SlabAlloc.Core.SizeClasses.Capacity(SlabAlloc.Core.SizeClasses.ClassOf((nuint)size));
}
