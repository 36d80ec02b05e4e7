using System.Buffers;

namespace SlabAlloc.Tests.Api;

/// <summary>SlabMemoryPool under a storm: rents, disposes of one owner from several threads at once, owners
/// dropped for the finalizer, collections, and the pool disposed part way; the accounting stays exact.</summary>
[Collection("SlabAlloc global state")]
public sealed class SlabMemoryPoolStormTests
{
    [Fact]
    public void RentDisposeStormsDropsFinalizersAndPoolDisposeKeepAccountingExact()
    {
        long before = SlabMemory.GetStatistics().BlocksInUse;
        long reclaimed0 = SlabMemory.GetStatistics().PoolBuffersReclaimed;
        long dropped = 0;
        var errors = new System.Collections.Concurrent.ConcurrentQueue<string>();
        var pool = new SlabMemoryPool();
        var barrier = new Barrier(4);
        IMemoryOwner<byte>? shared = null;
        var threads = Enumerable.Range(0, 4).Select(t => new Thread(() =>
        {
            var random = new Random(77 + t);
            for (int round = 0; round < 3000; round++)
            {
                try
                {
                    if (t == 0) Volatile.Write(ref shared, pool.Rent(random.Next(1, 3000)));
                    barrier.SignalAndWait();
                    IMemoryOwner<byte> o = Volatile.Read(ref shared)!;
                    o.Dispose(); // four threads dispose the same owner at once
                    barrier.SignalAndWait();
                    for (int i = 0; i < 20; i++)
                    {
                        IMemoryOwner<byte> mine = pool.Rent(random.Next(1, 5000));
                        mine.Memory.Span.Fill((byte)t);
                        if (random.Next(50) == 0) { Interlocked.Increment(ref dropped); continue; } // dropped
                        mine.Dispose();
                        if (random.Next(3) == 0) mine.Dispose();
                    }
                    if (t == 1 && round == 2000) pool.Dispose();
                    if (t == 2 && round % 500 == 0) GC.Collect();
                }
                catch (ObjectDisposedException) when (round >= 2000) { barrier.RemoveParticipant(); return; }
                catch (Exception e) { errors.Enqueue(e.ToString()); barrier.RemoveParticipant(); return; }
            }
        })).ToList();
        threads.ForEach(t => t.Start());
        threads.ForEach(t => t.Join());
        for (int i = 0; i < 3; i++) { GC.Collect(); GC.WaitForPendingFinalizers(); }
        SlabMemory.Trim();
        Assert.Empty(errors);
        Assert.Equal(dropped, SlabMemory.GetStatistics().PoolBuffersReclaimed - reclaimed0);
        Assert.Equal(before, SlabMemory.GetStatistics().BlocksInUse);
    }
}
