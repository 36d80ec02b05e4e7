using System.Buffers;
using System.IO.Pipelines;
using System.Runtime.InteropServices;

namespace SlabAlloc.Tests.Api;

/// <summary>
/// <see cref="SlabMemoryPool"/>: lengths, that the memory is SlabAlloc's and goes back to it exactly
/// once, use after dispose, concurrent dispose and System.IO.Pipelines.
/// </summary>
/// <remarks>In the non-parallel "SlabAlloc global state" collection because the tests compare
/// <see cref="SlabStatistics.BlocksInUse"/> exactly.</remarks>
[Collection("SlabAlloc global state")]
public sealed class SlabMemoryPoolTests
{
    private static long BlocksInUse => SlabMemory.GetStatistics().BlocksInUse;

    private static byte PatternAt(long offset) => (byte)((offset * 31) ^ (offset >> 11));

    private static unsafe void* PointerOf(Memory<byte> memory)
    {
        using MemoryHandle handle = memory.Pin();
        return handle.Pointer;
    }

    // ------------------------------------------------------------------ sizes and contents

    [Theory]
    [InlineData(1)]
    [InlineData(100)]
    [InlineData(4096)]
    [InlineData(70000)]
    [InlineData(1024 * 1024)]
    public unsafe void RentGivesExactlyTheRequestedLengthOfWritableSlabAllocMemory(int size)
    {
        long before = BlocksInUse;
        IMemoryOwner<byte> owner = SlabMemoryPool.Shared.Rent(size);
        Assert.Equal(before + 1, BlocksInUse);

        Memory<byte> memory = owner.Memory;
        Assert.Equal(size, memory.Length);

        Span<byte> span = memory.Span;
        for (int i = 0; i < span.Length; i++) span[i] = PatternAt(i);
        ReadOnlySpan<byte> again = owner.Memory.Span;
        for (int i = 0; i < again.Length; i++)
        {
            if (again[i] != PatternAt(i)) Assert.Fail($"size {size}: byte {i} is 0x{again[i]:x2}, expected 0x{PatternAt(i):x2}.");
        }

        void* p = PointerOf(memory);
        Assert.True(p != null);
        nuint usable = SlabMemory.UsableSize(p); // throws if the block is not a live SlabAlloc block
        Assert.True(usable >= (nuint)size, $"size {size}: usable size {usable} is smaller.");
        Assert.True(MemoryMarshal.TryGetMemoryManager<byte, MemoryManager<byte>>(memory, out MemoryManager<byte>? manager));
        Assert.Same(owner, manager);

        owner.Dispose();
        Assert.Equal(before, BlocksInUse);
    }

    [Fact]
    public void RentWithoutASizeOrOfZeroGivesTheDefaultSize()
    {
        long before = BlocksInUse;
        using (IMemoryOwner<byte> owner = SlabMemoryPool.Shared.Rent())
            Assert.Equal(SlabMemoryPool.DefaultBufferSize, owner.Memory.Length);
        using (IMemoryOwner<byte> owner = SlabMemoryPool.Shared.Rent(-1))
            Assert.Equal(4096, owner.Memory.Length);
        // Hosts rent 0 bytes to ask for "a buffer", then write into it.
        using (IMemoryOwner<byte> owner = SlabMemoryPool.Shared.Rent(0))
        {
            Assert.Equal(SlabMemoryPool.DefaultBufferSize, owner.Memory.Length);
            owner.Memory.Span.Fill(0xA5);
        }
        Assert.Equal(before, BlocksInUse);
    }

