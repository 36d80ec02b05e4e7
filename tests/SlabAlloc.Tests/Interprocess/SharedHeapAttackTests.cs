namespace SlabAlloc.Tests.Interprocess;

/// <summary>The shared heap against the states a killed process leaves and the bytes a hostile one writes: each
/// state is written into the region through its file, then the heap must recover or refuse with the documented
/// exception, never touch memory outside its mapping, never spin for ever.</summary>
public sealed class SharedHeapAttackTests : IDisposable
{
    private readonly TestHeaps _heaps = new();

    public void Dispose() => _heaps.Dispose();

    // ---- states a killed process leaves -------------------------------------------------------------------

    [Fact]
    public void ADeadMaintainerAndADeadSlotInsideAnOperationAreTakenOverAndReclaimed()
    {
        using SharedHeap a = _heaps.Create(processes: 4);
        SharedHeap b = SharedHeap.Open(a.Name); // stands for the process that dies: never used again
        var poke = new RegionPoke(a, 4);
        for (int i = 0; i < 10; i++) b.Allocate(100);
        poke.Write64(poke.Record(1), RegionPoke.DeadIdentity);
        poke.Write64(poke.Record(1) + 8, 3); // ActiveOperations left behind
        poke.Write64(192, RegionPoke.DeadIdentity); // MaintenanceOwner
        SharedBlock block = a.Allocate(100); // Enter finds the dead maintainer and takes over
        a.Free(block);
        SharedHeapStatistics statistics = a.GetStatistics();
        Assert.Equal(0, statistics.BlocksHeld);
        Assert.Equal(10, statistics.BlocksReclaimed);
        Assert.Equal(1, statistics.Processes);
        Assert.Equal(0, poke.Read64(192));
    }

    [Fact]
    public void ACellClaimedButNeverPublishedOrNeverEmptiedIsSettled()
    {
        var c = new SharedChannelOptions("c", 4);
        using SharedHeap heap = _heaps.Create(processes: 2, channels: c);
        var poke = new RegionPoke(heap, 2, c);
        SharedChannel channel = heap.GetChannel("c");
        // A receiver that claimed position 0 and died before taking the block.
        Assert.True(channel.TrySend(heap.Allocate(10)));
        poke.Write64(poke.Channel(0) + 128, 1);
        // A sender that claimed position 1 and died before publishing.
        poke.Write64(poke.Channel(0) + 64, 2);
        SharedHeapRecovery recovery = heap.Recover();
        Assert.Equal(2, recovery.MessagesDropped);
        Assert.Equal(1, recovery.BlocksReclaimed);
        Assert.False(channel.TryReceive(out _));
        Assert.Equal(1, channel.GetStatistics().DroppedSkipped);
        for (int i = 0; i < 12; i++)
        {
            Assert.True(channel.TrySend(heap.Allocate(10 + i)));
            Assert.True(channel.TryReceive(out SharedBlock got));
            Assert.Equal(10 + i, got.Length);
            heap.Free(got);
        }
        SharedHeapStatistics statistics = heap.GetStatistics();
        Assert.Equal(0, statistics.BlocksHeld);
        Assert.Equal(0, statistics.BlocksInChannels);
    }

    // ---- hostile bytes ------------------------------------------------------------------------------------

    [Fact]
    public void AHeaderWithAHugeSlabSizeIsRefusedAsInvalidData()
    {
        string name;
        using (SharedHeap heap = _heaps.Create())
        {
            name = heap.Name;
            new RegionPoke(heap, 8).Write64(24, -1); // SlabBytes = 2^64 - 1: its last class would be 2^64 bytes
        }
        Assert.Throws<InvalidDataException>(() => SharedHeap.Open(name));
    }

    [Fact]
    public void AChannelCapacityChangedAfterOpeningNeverLeadsOutsideTheMapping()
    {
        var c = new SharedChannelOptions("c", 4);
        using SharedHeap heap = _heaps.Create(processes: 2, channels: c);
        var poke = new RegionPoke(heap, 2, c);
        SharedChannel channel = heap.GetChannel("c");
        SharedBlock block = heap.Allocate(10);
        poke.Write32(poke.Channel(0) + 48, 1 << 30);
        poke.Write64(poke.Channel(0) + 64, 1L << 29);
        poke.Write64(poke.Channel(0) + 128, 1L << 29);
        // With the stored capacity, position 2^29 would be a cell 8 GiB past the region.
        Assert.Throws<InvalidDataException>(() => channel.TrySend(block));
        Assert.Throws<InvalidDataException>(() => channel.TryReceive(out _));
        Assert.InRange(channel.Count, 0, 4);
        poke.Write32(poke.Channel(0) + 48, 4);
        poke.Write64(poke.Channel(0) + 64, 0);
        poke.Write64(poke.Channel(0) + 128, 0);
        heap.Free(block);
        Assert.Equal(0, heap.GetStatistics().BlocksHeld);
    }

