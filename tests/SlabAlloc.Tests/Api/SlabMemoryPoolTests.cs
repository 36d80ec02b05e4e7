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
    [InlineData(0)]
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
    public void RentWithoutASizeGivesTheDefaultSize()
    {
        long before = BlocksInUse;
        using (IMemoryOwner<byte> owner = SlabMemoryPool.Shared.Rent())
            Assert.Equal(SlabMemoryPool.DefaultBufferSize, owner.Memory.Length);
        using (IMemoryOwner<byte> owner = SlabMemoryPool.Shared.Rent(-1))
            Assert.Equal(4096, owner.Memory.Length);
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
