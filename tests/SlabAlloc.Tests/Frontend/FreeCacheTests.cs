using System.Collections.Concurrent;
using SlabAlloc.Frontend;
using SlabAlloc.Memory;
using SlabAlloc.Testing;

namespace SlabAlloc.Tests.Frontend;

/// <summary>
/// The free cache of blocks above 1 KiB: the owner's free goes into it and its next allocation of the size
/// takes the block back, whatever slab it is in; the cache stays within its budget; a thread that ends or
/// trims gives its cached blocks back to their slabs; and other threads' frees into the same slabs, racing
/// with the owner's, keep every block and every count exact. (Double frees and overwritten links in the
/// cache: RacingGuaranteeTests, idle-double-free-cached, and HardeningTests.)
/// </summary>
/// <remarks>In the non-parallel "SlabAlloc global state" collection: it reads process-wide statistics.</remarks>
[Collection("SlabAlloc global state")]
public sealed unsafe class FreeCacheTests
{
    [Theory]
    [InlineData(1025)]
    [InlineData(8000)]
    [InlineData(40_000)]
    public void TheBlockFreedLastIsTheNextHandedOut_WhateverSlabItIsIn(int size)
    {
        RunOnThread(() =>
        {
            // Three full slabs and one block of a fourth: the freed block's slab is not the one allocated from.
            int count = 3 * SizeClasses.Capacity(SizeClasses.ClassOf((nuint)size)) + 1;
            var blocks = new nint[count];
            for (int i = 0; i < count; i++) blocks[i] = (nint)SlabMemory.Alloc((nuint)size);
            SlabMemory.Free((void*)blocks[1]);
            nint again = (nint)SlabMemory.Alloc((nuint)size);
            Assert.Equal(blocks[1], again);
            foreach (nint p in blocks) SlabMemory.Free((void*)p);
        });
    }

    [Fact]
    public void CachedBytesAreCounted_TheCacheKeepsToItsBudget_AndTrimEmptiesIt()
    {
        const nuint Size = 8000;
        nuint blockBytes = (nuint)SizeClasses.BlockBytes(SizeClasses.ClassOf(Size));
        SlabStatistics before = Quiescence.SettledStatistics();
        long afterOne = 0, most = 0, afterAll = 0, reportedAfterAll = 0, afterTrim = 0, inUseAfterTrim = 0;
        // The thread's own figure: the global one also moves when idle threads of earlier tests are reclaimed.
        RunOnThread(() =>
        {
            var blocks = new nint[100];
            for (int i = 0; i < blocks.Length; i++) blocks[i] = (nint)SlabMemory.Alloc(Size);
            for (int i = 0; i < blocks.Length; i++)
            {
                SlabMemory.Free((void*)blocks[i]);
                long cached = SmallBlocks.FreeCacheBytesOfCurrentThread();
                if (i == 0) afterOne = cached;
                most = Math.Max(most, cached);
            }
            afterAll = SmallBlocks.FreeCacheBytesOfCurrentThread();
            reportedAfterAll = SlabMemory.GetStatistics().BytesInFreeCaches;
            SlabMemory.Trim();
            afterTrim = SmallBlocks.FreeCacheBytesOfCurrentThread();
            inUseAfterTrim = SlabMemory.GetStatistics().BlocksInUse;
        });
        Assert.Equal((long)blockBytes, afterOne);
        long budget = SmallBlocks.FreeCacheLimit * (long)blockBytes;
        Assert.InRange(most, budget / 2, budget);
        Assert.InRange(afterAll, 1, budget);
        Assert.True(reportedAfterAll >= afterAll, $"the statistics report {reportedAfterAll} bytes cached, the thread alone holds {afterAll}");
        Assert.Equal(0, afterTrim);
        Assert.Equal(before.BlocksInUse, inUseAfterTrim);
    }

    [Fact]
    public void PastTheThreadsBudget_TheClassHoldingTheMostIsFlushed_NotTheOneFreedInto()
    {
        // 64 blocks of 60,000 bytes fill one class's cache with about the thread's whole budget; the frees of
        // 2,000-byte blocks that follow flush the large class, and keep their own blocks cached.
        long most = 0, atEnd = 0;
        nint lastSmall = 0, again = 0;
        RunOnThread(() =>
        {
            var large = new nint[SmallBlocks.FreeCacheLimit];
            var small = new nint[10];
            for (int i = 0; i < large.Length; i++) large[i] = (nint)SlabMemory.Alloc(60_000);
            for (int i = 0; i < small.Length; i++) small[i] = (nint)SlabMemory.Alloc(2000);
            foreach (nint p in large) SlabMemory.Free((void*)p);
            foreach (nint p in small)
            {
                SlabMemory.Free((void*)p);
                most = Math.Max(most, SmallBlocks.FreeCacheBytesOfCurrentThread());
            }
            atEnd = SmallBlocks.FreeCacheBytesOfCurrentThread();
            lastSmall = small[^1];
            again = (nint)SlabMemory.Alloc(2000);
            SlabMemory.Free((void*)again);
        });
        Assert.InRange(most, 1, SmallBlocks.FreeCacheThreadBytes + 64 * 1024);
        // The large class's oldest half went back; the ten small blocks stayed (2,048 bytes each).
        Assert.InRange(atEnd, SmallBlocks.FreeCacheThreadBytes / 2 + 10 * 2048, SmallBlocks.FreeCacheThreadBytes * 3 / 4);
        Assert.Equal(lastSmall, again);
    }