    [Fact]
    public void ANegativeCarvedSlabCountIsInvalidData()
    {
        using SharedHeap heap = _heaps.Create(processes: 2);
        var poke = new RegionPoke(heap, 2);
        poke.Write64(256, -1); // SlabsCarved
        // Carving slab -1 would write the slab table 32 GiB past the region.
        Assert.Throws<InvalidDataException>(() => heap.Allocate(100));
        Assert.Throws<InvalidDataException>(() => heap.GetStatistics());
        poke.Write64(256, 0);
        heap.Free(heap.Allocate(100));
    }

    [Fact]
    public void AFreeSlabListNamingASlabInUseIsInvalidData()
    {
        using SharedHeap heap = _heaps.Create(processes: 2);
        var poke = new RegionPoke(heap, 2);
        SharedBlock held = heap.Allocate(100); // carves slab 0 for 128-byte blocks
        poke.Write64(320, 7L << 32 | 1); // FreeSlabs: slab 0 on top
        // A slab for another class: slab 0 again, cut anew under the block still held.
        Assert.Throws<InvalidDataException>(() => heap.Allocate(5000));
        Assert.Equal(100, heap.CapacityOf(held) - 28);
        heap.Free(held);
        Assert.Equal(0, heap.GetStatistics().BlocksHeld);
    }

    [Fact]
    public void AGarbageCellSequenceIsInvalidDataNotAnEndlessLoop()
    {
        var c = new SharedChannelOptions("c", 4);
        using SharedHeap heap = _heaps.Create(processes: 2, channels: c);
        var poke = new RegionPoke(heap, 2, c);
        SharedChannel channel = heap.GetChannel("c");
        SharedBlock block = heap.Allocate(10);
        foreach (bool receiving in new[] { true, false })
        {
            poke.Write64(poke.Cell(0, 0), 1000); // sequence far ahead of position 0
            // A thread of its own, not the pool's: a starved pool could delay the start past the bound below.
            Exception? thrown = null;
            var attempt = new Thread(() =>
            {
                try { if (receiving) channel.TryReceive(out _); else channel.TrySend(block); }
                catch (Exception e) { thrown = e; }
            });
            attempt.Start();
            bool finished = attempt.Join(TimeSpan.FromSeconds(10));
            poke.Write64(poke.Cell(0, 0), 0); // lets a spinning attempt out
            attempt.Join();
            Assert.True(finished, $"{(receiving ? "TryReceive" : "TrySend")} spun on the garbage cell");
            Assert.IsType<InvalidDataException>(thrown);
        }
    }

    // ---- races --------------------------------------------------------------------------------------------

    [Fact]
    public void AFreeRacingASendThatFindsTheChannelFullAlwaysWins()
    {
        var c = new SharedChannelOptions("c", 2);
        using SharedHeap a = _heaps.Create(processes: 2, channels: c);
        using SharedHeap b = SharedHeap.Open(a.Name);
        SharedChannel channel = a.GetChannel("c");
        Assert.True(channel.TrySend(a.Allocate(10)));
        Assert.True(channel.TrySend(a.Allocate(10)));
        int rounds = 300, refusedFrees = 0;
        for (int round = 0; round < rounds; round++)
        {
            SharedBlock block = a.Allocate(64);
            using var started = new ManualResetEventSlim();
            bool stop = false;
            // A sender that keeps finding the channel full (as Send does while it spins): its sends never succeed,
            // so of it and the free, the free must.
            var sender = new Thread(() =>
            {
                started.Set();
                try
                {
                    while (!Volatile.Read(ref stop)) Assert.False(channel.TrySend(block));
                }
                catch (ArgumentException)
                {
                    // the block was freed: what a send after the free must say
                }
            });
            sender.Start();
            started.Wait();
            Thread.SpinWait(200);
            try
            {
                b.Free(block);
            }
            catch (ArgumentException)
            {
                refusedFrees++;
                Volatile.Write(ref stop, true);
                sender.Join();
                a.Free(block);
                continue;
            }
            Volatile.Write(ref stop, true);
            sender.Join();
        }
        Assert.Equal(0, refusedFrees);
        Assert.Equal(2, a.GetStatistics().BlocksInChannels);
        Assert.Equal(0, a.GetStatistics().BlocksHeld);
    }