    [Theory]
    [InlineData(-2)]
    [InlineData(int.MinValue)]
    public void RentOfANegativeSizeOtherThanMinusOneThrows(int size)
    {
        long before = BlocksInUse;
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => SlabMemoryPool.Shared.Rent(size));
        Assert.Equal("minBufferSize", e.ParamName);
        Assert.Equal(before, BlocksInUse);
    }

    [Fact]
    public void MaxBufferSizeIsIntMaxValue() => Assert.Equal(int.MaxValue, SlabMemoryPool.Shared.MaxBufferSize);

    [Fact]
    public unsafe void PinGivesTheAddressOfTheSliceAndPinsNothing()
    {
        using IMemoryOwner<byte> owner = SlabMemoryPool.Shared.Rent(256);
        byte* start = (byte*)PointerOf(owner.Memory);
        Assert.True(start == (byte*)PointerOf(owner.Memory.Slice(10)) - 10);
        Assert.True(start + 256 == (byte*)PointerOf(owner.Memory.Slice(256)));

        var manager = (MemoryManager<byte>)owner;
        MemoryHandle handle = manager.Pin(5);
        Assert.True((byte*)handle.Pointer == start + 5);
        handle.Dispose();
        handle.Dispose();
        Assert.Throws<ArgumentOutOfRangeException>(() => manager.Pin(257));
        Assert.Throws<ArgumentOutOfRangeException>(() => manager.Pin(-1));
        owner.Memory.Span[0] = 42; // still usable after the handles were disposed
        Assert.Equal(42, owner.Memory.Span[0]);
    }

    // ------------------------------------------------------------------ dispose

    [Fact]
    public void DoubleDisposeFreesOnce()
    {
        long before = BlocksInUse;
        IMemoryOwner<byte> small = SlabMemoryPool.Shared.Rent(100);
        IMemoryOwner<byte> large = SlabMemoryPool.Shared.Rent(100_000);
        IMemoryOwner<byte> other = SlabMemoryPool.Shared.Rent(100); // keeps the slab non-empty, so a double free would go unnoticed by SlabAlloc itself
        Assert.Equal(before + 3, BlocksInUse);

        small.Dispose();
        large.Dispose();
        Assert.Equal(before + 1, BlocksInUse);
        small.Dispose();
        large.Dispose();
        ((IDisposable)small).Dispose();
        Assert.Equal(before + 1, BlocksInUse);

        other.Dispose();
        Assert.Equal(before, BlocksInUse);
    }

    [Fact]
    public void UseAfterDisposeThrowsObjectDisposedException()
    {
        IMemoryOwner<byte> owner = SlabMemoryPool.Shared.Rent(128);
        Memory<byte> memory = owner.Memory; // taken before dispose
        var manager = (MemoryManager<byte>)owner;
        owner.Dispose();

        AssertDisposed(() => _ = owner.Memory);
        AssertDisposed(() => manager.GetSpan());
        AssertDisposed(() => _ = memory.Span);
        AssertDisposed(() => manager.Pin());
        AssertDisposed(() => memory.Pin());
        AssertDisposed(() => memory.Slice(1).Pin());
        manager.Unpin(); // does nothing, disposed or not

        static void AssertDisposed(Action action)
        {
            var e = Assert.Throws<ObjectDisposedException>(action);
            Assert.Contains("disposed", e.Message);
            Assert.Contains("SlabMemoryPool", e.Message);
        }
    }

    [Theory]
    [InlineData(100)]
    [InlineData(70000)]
    public void ConcurrentDisposeFromEightThreadsFreesExactlyOnce(int size)
    {
        const int Threads = 8, Rounds = 100;
        long before = BlocksInUse;
        IMemoryOwner<byte> keep = SlabMemoryPool.Shared.Rent(size); // so that SlabAlloc itself would not catch a double free of a small block
        IMemoryOwner<byte>? current = null;
        int go = 0, ready = 0;
        bool stop = false;
        string? failure = null;
        var errors = new System.Collections.Concurrent.ConcurrentQueue<Exception>();
        using var barrier = new Barrier(Threads + 1);

        // Each round: the main thread publishes a fresh owner; the workers pass the first barrier and
        // spin on `go` (spinning rather than blocking, so that their disposes really overlap); the main
        // thread releases them all at once and, after the second barrier, counts the blocks in use.
        var workers = new Thread[Threads];
        for (int t = 0; t < Threads; t++)
        {
            workers[t] = new Thread(() =>
            {
                for (int r = 1; ; r++)
                {
                    barrier.SignalAndWait();
                    if (Volatile.Read(ref stop)) return;
                    Interlocked.Increment(ref ready);
                    var spin = new SpinWait();
                    while (Volatile.Read(ref go) != r) spin.SpinOnce(sleep1Threshold: -1);
                    try { Volatile.Read(ref current)!.Dispose(); }
                    catch (Exception e) { errors.Enqueue(e); }
                    barrier.SignalAndWait();
                }
            }) { IsBackground = true };
            workers[t].Start();
        }

        for (int r = 1; r <= Rounds && failure is null; r++)
        {
            Volatile.Write(ref current, SlabMemoryPool.Shared.Rent(size));
            barrier.SignalAndWait();
            var spin = new SpinWait();
            while (Volatile.Read(ref ready) != r * Threads) spin.SpinOnce(sleep1Threshold: -1);
            Volatile.Write(ref go, r);
            barrier.SignalAndWait();
            long now = BlocksInUse;
            if (now != before + 1) failure = $"round {r}: {now - before} blocks in use after the concurrent dispose, expected 1.";
        }
        Volatile.Write(ref stop, true);
        barrier.SignalAndWait();
        foreach (Thread w in workers) w.Join();

        if (failure is not null) Assert.Fail(failure);
        Assert.Empty(errors);
        keep.Dispose();
        Assert.Equal(before, BlocksInUse);
    }

    // ------------------------------------------------------------------ reuse of owners

    private static bool OwnersReused => !SlabAlloc.Support.SlabOptions.Checked;

    [Fact]
    public void RentAndDisposeAllocateNoManagedMemoryOnceOwnersAreReused()
    {
        const int Held = 16, Cycles = 10_000;
        int[] sizes = [0, 1, 64, 100, 4096, 5000, 65536, 70_000];
        using var pool = new SlabMemoryPool();
        var held = new IMemoryOwner<byte>?[Held];
        long before = BlocksInUse;
        void Cycle(int i)
        {
            int slot = i % Held;
            held[slot]?.Dispose();
            held[slot] = pool.Rent(sizes[i % sizes.Length]);
            held[slot]!.Memory.Span[0] = (byte)i;
        }
        for (int i = 0; i < 4 * (Held + SlabMemoryPool.OwnersHeldBack); i++) Cycle(i); // warm: owners made, code compiled
        long created = SlabMemory.GetStatistics().PoolOwnersCreated;
        long allocated = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < Cycles; i++) Cycle(i);
        allocated = GC.GetAllocatedBytesForCurrentThread() - allocated;
        created = SlabMemory.GetStatistics().PoolOwnersCreated - created;
        foreach (IMemoryOwner<byte>? owner in held) owner!.Dispose();
        Assert.Equal(before, BlocksInUse);
        if (OwnersReused)
        {
            Assert.Equal(0, created);
            Assert.Equal(0, allocated);
        }
        else Assert.Equal(Cycles, created); // checked mode: a new owner per rent, so every misuse is seen
    }

    [Fact]
    public void ADisposedOwnerIsHeldBackBehindLaterOnesBeforeItIsRentedAgain()
    {
        using var pool = new SlabMemoryPool();
        long before = BlocksInUse;
        IMemoryOwner<byte> first = pool.Rent(100);
        Memory<byte> stale = first.Memory;
        first.Dispose();
        var later = new List<IMemoryOwner<byte>>();
        for (int i = 0; i < SlabMemoryPool.OwnersHeldBack; i++)
        {
            IMemoryOwner<byte> owner = pool.Rent(200);
            Assert.NotSame(first, owner);
            // While held back, the first owner is disposed in every respect.
            Assert.Throws<ObjectDisposedException>(() => first.Memory);
            Assert.Throws<ObjectDisposedException>(() => { _ = stale.Span; });
            first.Dispose();
            Assert.Equal(before + 1, BlocksInUse);
            owner.Dispose();
            later.Add(owner);
        }
        IMemoryOwner<byte> next = pool.Rent(300);
        if (OwnersReused) Assert.Same(first, next); // the oldest idle owner, now rented again
        else Assert.DoesNotContain(next, later.Append(first));
        Assert.Equal(300, next.Memory.Length);
        next.Memory.Span.Fill(3);
        next.Dispose();
        Assert.Equal(before, BlocksInUse);
    }

    /// <summary>Four threads rent and stamp, four others verify and dispose: an owner is never handed to two
    /// renters at once, no buffer overlaps another, and every block comes back.</summary>
    [Fact]
    public void OwnersRentedOnSomeThreadsAndDisposedOnOthersStayDistinctAndExact()
    {
        const int Producers = 4, Consumers = 4, PerProducer = 5_000;
        using var pool = new SlabMemoryPool();
        long before = BlocksInUse;
        long created = SlabMemory.GetStatistics().PoolOwnersCreated;
        var handOff = new System.Collections.Concurrent.BlockingCollection<(IMemoryOwner<byte> Owner, int Stamp)>(boundedCapacity: 256);
        var live = new System.Collections.Concurrent.ConcurrentDictionary<IMemoryOwner<byte>, int>(ReferenceEqualityComparer.Instance);
        var errors = new System.Collections.Concurrent.ConcurrentQueue<string>();
        int verified = 0;
        var producers = Enumerable.Range(0, Producers).Select(p => new Thread(() =>
        {
            var random = new Random(1000 + p);
            for (int i = 0; i < PerProducer; i++)
            {
                IMemoryOwner<byte> owner = pool.Rent(1 + (int)Math.Exp(random.NextDouble() * Math.Log(100_000)));
                int stamp = p * PerProducer + i;
                if (!live.TryAdd(owner, stamp)) errors.Enqueue($"owner rented while still rented (stamp {stamp})");
                Span<byte> span = owner.Memory.Span;
                for (int b = 0; b < span.Length; b++) span[b] = (byte)(stamp + b * 7);
                handOff.Add((owner, stamp));
            }
        })).ToList();
        var consumers = Enumerable.Range(0, Consumers).Select(_ => new Thread(() =>
        {
            foreach ((IMemoryOwner<byte> owner, int stamp) in handOff.GetConsumingEnumerable())
            {
                ReadOnlySpan<byte> span = owner.Memory.Span;
                for (int b = 0; b < span.Length; b++)
                {
                    if (span[b] != (byte)(stamp + b * 7)) { errors.Enqueue($"stamp {stamp}: byte {b} overwritten"); break; }
                }
                if (!live.TryRemove(owner, out int seen) || seen != stamp) errors.Enqueue($"stamp {stamp}: not the live rent of its owner");
                owner.Dispose();
                Interlocked.Increment(ref verified);
            }
        })).ToList();
        foreach (Thread t in producers.Concat(consumers)) t.Start();
        foreach (Thread t in producers) t.Join();
        handOff.CompleteAdding();
        foreach (Thread t in consumers) t.Join();

        Assert.Empty(errors);
        Assert.Equal(Producers * PerProducer, verified);
        Assert.Equal(before, BlocksInUse);
        created = SlabMemory.GetStatistics().PoolOwnersCreated - created;
        if (OwnersReused) Assert.True(created < Producers * PerProducer / 4, $"{created} owners created for {Producers * PerProducer} rents");
        else Assert.Equal(Producers * PerProducer, created);
    }

    /// <summary>In a fresh process (the error is logged once per process): owners dropped without Dispose,
    /// new ones and reused ones, are finalized, their blocks come back, each is counted, and one error is
    /// logged; in checked mode too, where no owner is reused.</summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void OwnersDroppedWithoutDisposeAreReclaimedCountedAndLoggedOnce(bool checkedMode)
    {
        var settings = new Dictionary<string, string>();
        if (checkedMode) settings["SLABALLOC_CHECKED"] = "1";
        var result = ProbeProcess.Run(settings, "dropped-owners", "300");
        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Equal([checkedMode ? "REUSED none" : "REUSED some"], result.Lines("REUSED"));
        Assert.Equal(["RECLAIMED 600"], result.Lines("RECLAIMED"));
        Assert.Equal(["LOGGED 1"], result.Lines("LOGGED"));
        Assert.Single(result.Lines("PROBE_OK"));
    }

    // ------------------------------------------------------------------ the pool's own dispose

    [Fact]
    public void ADisposedPoolRentsNoMoreButItsBuffersStayValid()
    {
        long before = BlocksInUse;
        var pool = new SlabMemoryPool();
        IMemoryOwner<byte> owner = pool.Rent(64);
        pool.Dispose();
        pool.Dispose(); // a second dispose does nothing

        var e = Assert.Throws<ObjectDisposedException>(() => pool.Rent(64));
        Assert.Contains("disposed", e.Message);
        Assert.Equal(before + 1, BlocksInUse);

        owner.Memory.Span.Fill(7);
        Assert.Equal(7, owner.Memory.Span[63]);
        owner.Dispose();
        Assert.Equal(before, BlocksInUse);
    }

    [Fact]
    public void DisposingTheSharedPoolDoesNothing()
    {
        SlabMemoryPool.Shared.Dispose();
        using IMemoryOwner<byte> owner = SlabMemoryPool.Shared.Rent(16);
        Assert.Equal(16, owner.Memory.Length);
    }

    // ------------------------------------------------------------------ System.IO.Pipelines

    [Fact]
    public async Task APipeOnTheSharedPoolCarriesOneMebibyteAndGivesEveryBlockBack()
    {
        const int Total = 1024 * 1024;
        long before = BlocksInUse;
        var pipe = new Pipe(new PipeOptions(pool: SlabMemoryPool.Shared, useSynchronizationContext: false));
        int slabSegments = 0;

        Task writer = Task.Run(async () =>
        {
            int written = 0, chunk = 0;
            while (written < Total)
            {
                int size = Math.Min(Total - written, 1 + (chunk++ * 7919) % 12000); // 1..12000, varying
                Memory<byte> memory = pipe.Writer.GetMemory(size);
                if (MemoryMarshal.TryGetMemoryManager<byte, MemoryManager<byte>>(memory, out MemoryManager<byte>? m) && m is SlabMemoryOwner) slabSegments++;
                Span<byte> span = memory.Span;
                for (int i = 0; i < size; i++) span[i] = PatternAt(written + i);
                pipe.Writer.Advance(size);
                written += size;
                FlushResult flush = await pipe.Writer.FlushAsync();
                Assert.False(flush.IsCanceled);
            }
            await pipe.Writer.CompleteAsync();
        });

        Task<long> reader = Task.Run(async () =>
        {
            long read = 0;
            while (true)
            {
                ReadResult result = await pipe.Reader.ReadAsync();
                foreach (ReadOnlyMemory<byte> segment in result.Buffer)
                {
                    ReadOnlySpan<byte> span = segment.Span;
                    for (int i = 0; i < span.Length; i++)
                    {
                        if (span[i] != PatternAt(read + i))
                            Assert.Fail($"byte {read + i} is 0x{span[i]:x2}, expected 0x{PatternAt(read + i):x2}.");
                    }
                    read += span.Length;
                }
                pipe.Reader.AdvanceTo(result.Buffer.End);
                if (result.IsCompleted) break;
            }
            await pipe.Reader.CompleteAsync();
            return read;
        });

        await writer;
        Assert.Equal(Total, await reader);
        Assert.True(slabSegments > 0, "the pipe never wrote into SlabMemoryPool memory");
        Assert.Equal(before, BlocksInUse);
    }
}
