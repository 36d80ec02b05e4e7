using System.Buffers;
using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
using SlabAlloc.Frontend;

namespace SlabAlloc;

/// <summary>
/// One buffer rented from <see cref="SlabMemoryPool"/>: a <see cref="MemoryManager{T}"/> over a
/// SlabAlloc block, and its owner (<see cref="MemoryManager{T}"/> implements
/// <see cref="IMemoryOwner{T}"/>). See <see cref="SlabMemoryPool"/> for the lifetime rules.
/// </summary>
/// <remarks>
/// <para><b>State.</b> <c>_pointer</c> is the block while the owner is rented and 0 otherwise.
/// <see cref="Rent"/> writes <c>_length</c> then releases <c>_pointer</c>; Dispose and the finalizer
/// take the block by exchanging <c>_pointer</c> for 0, so whichever reads the block back from that
/// exchange is the one caller that frees it, however many threads dispose at once.</para>
/// <para><b>Reuse.</b> A disposed owner goes back to its pool's queue and is rented again later (see
/// <see cref="SlabMemoryPool"/>): the owner is in the queue at most once, because only the caller
/// that took a nonzero block from the exchange enqueues it, and the next nonzero block is written
/// only by the <see cref="Rent"/> that dequeued it.</para>
/// <para><b>Dropped owners.</b> The object is finalizable. A rented owner that becomes unreachable
/// without Dispose (no reference to it or to a <see cref="Memory{T}"/> over it is left) is finalized:
/// the finalizer takes the block as Dispose would and gives it back. An owner waiting in its pool's
/// queue is reachable from the pool, so it is never finalized while the pool may rent it again; only
/// an owner the pool drops has its finalization suppressed. That is why this class implements
/// <see cref="IDisposable"/> again: <see cref="MemoryManager{T}"/>'s own implementation suppresses
/// finalization at every Dispose, and a reused owner would then have to be registered again at every
/// rent, which costs more than the rest of the rent.</para>
/// </remarks>
internal sealed unsafe class SlabMemoryOwner : MemoryManager<byte>, IDisposable
{
    private readonly SlabMemoryPool _pool;
    private nint _pointer;
    private int _length;

    internal SlabMemoryOwner(SlabMemoryPool pool) => _pool = pool;

    /// <summary>Makes this (idle) owner the owner of <paramref name="block"/>, <paramref name="length"/> bytes.</summary>
    internal void Rent(byte* block, int length)
    {
        _length = length;
        Volatile.Write(ref _pointer, (nint)block); // release: a reader that sees the block sees its length
    }

    /// <summary>The buffer, exactly as long as was rented.</summary>
    /// <exception cref="ObjectDisposedException">The owner has been disposed (and not rented again).</exception>
    public override Memory<byte> Memory
    {
        get
        {
            if (Volatile.Read(ref _pointer) == 0) ThrowDisposed();
            return CreateMemory(_length);
        }
    }

    /// <summary>The buffer as a span. The span cannot be revoked: do not use it after Dispose.</summary>
    /// <exception cref="ObjectDisposedException">The owner has been disposed (and not rented again).</exception>
    public override Span<byte> GetSpan()
    {
        nint p = Volatile.Read(ref _pointer);
        if (p == 0) ThrowDisposed();
        return new Span<byte>((void*)p, _length);
    }

    /// <summary>The address of byte <paramref name="elementIndex"/>. Native memory never moves, so
    /// nothing is pinned and disposing the handle does nothing; the pointer is valid until the owner
    /// is disposed.</summary>
    /// <exception cref="ObjectDisposedException">The owner has been disposed (and not rented again).</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="elementIndex"/> is outside 0..length.</exception>
    public override MemoryHandle Pin(int elementIndex = 0)
    {
        nint p = Volatile.Read(ref _pointer);
        if (p == 0) ThrowDisposed();
        if ((uint)elementIndex > (uint)_length) ThrowBadIndex(elementIndex);
        return new MemoryHandle((byte*)p + elementIndex);
    }

    /// <summary>Does nothing: <see cref="Pin"/> pins nothing (and its handle never calls back here).</summary>
    public override void Unpin() { }

    /// <summary>Gives the block back to SlabAlloc, once, and the owner back to its pool: later and
    /// concurrent calls do nothing until the owner is rented again. Finalization stays registered
    /// unless the pool drops the owner (see the remarks).</summary>
    void IDisposable.Dispose() => Dispose(true);

    /// <inheritdoc cref="IDisposable.Dispose"/>
    /// <param name="disposing">Always true: only <see cref="IDisposable.Dispose"/> calls this.</param>
    protected override void Dispose(bool disposing)
    {
        // Any number of threads may race here; one reads the block back (see the remarks).
        nint p = Interlocked.Exchange(ref _pointer, 0);
        if (p == 0) return;
        SlabMemory.Free((void*)p);
        if (!_pool.TakeBack(this)) GC.SuppressFinalize(this);
    }

    /// <summary>A rented owner dropped without Dispose: its block goes back to SlabAlloc. Never throws
    /// (an exception here would end the process): a block SlabAlloc refuses is logged and left.</summary>
    /// <remarks>CA2015 warns that a finalizer may free memory a span still uses. That needs a span taken
    /// from an owner nobody holds and nobody will dispose, a leak already; without the finalizer the block
    /// would be lost for good. The pool's documentation tells callers to keep the owner reachable.</remarks>
#pragma warning disable CA2015
    ~SlabMemoryOwner()
    {
        nint p = Interlocked.Exchange(ref _pointer, 0);
        if (p == 0) return; // idle: in a queue that was dropped with its pool
        try
        {
            SlabMemory.Free((void*)p);
            // The finalizer thread seldom allocates, so a batch it held could wait for ever.
            SmallBlocks.FlushCurrentThreadRemoteBatch();
            SlabMemoryPool.CountReclaimed(_length);
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException)
        {
            // The block was freed behind the owner's back (through a pointer from Pin): SlabAlloc logged
            // the double free when it threw; there is nothing left to give back.
        }
    }
#pragma warning restore CA2015

    [DoesNotReturn, MethodImpl(MethodImplOptions.NoInlining)]
    private static void ThrowDisposed() =>
        throw new ObjectDisposedException(nameof(SlabMemoryOwner),
            "This buffer rented from SlabMemoryPool has been disposed and its memory returned to SlabAlloc; it can no longer be used.");

    [DoesNotReturn, MethodImpl(MethodImplOptions.NoInlining)]
    private static void ThrowBadIndex(int elementIndex) =>
        throw new ArgumentOutOfRangeException(nameof(elementIndex), elementIndex, "The index must be between 0 and the buffer's length.");
}
