using SlabAlloc.Shared;

namespace SlabAlloc.Tests.Interprocess;

/// <summary>The channel between two instances of a heap: order, back-pressure, spinning then sleeping, timeouts,
/// and many senders and receivers at once.</summary>
public sealed class SharedChannelTests : IDisposable
{
    private readonly TestHeaps _heaps = new();

    public void Dispose() => _heaps.Dispose();

    [Fact]
    public void ABlockedReceiverSleepsInTheKernelAndTheSenderWakesIt()
    {
        using SharedHeap a = _heaps.Create(channels: new SharedChannelOptions("c", 8));
        using SharedHeap b = SharedHeap.Open(a.Name);
        SharedChannel sending = a.GetChannel("c"), receiving = b.GetChannel("c");
        receiving.SpinDuration = TimeSpan.Zero;
        SharedBlock got = default;
        var receiver = new Thread(() => got = receiving.Receive(TimeSpan.FromSeconds(30)));
        receiver.Start();
        // Wait (bounded) until the receiver is asleep, so the send has a sleeper to wake.
        for (int i = 0; i < 3000 && receiving.GetStatistics().KernelWaits == 0 && a.GetChannel("c").Count == 0; i++) Thread.Sleep(1);
        Thread.Sleep(20);
        SharedBlock block = a.Allocate(100);
        SharedMessage.Write(a.GetSpan(block), 5);
        sending.Send(block);
        receiver.Join();
        Assert.Equal(block, got);
        Assert.Equal(5, SharedMessage.Read(b.GetSpan(got), out string? problem));
        Assert.Null(problem);
        Assert.True(receiving.GetStatistics().ReceivesThatFoundItEmpty >= 1);
        Assert.True(sending.GetStatistics().KernelWakes >= 1, $"{sending.GetStatistics()}");
        b.Free(got);
    }

    [Fact]
    public void WaitsEndAtTheirTimeoutWithNothingChanged()
    {
        using SharedHeap heap = _heaps.Create(channels: new SharedChannelOptions("c", 2));
        SharedChannel channel = heap.GetChannel("c");
        Assert.False(channel.TryReceive(out _, TimeSpan.FromMilliseconds(30)));
        Assert.Throws<TimeoutException>(() => channel.Receive(TimeSpan.FromMilliseconds(30)));
        SharedBlock[] blocks = [heap.Allocate(10), heap.Allocate(10), heap.Allocate(10)];
        channel.Send(blocks[0]);
        channel.Send(blocks[1]);
        Assert.False(channel.TrySend(blocks[2]));
        Assert.Throws<TimeoutException>(() => channel.Send(blocks[2], TimeSpan.FromMilliseconds(30)));
        // The refused block is still the sender's: it can be freed, and nothing else moved.
        heap.Free(blocks[2]);
        Assert.Equal(2, channel.Count);
        Assert.Equal(2, heap.GetStatistics().BlocksInChannels);
        Assert.True(channel.GetStatistics().KernelWaits >= 1);
        for (int i = 0; i < 2; i++) heap.Free(channel.Receive());
        Assert.Equal(0, heap.GetStatistics().BlocksHeld);
    }

    [Fact]
    public void ManySendersAndReceiversDeliverEveryMessageOnceInEachSendersOrder()
    {
        using SharedHeap a = _heaps.Create(regionBytes: 16L << 20, channels: new SharedChannelOptions("c", 16));
        using SharedHeap b = SharedHeap.Open(a.Name);
        const int senders = 3, receivers = 3;
        int perSender = 4000 * TestScale.Factor;
        var seen = new long[senders];
        Array.Fill(seen, -1);
        var problems = new List<string>();
        int receivedCount = 0;
        var threads = new List<Thread>();
        for (int s = 0; s < senders; s++)
        {
            int sender = s;
            threads.Add(new Thread(() =>
            {
                SharedHeap heap = sender % 2 == 0 ? a : b;
                SharedChannel channel = heap.GetChannel("c");
                var random = new Random(sender);
                for (int i = 0; i < perSender; i++)
                {
                    SharedBlock block = heap.Allocate(random.Next(SharedMessage.MinBytes, 700));
                    SharedMessage.Write(heap.GetSpan(block), (long)sender << 32 | (uint)i);
                    channel.Send(block, TimeSpan.FromSeconds(60));
                }
            }));
        }
        var perReceiverLast = new long[receivers, senders];
        for (int r = 0; r < receivers; r++)
        {
            int receiver = r;
            for (int s = 0; s < senders; s++) perReceiverLast[receiver, s] = -1;
            threads.Add(new Thread(() =>
            {
                SharedHeap heap = receiver % 2 == 0 ? b : a;
                SharedChannel channel = heap.GetChannel("c");
                while (Volatile.Read(ref receivedCount) < senders * perSender)
                {
                    if (!channel.TryReceive(out SharedBlock block, TimeSpan.FromMilliseconds(20))) continue;
                    long id = SharedMessage.Read(heap.GetSpan(block), out string? problem);
                    heap.Free(block);
                    int sender = (int)(id >> 32);
                    long index = (uint)id;
                    lock (problems)
                    {
                        if (problem != null) problems.Add(problem);
                        else if (sender < 0 || sender >= senders) problems.Add($"id {id}");
                        // One receiver sees each sender's messages in that sender's order.
                        else if (index <= perReceiverLast[receiver, sender]) problems.Add($"sender {sender}: {index} after {perReceiverLast[receiver, sender]}");
                        else perReceiverLast[receiver, sender] = index;
                    }
                    Interlocked.Increment(ref receivedCount);
                }
            }));
        }
        threads.ForEach(t => t.Start());
        threads.ForEach(t => t.Join());
        Assert.Empty(problems);
        Assert.Equal(senders * perSender, receivedCount);
        SharedHeapStatistics statistics = a.GetStatistics();
        Assert.Equal(0, statistics.BlocksHeld);
        Assert.Equal(0, statistics.BlocksInChannels);
        long sent = a.GetChannel("c").GetStatistics().Sent + b.GetChannel("c").GetStatistics().Sent;
        long received = a.GetChannel("c").GetStatistics().Received + b.GetChannel("c").GetStatistics().Received;
        Assert.Equal(senders * perSender, sent);
        Assert.Equal(senders * perSender, received);
    }

