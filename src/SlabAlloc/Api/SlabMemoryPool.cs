using System.Buffers;
using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
using SlabAlloc.Support;

namespace SlabAlloc;

/// <summary>
/// A <see cref="MemoryPool{T}"/> of bytes whose buffers are SlabAlloc blocks: each
/// <see cref="Rent"/> takes one block from <see cref="SlabMemory.Alloc(nuint)"/> and disposing the
/// returned owner gives it back with <see cref="SlabMemory.Free"/>.
/// </summary>
/// <remarks>
/// <para><b>Length.</b> The rented <see cref="IMemoryOwner{T}.Memory"/> is exactly
/// <c>minBufferSize</c> bytes long, never more; <c>0</c> and <c>-1</c> mean
/// <see cref="DefaultBufferSize"/>, since hosts rent with either to ask for "a buffer" and then write
/// into it. The <see cref="MemoryPool{T}"/> contract only promises <em>at least</em> the requested
/// size (and <see cref="MemoryPool{T}.Shared"/> may return more), so code written against any pool
/// works unchanged. The contents are not cleared.</para>
/// <para><b>No managed allocation per rent.</b> Disposed owners are kept, up to
/// <see cref="IdleOwnersKept"/> per pool, and rented again, so a program that rents and disposes
/// allocates no managed memory in steady state. A disposed owner is not rented again before
/// <see cref="OwnersHeldBack"/> other owners of the same pool have been disposed after it.</para>
/// <para><b>Lifetime.</b> Dispose every rented owner. Dispose is thread-safe: however many threads
/// dispose an owner, its block is freed once. After Dispose, <c>Memory</c>,
/// <see cref="MemoryManager{T}.GetSpan"/> and <see cref="MemoryManager{T}.Pin"/> (and so
/// <see cref="Memory{T}.Span"/> and <see cref="Memory{T}.Pin"/> of a <see cref="Memory{T}"/>
/// obtained earlier) throw <see cref="ObjectDisposedException"/>, and a second Dispose does nothing,
/// as long as the owner object has not been rented again. Once it has, a stale reference names the
/// new rent: its Dispose frees the new renter's buffer, exactly as returning an array twice to
/// <see cref="ArrayPool{T}"/> hands it to two renters. With <c>SLABALLOC_CHECKED=1</c> owners are
/// never reused, so every use after Dispose throws and every second Dispose does nothing. A
/// <see cref="Span{T}"/> or a pinned pointer obtained before Dispose cannot be revoked in any mode:
/// using it afterwards reads or writes memory that SlabAlloc may already have handed to someone
/// else. Disposing an owner while another thread is still using its memory is the same error.</para>
/// <para><b>Owners dropped without Dispose</b> are found by the garbage collector: once neither the
/// owner nor any <see cref="Memory{T}"/> over it is reachable, the owner's finalizer gives the block
/// back. Each such buffer is counted in <see cref="SlabStatistics.PoolBuffersReclaimed"/> and the
/// meter, and the first is logged as an error (<see cref="SlabAllocLogging"/>). A span or pointer
/// taken from a dropped owner is valid only while the owner is reachable
/// (<see cref="GC.KeepAlive"/>).</para>
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
    /// <summary>The length of a buffer rented with <c>minBufferSize</c> 0 or -1: 4096 bytes.</summary>
    public const int DefaultBufferSize = 4096;

    /// <summary>The most disposed owners a pool keeps for reuse: 256.</summary>
    public const int IdleOwnersKept = 256;

    /// <summary>How many owners disposed later a disposed owner waits behind before it is rented again: 64.</summary>
    public const int OwnersHeldBack = 64;

    /// <summary>A process-wide pool. Disposing it does nothing, so any component may use it.</summary>
    /// <remarks>Hides <see cref="MemoryPool{T}.Shared"/>, which is still the array-based pool when
    /// reached through <c>MemoryPool&lt;byte&gt;.Shared</c>.</remarks>
    public static new SlabMemoryPool Shared { get; } = new(isShared: true);

    private static long s_ownersCreated;
    private static long s_reclaimed;
    private static int s_reclaimLogged;

    private readonly bool _isShared;
    private readonly BoundedQueue<SlabMemoryOwner> _idle = new(IdleOwnersKept);
    private int _disposed;

    /// <summary>Creates a pool. Every pool serves its buffers from the same process-wide SlabAlloc
    /// allocator; a separate instance is only useful to have a pool that can be disposed.</summary>
    public SlabMemoryPool() { }

    private SlabMemoryPool(bool isShared) => _isShared = isShared;

    /// <summary>Owner objects created by every pool since start-up (the rest of the rents reused one).</summary>
    internal static long OwnersCreated => Volatile.Read(ref s_ownersCreated);

    /// <summary>Buffers of every pool whose owner was dropped without Dispose and whose block its finalizer gave back.</summary>
    internal static long Reclaimed => Volatile.Read(ref s_reclaimed);

    /// <summary><see cref="int.MaxValue"/>: any non-negative <see cref="int"/> size can be rented
    /// (the largest ones only if the system has the memory).</summary>
    public override int MaxBufferSize => int.MaxValue;

    /// <summary>Rents a buffer of exactly <paramref name="minBufferSize"/> bytes (not cleared),
    /// backed by a SlabAlloc block.</summary>
    /// <param name="minBufferSize">The length in bytes, up to <see cref="int.MaxValue"/>;
    /// 0 and -1 (the default) mean <see cref="DefaultBufferSize"/>.</param>
    /// <returns>The owner of the buffer. Dispose it to give the memory back.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="minBufferSize"/> is below -1.</exception>
    /// <exception cref="ObjectDisposedException">This pool has been disposed.</exception>
    /// <exception cref="OutOfMemoryException">The system has no memory for the block.</exception>
    public override unsafe IMemoryOwner<byte> Rent(int minBufferSize = -1)
    {
        if (_disposed != 0) ThrowPoolDisposed();
        if (minBufferSize <= 0)
        {
            if (minBufferSize < -1) ThrowBadSize(minBufferSize);
            minBufferSize = DefaultBufferSize;
        }
        // The owner first: should the block's allocation throw, an idle owner is all that is lost.
        SlabMemoryOwner owner = TakeIdle() ?? CreateOwner();
        owner.Rent((byte*)SlabMemory.Alloc((nuint)(uint)minBufferSize), minBufferSize);
        return owner;
    }

    /// <summary>An idle owner that has waited behind <see cref="OwnersHeldBack"/> later ones, or null.
    /// (Its finalization was never suppressed: see <see cref="SlabMemoryOwner"/>.)</summary>
    private SlabMemoryOwner? TakeIdle() =>
        _idle.TryDequeue(out SlabMemoryOwner? owner, keepBehind: OwnersHeldBack) ? owner : null;

    private SlabMemoryOwner CreateOwner()
    {
        Interlocked.Increment(ref s_ownersCreated);
        return new SlabMemoryOwner(this);
    }

    /// <summary>Keeps a just-disposed owner for reuse; false when this pool will not rent it again
    /// (disposed, checked mode, or enough idle owners already), and the owner is left to the collector.</summary>
    internal bool TakeBack(SlabMemoryOwner owner) =>
        !SlabOptions.Checked && Volatile.Read(ref _disposed) == 0 && _idle.TryEnqueue(owner);

    /// <summary>Counts a buffer whose owner's finalizer gave its block back, and logs the first.</summary>
    internal static void CountReclaimed(int lengthBytes)
    {
        Interlocked.Increment(ref s_reclaimed);
        if (Interlocked.Exchange(ref s_reclaimLogged, 1) == 0) SlabLog.PoolBufferNotDisposed(lengthBytes);
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
            "The buffer size must be between 1 and int.MaxValue, or 0 or -1 for the default size.");
}
