using System.Buffers;
using System.Collections.Concurrent;
using SlabAlloc.Support;

namespace SlabAlloc.Tests.Api;

/// <summary>
/// With renters racing, a disposed owner is still not rented again before
/// <see cref="SlabMemoryPool.OwnersHeldBack"/> other owners of the pool were disposed after it: the check
/// is made for the very queue position a renter claims.
/// </summary>
[Collection("SlabAlloc global state")]
public sealed class SlabMemoryPoolHeldBackTests
{
    [Fact]
    public void WithRentersRacingAnOwnerIsStillHeldBackBehind64LaterDisposes()
    {
        if (SlabOptions.Checked) return; // no reuse at all
        const int Renters = 4;
        using var pool = new SlabMemoryPool();
        long before = SlabMemory.GetStatistics().BlocksInUse;
        // One disposer, so the pool's queue order is the order of these sequence numbers.
        var disposedAt = new ConcurrentDictionary<object, long>(ReferenceEqualityComparer.Instance);
        var handOff = new ConcurrentQueue<IMemoryOwner<byte>>();
        long disposes = 0;
        var violations = new ConcurrentQueue<string>();
        bool stop = false;
        var deadline = DateTime.UtcNow.AddSeconds(2);
        var renters = Enumerable.Range(0, Renters).Select(r => new Thread(() =>
        {
            while (!Volatile.Read(ref stop))
            {
                if (handOff.Count > 512) { Thread.Yield(); continue; }
                IMemoryOwner<byte> owner = pool.Rent(64);
                long now = Volatile.Read(ref disposes); // at least every dispose begun before the rent's dequeue
                if (disposedAt.TryGetValue(owner, out long at) && now - at < SlabMemoryPool.OwnersHeldBack)
                    violations.Enqueue($"an owner disposed as #{at} was rented again when at most {now - at} owners had been disposed after it");
                handOff.Enqueue(owner);
            }
        })).ToList();
        var disposer = new Thread(() =>
        {
            while (true)
            {
                if (handOff.TryDequeue(out IMemoryOwner<byte>? owner))
                {
                    long seq = disposes + 1;
                    disposedAt[owner] = seq;
                    Volatile.Write(ref disposes, seq);
                    owner.Dispose();
                }
                else if (Volatile.Read(ref stop)) break;
                if (DateTime.UtcNow > deadline || violations.Count >= 5) Volatile.Write(ref stop, true);
            }
        });
        renters.ForEach(t => t.Start());
        disposer.Start();
        renters.ForEach(t => t.Join());
        Volatile.Write(ref stop, true);
        disposer.Join();
        while (handOff.TryDequeue(out IMemoryOwner<byte>? left)) left.Dispose();

        Assert.Equal(before, SlabMemory.GetStatistics().BlocksInUse);
        Assert.True(violations.IsEmpty, $"{disposes} disposes; {violations.Count} early reuses, e.g.:\n{string.Join("\n", violations.Take(5))}");
    }
}
