using System.Runtime.CompilerServices;

namespace SlabAlloc.Interprocess;

/// <summary>
/// Two <see cref="MutexRing"/>s, one per direction, in a file under /dev/shm (mode 0600) that both processes
/// map. A side that finds its ring empty (or full) tries again at once, taking the mutex on every try, as the
/// shared-memory queue this follows does. A message longer than a slot travels as consecutive slots.
/// </summary>
/// <remarks>
/// File layout: [0, 64) a header (<see cref="Magic"/>, set by the parent once both rings exist; the child's
/// attached flag), then the ring to the child, then the ring to the parent, each <see cref="MutexRing.Bytes"/>
/// (a multiple of 64). The parent removes the file's name once the child has mapped it, so nothing is left in
/// /dev/shm after a run, even a failed one past that point.
/// </remarks>
internal sealed unsafe class MutexRingTransport(bool adaptive) : ITransport
{
    private const uint Magic = 0x534C4252; // "SLBR"
    private const int HeaderBytes = 64;
    private const nuint FileBytes = HeaderBytes + 2 * MutexRing.Bytes;

    private byte* _mapping;
    private string? _pathToRemove;
    private MutexRing _outgoing, _incoming;

    public static string Describe(bool adaptive) =>
        $"shared-memory ring per direction (a /dev/shm file, {MutexRing.SlotCount} slots of {MutexRing.SlotPayloadBytes / 1024} KiB), "
        + $"each under a process-shared pthread mutex, {(adaptive ? "PTHREAD_MUTEX_ADAPTIVE_NP (spins before sleeping)" : "PTHREAD_MUTEX_NORMAL")}; "
        + $"an empty or full ring is retried at once, every try taking the mutex; a message over {MutexRing.SlotPayloadBytes / 1024} KiB travels as consecutive slots";

    private ref uint HeaderMagic => ref Unsafe.AsRef<uint>(_mapping);
    private ref int ChildAttached => ref Unsafe.AsRef<int>(_mapping + 4);

    public string Listen(int maxMessageBytes)
    {
        string path = $"/dev/shm/slaballoc-ipc-{Environment.ProcessId}-{Guid.NewGuid():N}";
        int fd = LibC.Open(path, LibC.ORdWr | LibC.OCreat | LibC.OExcl | LibC.OCloseOnExec, Convert.ToInt32("600", 8));
        if (fd < 0) throw LibC.Failure($"open({path})");
        _pathToRemove = path;
        Map(fd, create: true);
        _outgoing = MutexRing.Create(_mapping + HeaderBytes, adaptive);
        _incoming = MutexRing.Create(_mapping + HeaderBytes + MutexRing.Bytes, adaptive);
        // The child checks the magic: written last, so a child that sees it sees both rings made.
        Volatile.Write(ref HeaderMagic, Magic);
        return path;
    }

    public void Accept()
    {
        // Races with the child's Volatile.Write in Connect: the flag goes 0 to 1 once; a hang here is the
        // watchdog's to end (the child has died before mapping).
        while (Volatile.Read(ref ChildAttached) == 0) Thread.Sleep(1);
        File.Delete(_pathToRemove!);
        _pathToRemove = null;
    }

    public void Connect(string endpoint)
    {
        int fd = LibC.Open(endpoint, LibC.ORdWr | LibC.OCloseOnExec, 0);
        if (fd < 0) throw LibC.Failure($"open({endpoint})");
        Map(fd, create: false);
        if (Volatile.Read(ref HeaderMagic) != Magic) throw new InvalidDataException($"mutex ring: {endpoint} holds no rings");
        _outgoing = new MutexRing(_mapping + HeaderBytes + MutexRing.Bytes);
        _incoming = new MutexRing(_mapping + HeaderBytes);
        Volatile.Write(ref ChildAttached, 1);
    }

    private void Map(int fd, bool create)
    {
        try
        {
            if (create && LibC.Ftruncate(fd, (nint)FileBytes) != 0) throw LibC.Failure("ftruncate");
            void* mapping = LibC.Mmap(null, FileBytes, LibC.ProtRead | LibC.ProtWrite, LibC.MapShared, fd, 0);
            if (mapping == LibC.MapFailed) throw LibC.Failure("mmap");
            _mapping = (byte*)mapping;
        }
        finally
        {
            LibC.Close(fd); // the mapping keeps the file
        }
    }

    public void Send(ReadOnlySpan<byte> message)
    {
        while (!message.IsEmpty)
        {
            ReadOnlySpan<byte> slot = message[..Math.Min(message.Length, MutexRing.SlotPayloadBytes)];
            while (!_outgoing.TryEnqueue(slot)) { }
            message = message[slot.Length..];
        }
    }

    public void Receive(Span<byte> message)
    {
        while (!message.IsEmpty)
        {
            int length;
            while ((length = _incoming.TryDequeue(message)) < 0) { }
            message = message[length..];
        }
    }

    public void Dispose()
    {
        if (_mapping != null) LibC.Munmap(_mapping, FileBytes);
        _mapping = null;
        if (_pathToRemove is not null) File.Delete(_pathToRemove);
        _pathToRemove = null;
    }
}
