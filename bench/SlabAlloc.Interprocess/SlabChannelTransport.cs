using System.Numerics;

namespace SlabAlloc.Interprocess;

/// <summary>
/// SlabAlloc's <see cref="SharedHeap"/>: a heap in /dev/shm with two <see cref="SharedChannel"/>s, one per
/// direction. A message is a block: the sender allocates it, copies the message in and sends it (one operation:
/// <see cref="SharedChannel.Send(ReadOnlySpan{byte}, TimeSpan?)"/>); the receiver takes it, copies it out into its
/// own buffer (the copy every transport pays) and frees it (one operation too). A side with nothing to receive,
/// or no room to send, spins for the channel's spin time, then sleeps on a futex.
/// </summary>
/// <remarks>
/// The heap's slab is the message size rounded up to a power of two, at least 1 MiB, so every message is one
/// block; each channel holds up to 64 MiB of messages (4 to 256 of them), and the region has room for both
/// channels full plus the processes' caches. The parent removes the heap's name once the child has opened it.
/// </remarks>
internal sealed class SlabChannelTransport : ITransport
{
    private SharedHeap? _heap;
    private SharedChannel? _outgoing, _incoming;
    private string? _nameToRemove;

    public const string Description =
        "SlabAlloc SharedHeap in /dev/shm: a block per message, copied in by the sender, passed through a lock-free "
        + "SharedChannel per direction, copied out and freed by the receiver; a waiting side spins 50 µs, then sleeps on a futex";

    public string Listen(int maxMessageBytes)
    {
        int messageBytes = Math.Max(1, maxMessageBytes);
        int slabBytes = (int)Math.Clamp(BitOperations.RoundUpToPowerOf2((uint)messageBytes), 1u << 20, 64u << 20);
        int capacity = (int)Math.Clamp(BitOperations.RoundUpToPowerOf2((uint)Math.Max(1, (64 << 20) / messageBytes)) / 2, 4, 256);
        var options = new SharedHeapOptions
        {
            SlabBytes = slabBytes,
            // Every transport runs warm: the ring and the sockets' buffers are reused, and so are these pages, once faulted.
            Prefault = true,
            MaxProcesses = 4,
            RegionBytes = Math.Max(64L << 20, (2L * capacity + 16) * slabBytes),
            Channels = { new SharedChannelOptions("to-child", capacity), new SharedChannelOptions("to-parent", capacity) },
        };
        string name = $"slaballoc-ipc-{Environment.ProcessId}-{Guid.NewGuid():N}";
        _heap = SharedHeap.Create(name, options);
        _nameToRemove = name;
        _outgoing = _heap.GetChannel("to-child");
        _incoming = _heap.GetChannel("to-parent");
        return name;
    }

    public void Accept()
    {
        // The child says hello once it has opened the heap; then the name can go.
        Span<byte> hello = stackalloc byte[1];
        Receive(hello);
        SharedHeap.Delete(_nameToRemove!);
        _nameToRemove = null;
    }

    public void Connect(string endpoint)
    {
        _heap = SharedHeap.Open(endpoint, prefault: true);
        _outgoing = _heap.GetChannel("to-parent");
        _incoming = _heap.GetChannel("to-child");
        Send([1]);
    }

    public void Send(ReadOnlySpan<byte> message) => _outgoing!.Send(message);

    public void Receive(Span<byte> message)
    {
        int length = _incoming!.Receive(message);
        if (length != message.Length)
            throw new InvalidDataException($"shared channel: a message of {length} bytes where {message.Length} were expected");
    }

    public void Dispose()
    {
        // SLABALLOC_IPC_CHANNEL_STATS=1: each side prints its channels' counts (spins, kernel waits and wakes).
        if (Environment.GetEnvironmentVariable("SLABALLOC_IPC_CHANNEL_STATS") == "1" && _outgoing != null && _incoming != null)
            Console.Error.WriteLine($"slab-channel {Environment.ProcessId}: out {_outgoing.GetStatistics()}; in {_incoming.GetStatistics()}");
        _heap?.Dispose();
        if (_nameToRemove != null) SharedHeap.Delete(_nameToRemove);
    }
}
