namespace SlabAlloc.Tests.Interprocess;

/// <summary>The shared heap's contract, with two instances of one heap in this process (two process slots):
/// blocks, accounting, errors, full heaps, leaving.</summary>
public sealed class SharedHeapTests : IDisposable
{
    private readonly TestHeaps _heaps = new();

    public void Dispose() => _heaps.Dispose();

    [Fact]
    public void BlocksWrittenByOneInstanceAreReadAndFreedByAnotherWithExactAccounting()
    {
        // A quarter of the blocks take up to a whole 64 KiB slab each: about 750 slabs of them.
        using SharedHeap a = _heaps.Create(regionBytes: 128L << 20);
        using SharedHeap b = SharedHeap.Open(a.Name);
        var random = new Random(1234);
        var blocks = new List<SharedBlock>();
        for (int i = 0; i < 3000; i++)
        {
            int bytes = random.Next(4) == 0 ? random.Next(1, a.MaxBlockBytes + 1) : random.Next(1, 2048);
            SharedBlock block = (i % 2 == 0 ? a : b).Allocate(bytes);
            Assert.Equal(bytes, block.Length);
            Assert.True(a.CapacityOf(block) >= bytes);
            Stamp.Write(a.GetSpan(block), i);
            blocks.Add(block);
        }
        Assert.Equal(blocks.Count, blocks.Select(x => x.Offset).Distinct().Count());
        Assert.Equal(3000, a.GetStatistics().BlocksHeld);
        Assert.Equal(1500, b.GetStatistics().BlocksHeldHere);
        for (int i = 0; i < blocks.Count; i++)
        {
            Assert.Equal(-1, Stamp.FirstMismatch(b.GetSpan(blocks[i]), i));
            (i % 3 == 0 ? a : b).Free(blocks[i]);
        }
        SharedHeapStatistics statistics = a.GetStatistics();
        Assert.Equal(0, statistics.BlocksHeld);
        Assert.Equal(0, statistics.BlocksInChannels);
        Assert.Equal(2, statistics.Processes);
    }

    [Fact]
    public void EveryRequestGetsABlockOfItsSizeOrAQuarterMore()
    {
        using SharedHeap heap = _heaps.Create(regionBytes: 16L << 20, slabBytes: 1 << 20);
        foreach (int bytes in new[] { 1, 63, 64, 65, 200, 256, 257, 321, 1000, 4096, 4097, 65536, 100_000, 1 << 19, (1 << 19) + 1, 1 << 20 })
        {
            SharedBlock block = heap.Allocate(bytes);
            int capacity = heap.CapacityOf(block);
            Assert.InRange(capacity, bytes, Math.Max(bytes + 63, bytes * 5 / 4 + 64));
            Assert.Equal(0, block.Offset % 64);
            heap.Free(block);
        }
        Assert.Throws<ArgumentOutOfRangeException>(() => heap.Allocate(0));
        Assert.Throws<ArgumentOutOfRangeException>(() => heap.Allocate((1 << 20) + 1));
    }