    [Fact]
    public void AThreadThatEndsWithBlocksInItsFreeCacheGivesThemBack()
    {
        SlabStatistics before = Quiescence.SettledStatistics();
        long cachedAtExit = 0;
        RunOnThread(() =>
        {
            var rng = new Random(11);
            var blocks = new nint[300];
            for (int i = 0; i < blocks.Length; i++) blocks[i] = (nint)SlabMemory.Alloc((nuint)rng.Next(1025, 65_537));
            foreach (nint p in blocks) SlabMemory.Free((void*)p);
            cachedAtExit = SmallBlocks.FreeCacheBytesOfCurrentThread();
        });
        SlabStatistics after = Quiescence.SettledStatistics(); // reclaims the ended thread's cache
        Assert.True(cachedAtExit > 0, "the thread ended with nothing in its free caches: the test proves nothing");
        // At most what was cached before: live threads of earlier tests (idle pool threads) keep their caches
        // and may retire, and be reclaimed, at any time, so the figure can only be bounded from above.
        Assert.True(after.BytesInFreeCaches <= before.BytesInFreeCaches, $"{after.BytesInFreeCaches} bytes cached after the reclaim, {before.BytesInFreeCaches} before the thread");
        Assert.Equal(before.BlocksInUse, after.BlocksInUse);
        Assert.True(after.SlabsOwned <= before.SlabsOwned, $"{after.SlabsOwned} slabs owned after the reclaim, {before.SlabsOwned} before the thread");
    }

    [Fact]
    public void OtherThreadsFreesIntoTheSameSlabs_RacingWithTheOwnersCachedFrees_LoseNothing()
    {
        // The owner keeps a window of stamped blocks of random sizes above 1 KiB; at each step it frees one
        // (into its free cache) or hands it to another thread, which checks and frees it (a remote free into
        // a slab whose other blocks sit in the owner's cache). A block handed out twice, or a cached block
        // handed out while live, breaks a stamp.
        const int Steps = 200_000, Window = 64;
        SlabStatistics before = Quiescence.SettledStatistics(); // the calling thread's own cache too, which the Trim at the end empties
        using var handOff = new BlockingCollection<(nint Block, long Id)>(256);
        int broken = 0;
        var remote = new Thread(() =>
        {
            foreach ((nint block, long id) in handOff.GetConsumingEnumerable()) CheckAndFree(block, id, ref broken);
        });
        remote.Start();
        RunOnThread(() =>
        {
            var rng = new Random(5);
            var window = new (nint Block, long Id)[Window];
            for (int step = 0; step < Steps; step++)
            {
                int k = rng.Next(Window);
                if (window[k].Block != 0)
                {
                    if (rng.Next(2) == 0) handOff.Add(window[k]);
                    else CheckAndFree(window[k].Block, window[k].Id, ref broken);
                }
                var size = (nuint)rng.Next(1025, 20_000);
                void* p = SlabMemory.Alloc(size);
                BlockStamp.Write(p, size, BlockStamp.BaseAlignmentLog, step);
                window[k] = ((nint)p, step);
            }
            foreach ((nint block, long id) in window) CheckAndFree(block, id, ref broken);
        });
        handOff.CompleteAdding();
        remote.Join();
        SlabStatistics after = Quiescence.SettledStatistics();
        Assert.Equal(0, broken);
        Assert.Equal(before.BlocksInUse, after.BlocksInUse);
        // Bounded from above only, as in the test before: other live threads' caches may be reclaimed meanwhile.
        Assert.True(after.BytesInFreeCaches <= before.BytesInFreeCaches, $"{after.BytesInFreeCaches} bytes cached after, {before.BytesInFreeCaches} before");
    }

    /// <summary>Counts a block whose stamp is not the one written with <paramref name="id"/>, then frees it.</summary>
    private static void CheckAndFree(nint block, long id, ref int broken)
    {
        try
        {
            if (BlockStamp.Verify((void*)block).Id != id) Interlocked.Increment(ref broken);
        }
        catch (InvalidOperationException)
        {
            Interlocked.Increment(ref broken);
        }
        SlabMemory.Free((void*)block);
    }

    /// <summary>Runs <paramref name="body"/> on a new thread, which then ends; rethrows what it threw.</summary>
    private static void RunOnThread(Action body)
    {
        Exception? failure = null;
        var t = new Thread(() =>
        {
            try { body(); }
            catch (Exception e) { failure = e; }
        });
        t.Start();
        t.Join();
        if (failure != null) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(failure);
    }
}