    [Fact]
    public void CopiedMessagesArriveWholeAndLeaveNoBlockBehind()
    {
        using SharedHeap a = _heaps.Create(regionBytes: 16L << 20, channels: new SharedChannelOptions("c", 8));
        using SharedHeap b = SharedHeap.Open(a.Name);
        SharedChannel sending = a.GetChannel("c"), receiving = b.GetChannel("c");
        var random = new Random(31);
        byte[] buffer = new byte[a.MaxBlockBytes];
        int count = 3000 * TestScale.Factor;
        string? failure = null;
        var receiver = new Thread(() =>
        {
            try
            {
                for (int i = 0; i < count && failure == null; i++)
                {
                    int length = receiving.Receive(buffer, TimeSpan.FromSeconds(30));
                    long id = SharedMessage.Read(buffer.AsSpan(0, length), out string? problem);
                    if (problem != null || id != i) failure = $"message {i}: id {id}, {problem}";
                }
            }
            catch (Exception e)
            {
                failure = e.ToString();
            }
        });
        receiver.Start();
        try
        {
            byte[] message = new byte[a.MaxBlockBytes];
            for (int i = 0; i < count; i++)
            {
                int length = random.Next(SharedMessage.MinBytes, random.Next(10) == 0 ? message.Length + 1 : 300);
                SharedMessage.Write(message.AsSpan(0, length), i);
                sending.Send(message.AsSpan(0, length), TimeSpan.FromSeconds(30));
            }
        }
        finally
        {
            receiver.Join();
        }
        Assert.Null(failure);
        Assert.Equal(count, sending.GetStatistics().Sent);
        Assert.Equal(count, receiving.GetStatistics().Received);
        SharedHeapStatistics statistics = a.GetStatistics();
        Assert.Equal(0, statistics.BlocksHeld);
        Assert.Equal(0, statistics.BlocksInChannels);
    }

    [Fact]
    public void AMessageLongerThanTheDestinationStaysInTheChannel()
    {
        using SharedHeap heap = _heaps.Create(channels: new SharedChannelOptions("c", 4));
        SharedChannel channel = heap.GetChannel("c");
        byte[] message = new byte[100];
        SharedMessage.Write(message, 9);
        channel.Send(message);
        var error = Assert.Throws<ArgumentException>(() => channel.TryReceive(new byte[99], out _));
        Assert.Contains("100 bytes", error.Message);
        Assert.Equal(1, channel.Count);
        byte[] destination = new byte[100];
        Assert.Equal(100, channel.Receive(destination));
        Assert.Equal(9, SharedMessage.Read(destination, out _));
        Assert.Throws<ArgumentOutOfRangeException>(() => channel.Send(new byte[heap.MaxBlockBytes + 1]));
        Assert.Equal(0, heap.GetStatistics().BlocksHeld);
    }

    /// <summary>A receive with no deadline sleeps in slices of up to 50 ms: a few kernel waits in a quarter of a
    /// second, not a loop of waits the kernel refuses.</summary>
    [Fact]
    public void AWaitWithoutADeadlineSleepsInSlices()
    {
        using SharedHeap a = _heaps.Create(channels: new SharedChannelOptions("c", 4));
        using SharedHeap b = SharedHeap.Open(a.Name);
        SharedChannel receiving = b.GetChannel("c");
        receiving.SpinDuration = TimeSpan.Zero;
        var receiver = new Thread(() => b.Free(receiving.Receive()));
        receiver.Start();
        Thread.Sleep(250);
        a.GetChannel("c").Send(a.Allocate(8));
        receiver.Join();
        long waits = receiving.GetStatistics().KernelWaits;
        Assert.InRange(waits, 1, 50);
    }
}