    [Fact]
    public void MisuseIsAClearErrorAndChangesNothing()
    {
        using SharedHeap heap = _heaps.Create(channels: new SharedChannelOptions("c", 4));
        SharedChannel channel = heap.GetChannel("c");
        SharedBlock block = heap.Allocate(100);
        SharedBlock other = heap.Allocate(100);
        heap.Free(block);
        Assert.Contains("double free", Assert.Throws<ArgumentException>(() => heap.Free(block)).Message);
        Assert.Throws<ArgumentException>(() => channel.TrySend(block));
        foreach (long offset in new[] { 0L, 1, 63, 64, 4096, other.Offset + 64, other.Offset + 1, heap.RegionBytes, heap.RegionBytes - 64, -64, long.MaxValue })
        {
            Assert.Throws<ArgumentException>(() => heap.Free(new SharedBlock(offset, 1)));
            Assert.Throws<ArgumentException>(() => heap.GetSpan(new SharedBlock(offset, 1)));
        }
        Assert.Throws<ArgumentException>(() => heap.GetSpan(other with { Length = heap.CapacityOf(other) + 1 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => channel.TrySend(other with { Length = heap.CapacityOf(other) + 1 }));
        Assert.True(channel.TrySend(other));
        Assert.Contains("in a channel", Assert.Throws<ArgumentException>(() => heap.Free(other)).Message);
        Assert.Throws<ArgumentException>(() => channel.TrySend(other));
        Assert.Throws<KeyNotFoundException>(() => heap.GetChannel("nope"));
        Assert.True(channel.TryReceive(out SharedBlock received));
        Assert.Equal(other, received);
        heap.Free(received);
        SharedHeapStatistics statistics = heap.GetStatistics();
        Assert.Equal(0, statistics.BlocksHeld);
        Assert.Equal(0, statistics.BlocksInChannels);
    }

    [Fact]
    public void RacingFreesOfOneBlockHaveExactlyOneWinner()
    {
        using SharedHeap a = _heaps.Create();
        using SharedHeap b = SharedHeap.Open(a.Name);
        using var barrier = new Barrier(2);
        int rounds = 2000 * TestScale.Factor;
        var block = new SharedBlock[1];
        int[] wins = new int[2], errors = new int[2];
        void Race(SharedHeap heap, int side)
        {
            for (int round = 0; round < rounds; round++)
            {
                if (side == 0) block[0] = a.Allocate(64 + round % 500);
                barrier.SignalAndWait();
                try
                {
                    heap.Free(block[0]);
                    wins[side]++;
                }
                catch (ArgumentException)
                {
                    errors[side]++;
                }
                barrier.SignalAndWait();
            }
        }
        var t0 = new Thread(() => Race(a, 0));
        var t1 = new Thread(() => Race(b, 1));
        t0.Start(); t1.Start(); t0.Join(); t1.Join();
        Assert.Equal(rounds, wins[0] + wins[1]);
        Assert.Equal(rounds, errors[0] + errors[1]);
        Assert.Equal(0, a.GetStatistics().BlocksHeld);
        SharedHeapRecovery recovery = a.Recover();
        Assert.Equal(0, recovery.BlocksReclaimed);
    }

    [Fact]
    public void RacingFreeAndSendOfOneBlockHaveExactlyOneWinner()
    {
        using SharedHeap a = _heaps.Create(channels: new SharedChannelOptions("c", 4096));
        using SharedHeap b = SharedHeap.Open(a.Name);
        SharedChannel channel = a.GetChannel("c");
        using var barrier = new Barrier(2);
        int rounds = 2000 * TestScale.Factor;
        var block = new SharedBlock[1];
        int sent = 0, freed = 0, refused = 0;
        var sender = new Thread(() =>
        {
            for (int round = 0; round < rounds; round++)
            {
                block[0] = a.Allocate(128);
                barrier.SignalAndWait();
                try { if (channel.TrySend(block[0])) sent++; } catch (ArgumentException) { Interlocked.Increment(ref refused); }
                barrier.SignalAndWait();
            }
        });
        var freer = new Thread(() =>
        {
            for (int round = 0; round < rounds; round++)
            {
                barrier.SignalAndWait();
                try { b.Free(block[0]); freed++; } catch (ArgumentException) { Interlocked.Increment(ref refused); }
                barrier.SignalAndWait();
            }
        });
        sender.Start(); freer.Start(); sender.Join(); freer.Join();
        Assert.Equal(rounds, sent + freed);
        Assert.Equal(rounds, refused);
        Assert.Equal(sent, a.GetStatistics().BlocksInChannels);
        // A send that claimed its position and then lost the block to the free publishes the position as
        // dropped, which receivers skip: the channel holds every sent block, plus those marks.
        SharedChannel received = b.GetChannel("c");
        int messages = 0;
        while (received.TryReceive(out SharedBlock message))
        {
            b.Free(message);
            messages++;
        }
        Assert.Equal(sent, messages);
        Assert.Equal(channel.GetStatistics().Sent, sent);
        Assert.Equal(0, a.GetStatistics().BlocksHeld);
        Assert.Equal(0, a.GetStatistics().BlocksInChannels);
    }

    [Fact]
    public void AFullHeapRefusesThenEmptySlabsServeAnotherSize()
    {
        using SharedHeap heap = _heaps.Create(regionBytes: 4L << 20, slabBytes: 64 * 1024);
        var small = new List<SharedBlock>();
        while (heap.TryAllocate(64, out SharedBlock block)) small.Add(block);
        int slabs = heap.GetStatistics().SlabCount;
        Assert.Equal(slabs * 1024, small.Count);
        Assert.Throws<InsufficientMemoryException>(() => heap.Allocate(64));
        Assert.Throws<InsufficientMemoryException>(() => heap.Allocate(heap.MaxBlockBytes));
        foreach (SharedBlock block in small) heap.Free(block);
        // Every slab is cut for 64 bytes, all free: the next large request finds none of its class, runs
        // maintenance, which returns the empty slabs, and then gets one.
        var large = new List<SharedBlock>();
        while (heap.TryAllocate(heap.MaxBlockBytes, out SharedBlock block)) large.Add(block);
        Assert.Equal(slabs, large.Count);
        Assert.True(heap.GetStatistics().SlabsReturned >= slabs);
        foreach (SharedBlock block in large) heap.Free(block);
        Assert.Equal(0, heap.GetStatistics().BlocksHeld);
    }

    [Fact]
    public void LeavingFreesWhatTheInstanceHeldAndGivesItsSlotBack()
    {
        using SharedHeap a = _heaps.Create(processes: 2);
        SharedHeap b = SharedHeap.Open(a.Name);
        for (int i = 0; i < 500; i++) b.Allocate(100 + i);
        SharedBlock mine = a.Allocate(10);
        Assert.Throws<InvalidOperationException>(() => SharedHeap.Open(a.Name));
        b.Dispose();
        Assert.Throws<ObjectDisposedException>(() => b.Allocate(10));
        SharedHeapStatistics statistics = a.GetStatistics();
        Assert.Equal(1, statistics.BlocksHeld);
        Assert.Equal(500, statistics.BlocksReclaimed);
        Assert.Equal(1, statistics.Processes);
        using SharedHeap c = SharedHeap.Open(a.Name);
        c.Free(mine);
        Assert.Equal(0, a.GetStatistics().BlocksHeld);
    }

    [Fact]
    public void ThreadsOfTwoInstancesAllocateAndFreeWithoutSharingABlock()
    {
        using SharedHeap a = _heaps.Create(regionBytes: 32L << 20);
        using SharedHeap b = SharedHeap.Open(a.Name);
        int threads = 4, operations = 20_000 * TestScale.Factor;
        using var barrier = new Barrier(threads);
        var failures = new List<string>();
        var workers = Enumerable.Range(0, threads).Select(t => new Thread(() =>
        {
            SharedHeap heap = t % 2 == 0 ? a : b, other = t % 2 == 0 ? b : a;
            var random = new Random(100 + t);
            var held = new List<(SharedBlock Block, long Id)>();
            barrier.SignalAndWait();
            for (int i = 0; i < operations; i++)
            {
                if (held.Count < 64 && (held.Count == 0 || random.Next(2) == 0))
                {
                    long id = t * 1_000_000L + i;
                    SharedBlock block = heap.Allocate(random.Next(1, random.Next(3) == 0 ? 65536 : 600));
                    Stamp.Write(heap.GetSpan(block), id);
                    held.Add((block, id));
                }
                else
                {
                    int index = random.Next(held.Count);
                    (SharedBlock block, long id) = held[index];
                    held[index] = held[^1];
                    held.RemoveAt(held.Count - 1);
                    int bad = Stamp.FirstMismatch(other.GetSpan(block), id);
                    if (bad >= 0) lock (failures) failures.Add($"block {block} id {id}: byte {bad} overwritten");
                    (random.Next(2) == 0 ? heap : other).Free(block);
                }
            }
            foreach ((SharedBlock block, _) in held) heap.Free(block);
        })).ToList();
        workers.ForEach(w => w.Start());
        workers.ForEach(w => w.Join());
        Assert.Empty(failures);
        Assert.Equal(0, a.GetStatistics().BlocksHeld);
        Assert.Equal(0, a.Recover().BlocksReclaimed);
    }
}
