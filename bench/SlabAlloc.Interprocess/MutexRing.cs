using System.Runtime.CompilerServices;

namespace SlabAlloc.Interprocess;

/// <summary>
/// A bounded queue of fixed-size slots in memory shared by two processes, the whole of it under one
/// process-shared pthread mutex that lives in the same memory: the naive shared-memory queue whose futex
/// traffic the adaptive mutex cuts (docs/results/ipc-pingpong.md shows both). Neither call blocks: a full
/// ring fails <see cref="TryEnqueue"/>, an empty one <see cref="TryDequeue"/>, and the caller retries.
/// </summary>
/// <remarks>
/// Layout from <c>start</c> (64-byte aligned; a page-aligned mapping plus multiples of 64):
/// <code>
/// [0, 64)      pthread_mutex_t (40 bytes on x64 glibc, 48 on arm64; 64 reserved: a cache line of its own)
/// [64, 72)     WriteIndex: slots ever enqueued    } written only with the mutex held,
/// [72, 80)     ReadIndex:  slots ever dequeued    } WriteIndex by the sender, ReadIndex by the receiver
/// [128, ...)   SlotCount slots of SlotBytes: [0, 4) the payload's length, [64, 64 + SlotPayloadBytes) the payload
/// </code>
/// Invariant: 0 &lt;= WriteIndex - ReadIndex &lt;= SlotCount, and the slots from ReadIndex (mod SlotCount) up to
/// WriteIndex hold payloads not yet dequeued. Ordering: every field and slot is read and written with the mutex
/// held, and lock and unlock are acquire and release, so the receiver sees a slot's payload once it sees the
/// WriteIndex that covers it. The payload is copied in and out under the mutex, as in the queue this one follows.
/// </remarks>
internal readonly unsafe struct MutexRing
{
    public const int SlotPayloadBytes = 4096;
    /// <summary>64 slots of 4 KiB: 256 KiB in flight, between a pipe's default 64 KiB and a socket's buffers.</summary>
    public const int SlotCount = 64;
    private const int MutexBytes = 64;
    private const int SlotHeaderBytes = 64;
    private const int SlotBytes = SlotHeaderBytes + SlotPayloadBytes;
    private const int SlotsOffset = 128;
    public const int Bytes = SlotsOffset + SlotCount * SlotBytes;

    private readonly byte* _start;

    public MutexRing(byte* start) => _start = start;

    private void* Mutex => _start;
    private ref ulong WriteIndex => ref Unsafe.AsRef<ulong>(_start + MutexBytes);
    private ref ulong ReadIndex => ref Unsafe.AsRef<ulong>(_start + MutexBytes + 8);
    private byte* Slot(ulong index) => _start + SlotsOffset + (int)(index % SlotCount) * SlotBytes;

    /// <summary>Makes an empty ring at <paramref name="start"/>; the mutex is a plain (PTHREAD_MUTEX_NORMAL) or
    /// adaptive (PTHREAD_MUTEX_ADAPTIVE_NP) one, shared between processes.</summary>
    public static MutexRing Create(byte* start, bool adaptive)
    {
        long* attributes = stackalloc long[2]; // pthread_mutexattr_t: 4 bytes on x64, 8 on arm64
        Check(LibC.PthreadMutexattrInit(attributes), "pthread_mutexattr_init");
        Check(LibC.PthreadMutexattrSettype(attributes, adaptive ? LibC.PthreadMutexAdaptive : LibC.PthreadMutexNormal), "pthread_mutexattr_settype");
        Check(LibC.PthreadMutexattrSetpshared(attributes, LibC.PthreadProcessShared), "pthread_mutexattr_setpshared");
        Check(LibC.PthreadMutexInit(start, attributes), "pthread_mutex_init");
        LibC.PthreadMutexattrDestroy(attributes);
        var ring = new MutexRing(start);
        ring.WriteIndex = 0;
        ring.ReadIndex = 0;
        return ring;
    }

    /// <summary>Copies <paramref name="payload"/> (at most <see cref="SlotPayloadBytes"/>) into the next slot;
    /// false when the ring is full.</summary>
    public bool TryEnqueue(ReadOnlySpan<byte> payload)
    {
        Lock();
        if (WriteIndex - ReadIndex == SlotCount)
        {
            Unlock();
            return false;
        }
        byte* slot = Slot(WriteIndex);
        *(int*)slot = payload.Length;
        payload.CopyTo(new Span<byte>(slot + SlotHeaderBytes, payload.Length));
        WriteIndex++;
        Unlock();
        return true;
    }

    /// <summary>Copies the oldest slot's payload to the start of <paramref name="destination"/> and returns its
    /// length; -1 when the ring is empty.</summary>
    public int TryDequeue(Span<byte> destination)
    {
        Lock();
        if (WriteIndex == ReadIndex)
        {
            Unlock();
            return -1;
        }
        byte* slot = Slot(ReadIndex);
        int length = *(int*)slot;
        if (length > destination.Length)
        {
            Unlock();
            throw new InvalidDataException($"mutex ring: a slot of {length} bytes does not fit the {destination.Length} bytes left of the message");
        }
        new ReadOnlySpan<byte>(slot + SlotHeaderBytes, length).CopyTo(destination);
        ReadIndex++;
        Unlock();
        return length;
    }

    private void Lock() => Check(LibC.PthreadMutexLock(Mutex), "pthread_mutex_lock");

    private void Unlock() => Check(LibC.PthreadMutexUnlock(Mutex), "pthread_mutex_unlock");

    /// <summary>The pthread functions return the error number rather than setting errno.</summary>
    private static void Check(int error, string call)
    {
        if (error != 0) throw new IOException($"{call} failed with error {error}");
    }
}
