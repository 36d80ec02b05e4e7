using SlabAlloc.Shared;

namespace SlabAlloc.Tests.Interprocess;

/// <summary>The shared heap between real processes: messages across, and peers killed with SIGKILL at random
/// points while they allocate, free, send and receive.</summary>
public sealed class CrossProcessTests : IDisposable
{
    private readonly TestHeaps _heaps = new();

    public void Dispose() => _heaps.Dispose();

    [Fact]
    public void APeerProcessEchoesEveryMessageIntact()
    {
        using SharedHeap heap = _heaps.Create(regionBytes: 16L << 20, channels: [new("requests", 64), new("replies", 64)]);
        SharedChannel requests = heap.GetChannel("requests"), replies = heap.GetChannel("replies");
        const int count = 5000;
        using var peer = new PeerProcess("echo", heap.Name, "requests", "replies", count.ToString());
        var random = new Random(77);
        var sizes = new Queue<int>();
        int outstanding = 0, received = 0;
        for (int sent = 0; sent < count || received < count;)
        {
            // Keep up to 16 in flight, so that both the full and the empty paths run.
            if (sent < count && outstanding < 16)
            {
                int bytes = random.Next(SharedMessage.MinBytes, random.Next(8) == 0 ? 60_000 : 300);
                SharedBlock block = heap.Allocate(bytes);
                SharedMessage.Write(heap.GetSpan(block), sent);
                requests.Send(block, TimeSpan.FromSeconds(60));
                sizes.Enqueue(bytes);
                sent++;
                outstanding++;
                continue;
            }
            SharedBlock reply = replies.Receive(TimeSpan.FromSeconds(60));
            long id = SharedMessage.Read(heap.GetSpan(reply), out string? problem);
            Assert.Null(problem);
            Assert.Equal(received, id);
            Assert.Equal(sizes.Dequeue(), reply.Length);
            heap.Free(reply);
            received++;
            outstanding--;
        }
        Assert.Equal(0, peer.WaitForExit());
        Assert.Contains("PEER_OK", peer.Output);
        SharedHeapStatistics statistics = heap.GetStatistics();
        Assert.Equal(0, statistics.BlocksHeld);
        Assert.Equal(0, statistics.BlocksInChannels);
        Assert.Equal(1, statistics.Processes);
        Assert.Equal(0, statistics.BlocksReclaimed);
    }

    [Fact]
    public void APeerKilledWhileHoldingBlocksIsRecoveredByTheNextOpener()
    {
        using SharedHeap heap = _heaps.Create(regionBytes: 16L << 20);
        using (var peer = new PeerProcess("hold", heap.Name, "700"))
        {
            peer.WaitUntilReady();
            Assert.Equal(700, heap.GetStatistics().BlocksHeld);
            peer.Kill();
        }
        using SharedHeap next = SharedHeap.Open(heap.Name);
        SharedHeapStatistics statistics = heap.GetStatistics();
        Assert.Equal(0, statistics.BlocksHeld);
        Assert.Equal(700, statistics.BlocksReclaimed);
        Assert.Equal(1, statistics.ProcessesRecovered);
        Assert.Equal(2, statistics.Processes);
    }

    /// <summary>Peers churn on the heap (allocate, check, free, send, receive) and are killed with SIGKILL after a
    /// random delay, two at a time, while this process churns with them; at the end every block is accounted for
    /// and the whole heap can be allocated again.</summary>
    [Fact]
    public void PeersKilledAtRandomPointsNeitherWedgeNorLeakTheHeap() => KillPeers(kills: 120 * TestScale.Factor, seed: 2024);

    [Fact]
    [Trait("Category", "Stress")]
    public void HundredsOfPeersKilledAtRandomPointsNeitherWedgeNorLeakTheHeap() => KillPeers(kills: 600, seed: 99);

    private void KillPeers(int kills, int seed)
    {
        using SharedHeap heap = _heaps.Create(regionBytes: 64L << 20, slabBytes: 64 * 1024, processes: 8, channels: [new("a", 256), new("b", 256)]);
        SharedChannel a = heap.GetChannel("a"), b = heap.GetChannel("b");
        var random = new Random(seed);
        var problems = new List<string>();
        using var stop = new CancellationTokenSource();
        var held = new List<SharedBlock>();
        long received = 0;
        // This process churns too: it feeds channel b, drains channel a and checks what it receives.
        var churn = new Thread(() =>
        {
            var mine = new Random(seed + 1);
            long id = 0;
            while (!stop.IsCancellationRequested)
            {
                if (mine.Next(2) == 0 && heap.TryAllocate(mine.Next(SharedMessage.MinBytes, 2000), out SharedBlock block))
                {
                    SharedMessage.Write(heap.GetSpan(block), id++);
                    if (!b.TrySend(block)) held.Add(block);
                }
                if (a.TryReceive(out SharedBlock message))
                {
                    received++;
                    SharedMessage.Read(heap.GetSpan(message), out string? problem);
                    if (problem != null) lock (problems) problems.Add(problem);
                    heap.Free(message);
                }
                if (held.Count > 100)
                {
                    foreach (SharedBlock h in held) heap.Free(h);
                    held.Clear();
                }
            }
        });
        churn.Start();
        var peers = new List<(PeerProcess Peer, long KillAt)>();
        try
        {
            for (int started = 0, killed = 0; killed < kills;)
            {
                while (peers.Count < 2 && started < kills)
                {
                    var peer = new PeerProcess("churn", heap.Name, (seed * 1000 + started).ToString());
                    started++;
                    peer.WaitUntilReady();
                    peers.Add((peer, Environment.TickCount64 + random.Next(0, 40)));
                }
                (PeerProcess next, long at) = peers.MinBy(p => p.KillAt);
                long wait = at - Environment.TickCount64;
                if (wait > 0) Thread.Sleep((int)wait);
                next.Kill();
                if (next.Output.Contains("MISMATCH") || next.Output.Contains("PEER_FAILED")) lock (problems) problems.Add(next.Output);
                next.Dispose();
                peers.RemoveAll(p => p.Peer == next);
                killed++;
            }
        }
        finally
        {
            stop.Cancel();
            churn.Join();
            foreach ((PeerProcess peer, _) in peers) peer.Dispose();
        }
        Assert.Empty(problems);
        foreach (SharedBlock h in held) heap.Free(h);
        // Recover the last peers, then drain what the dead left in the channels.
        heap.Recover();
        foreach (SharedChannel channel in new[] { a, b })
        {
            while (channel.TryReceive(out SharedBlock message))
            {
                SharedMessage.Read(heap.GetSpan(message), out string? problem);
                Assert.Null(problem);
                heap.Free(message);
            }
        }
        SharedHeapStatistics statistics = heap.GetStatistics();
        Assert.True(statistics.BlocksHeld == 0 && statistics.BlocksInChannels == 0,
            $"after {kills} kills: {statistics}");
        Assert.Equal(1, statistics.Processes);
        Assert.Equal(kills, statistics.ProcessesRecovered);
        Assert.True(received > 0, "no message crossed from the peers");
        // Every slab can be taken again, at the largest size: nothing leaked, nothing is stuck in a cache.
        var everything = new List<SharedBlock>();
        while (heap.TryAllocate(heap.MaxBlockBytes, out SharedBlock block)) everything.Add(block);
        Assert.Equal(statistics.SlabCount, everything.Count);
        foreach (SharedBlock block in everything) heap.Free(block);
    }
}
