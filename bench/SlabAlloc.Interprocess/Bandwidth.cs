using System.Buffers.Binary;
using System.Diagnostics;

namespace SlabAlloc.Interprocess;

/// <summary>
/// The streaming workload: the parent writes chunks from one chunk-sized buffer (each stamped with its number),
/// the child reads each whole into its own chunk-sized buffer and folds it into a <see cref="StreamChecksum"/>,
/// and after the last one sends the checksum back as an 8-byte acknowledgement. The time runs from the first
/// write to the acknowledgement; the parent then replays the stream's checksum and compares.
/// </summary>
internal sealed class Bandwidth : IDisposable
{
    public const long DefaultTotalBytes = 16L << 20;

    /// <summary>Unmeasured chunks first: at least 1 MiB and at least two chunks, so every buffer's pages,
    /// the kernel's included, have been touched.</summary>
    public static long WarmupChunks(int chunkBytes) => Math.Max(2, (1L << 20) / chunkBytes);

    private const int AckBytes = 8;

    private readonly string _transport;
    private readonly NativeBuffer _chunk;
    /// <summary>The number of the next chunk, continued from the warm-up into the measured part.</summary>
    private long _next;

    public Bandwidth(string transport, int chunkBytes)
    {
        if (chunkBytes < MessageStamp.MinBytes || chunkBytes % 8 != 0)
            throw new ArgumentException($"bandwidth: a chunk is a multiple of 8 bytes, at least {MessageStamp.MinBytes}");
        _transport = transport;
        _chunk = new NativeBuffer(chunkBytes);
        MessageStamp.Fill(_chunk.Span);
    }

    /// <summary>The parent's side: streams <paramref name="chunks"/> chunks, checks the acknowledged checksum and
    /// returns the Stopwatch ticks from the first write to the acknowledgement.</summary>
    public long Stream(ITransport transport, long chunks)
    {
        Span<byte> chunk = _chunk.Span;
        Span<byte> ack = stackalloc byte[AckBytes];
        long first = _next;
        long start = Stopwatch.GetTimestamp();
        for (long i = 0; i < chunks; i++)
        {
            MessageStamp.Stamp(chunk, _next++);
            transport.Send(chunk);
        }
        transport.Receive(ack);
        long ticks = Stopwatch.GetTimestamp() - start;
        ulong expected = Replay(first, chunks), received = BinaryPrimitives.ReadUInt64LittleEndian(ack);
        if (received != expected)
            throw new InvalidDataException(
                $"bandwidth over {_transport}: the child's checksum of chunks {first}-{first + chunks - 1} ({chunk.Length} bytes each) is {received:X16}, the stream's {expected:X16}");
        return ticks;
    }

    /// <summary>The checksum of the chunks the parent sent, stamped again outside the timed part.</summary>
    private ulong Replay(long first, long chunks)
    {
        Span<byte> chunk = _chunk.Span;
        var checksum = new StreamChecksum();
        for (long i = 0; i < chunks; i++)
        {
            MessageStamp.Stamp(chunk, first + i);
            checksum.Add(chunk);
        }
        return checksum.Value;
    }

    /// <summary>The child's side: receives <paramref name="chunks"/> chunks into its buffer and acknowledges
    /// with their checksum.</summary>
    public static void Sink(ITransport transport, NativeBuffer buffer, long chunks)
    {
        Span<byte> chunk = buffer.Span;
        var checksum = new StreamChecksum();
        for (long i = 0; i < chunks; i++)
        {
            transport.Receive(chunk);
            checksum.Add(chunk);
        }
        Span<byte> ack = stackalloc byte[AckBytes];
        BinaryPrimitives.WriteUInt64LittleEndian(ack, checksum.Value);
        transport.Send(ack);
    }

    public void Dispose() => _chunk.Dispose();
}
