using System.Diagnostics;
using SlabAlloc.Testing;

namespace SlabAlloc.Interprocess;

/// <summary>
/// The round-trip workload: the parent sends a message, the child receives it whole into its own buffer and
/// sends the same bytes back, the parent receives them whole into another buffer. Each round trip's latency
/// goes into a histogram; each echo is checked at its two stamped ends, and every 1,024th byte for byte.
/// </summary>
internal sealed class PingPong : IDisposable
{
    /// <summary>Round trips a run measures unless told: fewer for large messages, whose round trips take longer.</summary>
    public static long DefaultRoundTrips(int sizeBytes) => sizeBytes <= 4096 ? 1_000_000 : sizeBytes <= 65536 ? 100_000 : 10_000;

    /// <summary>Unmeasured round trips first: enough for the JIT's optimized code and warm caches (10,000), fewer
    /// for large messages (64 MiB each way at most, and at least 100).</summary>
    public static long WarmupRoundTrips(int sizeBytes) => Math.Clamp((64L << 20) / sizeBytes, 100, 10_000);

    private const int FullCheckMask = 1023;

    private readonly string _transport;
    private readonly NativeBuffer _sent, _received;
    /// <summary>The number of the next round trip, continued from the warm-up into the measured part.</summary>
    private long _next;

    public PingPong(string transport, int sizeBytes)
    {
        if (sizeBytes < MessageStamp.MinBytes) throw new ArgumentException($"pingpong: messages are at least {MessageStamp.MinBytes} bytes");
        _transport = transport;
        _sent = new NativeBuffer(sizeBytes);
        _received = new NativeBuffer(sizeBytes);
        MessageStamp.Fill(_sent.Span);
    }

    /// <summary>The parent's side: <paramref name="count"/> round trips, each recorded in <paramref name="latency"/>.</summary>
    public void RoundTrips(ITransport transport, long count, LatencyHistogram latency)
    {
        Span<byte> sent = _sent.Span, received = _received.Span;
        for (long i = 0; i < count; i++)
        {
            long number = _next++;
            MessageStamp.Stamp(sent, number);
            long start = Stopwatch.GetTimestamp();
            transport.Send(sent);
            transport.Receive(received);
            latency.Record(Stopwatch.GetTimestamp() - start);
            if (!MessageStamp.EndsMatch(received, number) || ((number & FullCheckMask) == 0 && !received.SequenceEqual(sent)))
                throw Mismatch(number, sent, received);
        }
    }

    /// <summary>The child's side: echoes <paramref name="count"/> messages through its own buffer.</summary>
    public static void Echo(ITransport transport, NativeBuffer buffer, long count)
    {
        Span<byte> message = buffer.Span;
        for (long i = 0; i < count; i++)
        {
            transport.Receive(message);
            transport.Send(message);
        }
    }

    private InvalidDataException Mismatch(long number, ReadOnlySpan<byte> sent, ReadOnlySpan<byte> received)
    {
        int at = sent.CommonPrefixLength(received);
        return new InvalidDataException(
            $"pingpong over {_transport}: round trip {number} ({sent.Length} bytes) came back wrong from byte {at}: sent {sent[at]:X2}, received {received[at]:X2}");
    }

    public void Dispose()
    {
        _sent.Dispose();
        _received.Dispose();
    }
}