    // ---- disposing --------------------------------------------------------------------------------------

    [Fact]
    public void EveryCallAfterDisposeIsObjectDisposed()
    {
        using SharedHeap keeper = _heaps.Create(processes: 2, channels: new SharedChannelOptions("c", 4));
        SharedHeap heap = SharedHeap.Open(keeper.Name);
        SharedChannel channel = heap.GetChannel("c");
        SharedBlock block = heap.Allocate(10);
        heap.Dispose();
        Assert.Throws<ObjectDisposedException>(() => heap.GetStatistics());
        Assert.Throws<ObjectDisposedException>(() => heap.Recover());
        Assert.Throws<ObjectDisposedException>(() => heap.GetSpan(block));
        Assert.Throws<ObjectDisposedException>(() => heap.CapacityOf(block));
        Assert.Throws<ObjectDisposedException>(() => channel.Count);
        Assert.Throws<ObjectDisposedException>(() => channel.TryReceive(out _));
        Assert.Throws<ObjectDisposedException>(() => channel.Receive(TimeSpan.FromMilliseconds(10)));
    }

    [Fact]
    public void DisposeWhileAnotherThreadWaitsOnAChannelEndsTheWaitCleanly()
    {
        var c = new SharedChannelOptions("c", 4);
        using SharedHeap keeper = _heaps.Create(processes: 2, channels: c);
        SharedHeap heap = SharedHeap.Open(keeper.Name);
        SharedChannel channel = heap.GetChannel("c");
        channel.SpinDuration = TimeSpan.Zero;
        Exception? failure = null;
        var receiver = new Thread(() =>
        {
            try { channel.Receive(TimeSpan.FromSeconds(3)); }
            catch (Exception e) { failure = e; }
        });
        receiver.Start();
        var poke = new RegionPoke(keeper, 2, c);
        // ReceiversWaiting (the high half of the word at 192): the receiver is about to sleep or asleep.
        while ((int)(poke.Read64(poke.Channel(0) + 192) >> 32) == 0) Thread.Sleep(1);
        Thread.Sleep(20);
        heap.Dispose();
        Assert.True(receiver.Join(TimeSpan.FromSeconds(2)));
        Assert.IsType<ObjectDisposedException>(failure);
        // The sleeper's count went with it: a sender sees no receiver waiting.
        Assert.Equal(0, (int)(poke.Read64(poke.Channel(0) + 192) >> 32));
        Assert.Equal(0, keeper.GetStatistics().BlocksHeld);
    }

    [Fact]
    public void AReceiveThatOnlyEmptiesDroppedMessagesWakesASleepingSender()
    {
        var c = new SharedChannelOptions("c", 2);
        using SharedHeap heap = _heaps.Create(processes: 2, channels: c);
        var poke = new RegionPoke(heap, 2, c);
        SharedChannel channel = heap.GetChannel("c");
        // Two senders that claimed positions 0 and 1 and died: maintenance publishes both as dropped, and the
        // channel is full of nothing.
        poke.Write64(poke.Channel(0) + 64, 2);
        Assert.Equal(2, heap.Recover().MessagesDropped);
        channel.SpinDuration = TimeSpan.Zero;
        SharedBlock block = heap.Allocate(10);
        Exception? failure = null;
        var sender = new Thread(() =>
        {
            try { channel.Send(block, TimeSpan.FromSeconds(3)); }
            catch (Exception e) { failure = e; }
        });
        sender.Start();
        // SendersWaiting (the high half of the word at 256): the sender is about to sleep or asleep.
        while ((int)(poke.Read64(poke.Channel(0) + 256) >> 32) == 0) Thread.Sleep(1);
        int eventsBefore = (int)poke.Read64(poke.Channel(0) + 256);
        Assert.False(channel.TryReceive(out _)); // empties both cells, receives nothing
        Assert.Equal(2, channel.GetStatistics().DroppedSkipped);
        // The sleeper is woken through NotFullEvents, not left to find the room at the end of its sleep slice.
        Assert.NotEqual(eventsBefore, (int)poke.Read64(poke.Channel(0) + 256));
        Assert.True(sender.Join(TimeSpan.FromSeconds(2)));
        Assert.Null(failure);
        Assert.True(channel.TryReceive(out SharedBlock got));
        heap.Free(got);
        Assert.Equal(0, heap.GetStatistics().BlocksHeld);
    }
}
