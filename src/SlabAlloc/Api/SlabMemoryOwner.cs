using System.Buffers;
using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;

namespace SlabAlloc;

/// <summary>
/// One buffer rented from <see cref="SlabMemoryPool"/>: a <see cref="MemoryManager{T}"/> over a
/// SlabAlloc block, and its owner (<see cref="MemoryManager{T}"/> implements
/// <see cref="IMemoryOwner{T}"/>). See <see cref="SlabMemoryPool"/> for the lifetime rules.
/// </summary>
/// <remarks>
/// One instance per rent, never reused: that is what lets a second Dispose, or a use after Dispose,
/// be recognised instead of touching a block that now belongs to another buffer.
/// <c>_pointer</c> is the block until Dispose exchanges it for 0; whoever reads the block back from
/// that exchange is the one caller that frees it.
/// </remarks>
internal sealed unsafe class SlabMemoryOwner : MemoryManager<byte>
{
    private nint _pointer;
    private readonly int _length;

    internal SlabMemoryOwner(byte* pointer, int length)
    {
        _pointer = (nint)pointer;
        _length = length;
    }

    /// <summary>The buffer, exactly as long as was rented.</summary>
    /// <exception cref="ObjectDisposedException">The owner has been disposed.</exception>
    public override Memory<byte> Memory
    {
        get
        {
            if (Volatile.Read(ref _pointer) == 0) ThrowDisposed();
            return CreateMemory(_length);
        }
    }

    /// <summary>The buffer as a span. The span cannot be revoked: do not use it after Dispose.</summary>
    /// <exception cref="ObjectDisposedException">The owner has been disposed.</exception>
    public override Span<byte> GetSpan()
    {
        nint p = Volatile.Read(ref _pointer);
        if (p == 0) ThrowDisposed();
        return new Span<byte>((void*)p, _length);
    }

    /// <summary>The address of byte <paramref name="elementIndex"/>. Native memory never moves, so
    /// nothing is pinned and disposing the handle does nothing; the pointer is valid until the owner
    /// is disposed.</summary>
    /// <exception cref="ObjectDisposedException">The owner has been disposed.</exception>
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

    /// <summary>Gives the block back to SlabAlloc, once: later and concurrent calls do nothing.</summary>
    /// <param name="disposing">True when called from <see cref="IDisposable.Dispose"/>.</param>
    protected override void Dispose(bool disposing)
    {
        nint p = Interlocked.Exchange(ref _pointer, 0);
        if (p != 0) SlabMemory.Free((void*)p);
    }

    [DoesNotReturn, MethodImpl(MethodImplOptions.NoInlining)]
    private static void ThrowDisposed() =>
        throw new ObjectDisposedException(nameof(SlabMemoryOwner),
            "This buffer rented from SlabMemoryPool has been disposed and its memory returned to SlabAlloc; it can no longer be used.");

    [DoesNotReturn, MethodImpl(MethodImplOptions.NoInlining)]
    private static void ThrowBadIndex(int elementIndex) =>
        throw new ArgumentOutOfRangeException(nameof(elementIndex), elementIndex, "The index must be between 0 and the buffer's length.");
}
