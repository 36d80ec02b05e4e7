using System.Buffers;
using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;

namespace SlabAlloc;

/// <summary>
/// A <see cref="MemoryPool{T}"/> of bytes whose buffers are SlabAlloc blocks: each
/// <see cref="Rent"/> takes one block from <see cref="SlabMemory.Alloc(nuint)"/> and disposing the
/// returned owner gives it back with <see cref="SlabMemory.Free"/>.
/// </summary>
/// <remarks>
/// <para><b>Length.</b> The rented <see cref="IMemoryOwner{T}.Memory"/> is exactly
/// <c>minBufferSize</c> bytes long (<see cref="DefaultBufferSize"/> for <c>-1</c>), never more. The
/// <see cref="MemoryPool{T}"/> contract only promises <em>at least</em> the requested size (and
/// <see cref="MemoryPool{T}.Shared"/> may return more), so code written against any pool works
/// unchanged. The contents are not cleared.</para>
/// <para><b>Lifetime.</b> Every rented owner must be disposed: its memory is native, so an owner
/// that is dropped without <see cref="IDisposable.Dispose"/> leaks its block (there is no finalizer,
/// which keeps <see cref="Rent"/> cheap). Dispose is thread-safe and idempotent: the block is freed
/// exactly once however many threads dispose the owner. After Dispose, <c>Memory</c>,
/// <see cref="MemoryManager{T}.GetSpan"/> and <see cref="MemoryManager{T}.Pin"/> (and so
/// <see cref="Memory{T}.Span"/> and <see cref="Memory{T}.Pin"/> of a <see cref="Memory{T}"/>
/// obtained earlier) throw <see cref="ObjectDisposedException"/>. A <see cref="Span{T}"/> or a
/// pinned pointer obtained <em>before</em> Dispose cannot be revoked: using it afterwards reads or
/// writes memory that SlabAlloc may already have handed to someone else. Disposing an owner while
/// another thread is still using its memory is the same error.</para>
/// <para><b>Pinning.</b> The memory is native and never moves, so <see cref="Memory{T}.Pin"/> only
/// returns a <see cref="MemoryHandle"/> holding the pointer; disposing that handle does nothing, and
/// the pointer stays valid until the owner is disposed.</para>
/// <para><b>Threads.</b> <see cref="Rent"/> may be called from any thread, and an owner may be
/// disposed on a thread other than the one that rented it.</para>
/// <para><b>Disposing the pool.</b> After <see cref="MemoryPool{T}.Dispose()"/>, <see cref="Rent"/>
/// throws <see cref="ObjectDisposedException"/>; buffers rented before stay valid until each is
/// disposed, and disposing the pool again does nothing. The <see cref="Shared"/> instance ignores
/// Dispose, like <see cref="MemoryPool{T}.Shared"/>.</para>
/// </remarks>
public sealed class SlabMemoryPool : MemoryPool<byte>
{
    /// <summary>The length of a buffer rented with <c>minBufferSize</c> = -1: 4096 bytes.</summary>
    public const int DefaultBufferSize = 4096;

    /// <summary>A process-wide pool. Disposing it does nothing, so any component may use it.</summary>
    /// <remarks>Hides <see cref="MemoryPool{T}.Shared"/>, which is still the array-based pool when
    /// reached through <c>MemoryPool&lt;byte&gt;.Shared</c>.</remarks>
    public static new SlabMemoryPool Shared { get; } = new(isShared: true);

    private readonly bool _isShared;
    private int _disposed;

    /// <summary>Creates a pool. Every pool serves its buffers from the same process-wide SlabAlloc
    /// allocator; a separate instance is only useful to have a pool that can be disposed.</summary>
    public SlabMemoryPool() { }

    private SlabMemoryPool(bool isShared) => _isShared = isShared;

    /// <summary><see cref="int.MaxValue"/>: any non-negative <see cref="int"/> size can be rented
    /// (the largest ones only if the system has the memory).</summary>
    public override int MaxBufferSize => int.MaxValue;

    /// <summary>Rents a buffer of exactly <paramref name="minBufferSize"/> bytes (not cleared),
    /// backed by a SlabAlloc block.</summary>
    /// <param name="minBufferSize">The length in bytes, from 0 to <see cref="int.MaxValue"/>;
    /// -1 (the default) means <see cref="DefaultBufferSize"/>.</param>
    /// <returns>The owner of the buffer. Dispose it to give the memory back; it must be disposed.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="minBufferSize"/> is below -1.</exception>
    /// <exception cref="ObjectDisposedException">This pool has been disposed.</exception>
    /// <exception cref="OutOfMemoryException">The system has no memory for the block.</exception>
    public override unsafe IMemoryOwner<byte> Rent(int minBufferSize = -1)
    {
        if (_disposed != 0) ThrowPoolDisposed();
        if (minBufferSize < 0)
        {
            if (minBufferSize != -1) ThrowBadSize(minBufferSize);
            minBufferSize = DefaultBufferSize;
        }
        return new SlabMemoryOwner((byte*)SlabMemory.Alloc((nuint)(uint)minBufferSize), minBufferSize);
    }

    /// <summary>Marks the pool disposed so that <see cref="Rent"/> throws; buffers already rented stay
    /// valid until they are disposed. Does nothing on <see cref="Shared"/> or when already disposed.</summary>
    /// <param name="disposing">True when called from <see cref="MemoryPool{T}.Dispose()"/>.</param>
    protected override void Dispose(bool disposing)
    {
        if (!_isShared) Volatile.Write(ref _disposed, 1);
    }

    [DoesNotReturn, MethodImpl(MethodImplOptions.NoInlining)]
    private static void ThrowPoolDisposed() =>
        throw new ObjectDisposedException(nameof(SlabMemoryPool),
            "This SlabMemoryPool has been disposed: it rents no more buffers. Buffers rented before stay valid until each is disposed.");

    [DoesNotReturn, MethodImpl(MethodImplOptions.NoInlining)]
    private static void ThrowBadSize(int minBufferSize) =>
        throw new ArgumentOutOfRangeException(nameof(minBufferSize), minBufferSize,
            "The buffer size must be -1 (the default size) or between 0 and int.MaxValue.");
}
