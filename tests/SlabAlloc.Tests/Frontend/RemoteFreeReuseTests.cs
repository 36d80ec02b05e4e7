using System.Collections.Concurrent;
using SlabAlloc.Memory;
using SlabAlloc.Testing;

namespace SlabAlloc.Tests.Frontend;

/// <summary>
/// A thread whose blocks other threads free gets them back: a producer allocates stamped blocks in
/// batches (each batch's array allocated too, as xmalloc-test does) and hands them to consumers that
/// check and free them (every free remote), with a bounded number of batches in flight. The producer's slabs fill, wait exhausted in its cache while the
/// consumers free into them, and must be taken up again, so the slabs it takes from the pool stay
/// bounded by what is in flight, however long it runs.
/// </summary>
/// <remarks>In the non-parallel "SlabAlloc global state" collection: it counts the pool's acquisitions
/// and the blocks in use process-wide.</remarks>
[Collection("SlabAlloc global state")]
public sealed unsafe class RemoteFreeReuseTests
{
    private const nuint Size = 64;

    /// <summary>With 100 batches in flight (xmalloc-test's limit) the exhausted slabs are many, and looking
    /// at only a few of them per miss would take fresh slabs from the pool for most fills.</summary>
    [Theory]
    [InlineData(1, 8)]
    [InlineData(2, 8)]
    [InlineData(1, 100)]
    [InlineData(2, 100)]
    public void AProducersSlabsAreReused_WhenConsumersFreeItsBlocks(int consumers, int inFlight)
    {
        const int BatchBlocks = 4096, Batches = 3000;
        int blocksPerSlab = SizeClasses.Capacity(SizeClasses.ClassOf(Size));
        // Blocks the producer can have out at once: the batches queued, one being filled and one being
        // freed by each consumer; in slabs, each of which may be partly free.
        int mostSlabsOut = (inFlight + 1 + consumers) * BatchBlocks / blocksPerSlab;

        SlabStatistics before = SlabMemory.GetStatistics();
        using var queue = new BlockingCollection<nint>(inFlight);
        long freed = 0;
        var consumerThreads = Enumerable.Range(0, consumers).Select(_ => new Thread(() =>
        {
            foreach (nint batch in queue.GetConsumingEnumerable())
            {
                var blocks = (nint*)batch;
                for (int i = 0; i < BatchBlocks; i++)
                {
                    BlockStamp.Verify((void*)blocks[i]);
                    SlabMemory.Free((void*)blocks[i]);
                }
                SlabMemory.Free(blocks);
                Interlocked.Add(ref freed, BatchBlocks);
            }
        })).ToList();
        consumerThreads.ForEach(t => t.Start());

        long acquired = 0;
        var producer = new Thread(() =>
        {
            SlabStatistics start = SlabMemory.GetStatistics();
            long id = 1;
            for (int b = 0; b < Batches; b++)
            {
                var batch = (nint*)SlabMemory.Alloc((nuint)(BatchBlocks * sizeof(nint)));
                for (int i = 0; i < BatchBlocks; i++)
                {
                    void* p = SlabMemory.Alloc(Size);
                    BlockStamp.Write(p, Size, BlockStamp.BaseAlignmentLog, id++);
                    batch[i] = (nint)p;
                }
                queue.Add((nint)batch);
            }
            queue.CompleteAdding();
            SlabStatistics end = SlabMemory.GetStatistics();
            acquired = (end.AcquiredStage1 + end.AcquiredStage2 + end.AcquiredStage3) -
                       (start.AcquiredStage1 + start.AcquiredStage2 + start.AcquiredStage3);
        });
        producer.Start();
        producer.Join();
        consumerThreads.ForEach(t => t.Join());

        Assert.Equal((long)Batches * BatchBlocks, freed);
        SlabMemory.Trim();
        Assert.Equal(before.BlocksInUse, SlabMemory.GetStatistics().BlocksInUse);
        // Every slab it fills (Batches × BatchBlocks / blocksPerSlab of them, 12,000 here) is either taken up
        // again from its own cache or comes from the pool; only the ones in flight should need the pool,
        // with a quarter more for slabs partly freed and for the batches' own slabs.
        Assert.True(acquired <= mostSlabsOut + mostSlabsOut / 4 + 16,
            $"the producer took {acquired} slabs from the pool for at most {mostSlabsOut} slabs' worth of blocks out at once");
    }
}
