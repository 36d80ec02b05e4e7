using System.Buffers;
using System.Buffers.Binary;
using System.IO.Pipelines;

namespace SlabAlloc.Testing;

/// <summary>
/// The echo protocol of <see cref="EchoServer"/> and <see cref="EchoClient"/>: length-prefixed frames.
/// A frame is a 12-byte header (the payload's length, the client's number and the message's number,
/// each a little-endian <see cref="int"/>) and then the payload, whose bytes follow from the client's and
/// the message's numbers alone, so that a client checks every byte of an echo without keeping a copy of
/// what it sent.
/// </summary>
/// <remarks>
/// A payload is a window of <see cref="Pattern"/>, random bytes drawn once from a fixed seed, starting at
/// an offset hashed from the two numbers. Two messages, of one client or of two, lie at different
/// offsets, so an echo that comes back cut, shifted, merged with another or in another's place fails the
/// check; and the check is a vectorized comparison of spans, cheap next to the copies it verifies, which
/// matters where the echo is a benchmark. The server parses only the length: it never looks inside a
/// payload.
/// </remarks>
internal static class EchoFrame
{
    /// <summary>The header's length: payload length, client number, message number.</summary>
    public const int HeaderBytes = 12;

    /// <summary>The largest payload: 1 MiB. A header announcing more is a protocol error.</summary>
    public const int MaxPayloadBytes = 1 << 20;

    private const int PatternSeed = 0x5EC0;

    /// <summary>Twice the largest payload: a window of up to <see cref="MaxPayloadBytes"/> starting
    /// anywhere in the first half fits.</summary>
    private static readonly byte[] Pattern = MakePattern();

    /// <summary>What a frame's header says.</summary>
    public readonly record struct Header(int PayloadBytes, int Client, int Message);

    /// <summary>The payload of message <paramref name="message"/> of client <paramref name="client"/>.</summary>
    public static ReadOnlySpan<byte> Payload(int client, int message, int payloadBytes) =>
        Pattern.AsSpan(PayloadOffset(client, message), payloadBytes);

    /// <summary>Writes one frame into <paramref name="writer"/>, the payload copied in as many pieces as
    /// the writer's buffers take; the caller flushes.</summary>
    public static void Write(PipeWriter writer, int client, int message, int payloadBytes)
    {
        if ((uint)payloadBytes > MaxPayloadBytes) throw new ArgumentOutOfRangeException(nameof(payloadBytes), payloadBytes, $"a payload is 0 to {MaxPayloadBytes} bytes");
        Span<byte> header = writer.GetSpan(HeaderBytes);
        BinaryPrimitives.WriteInt32LittleEndian(header, payloadBytes);
        BinaryPrimitives.WriteInt32LittleEndian(header[4..], client);
        BinaryPrimitives.WriteInt32LittleEndian(header[8..], message);
        writer.Advance(HeaderBytes);
        writer.Write(Payload(client, message, payloadBytes));
    }

    /// <summary>Takes the first whole frame off the front of <paramref name="buffer"/>, if there is one.</summary>
    /// <returns>False while the first frame is incomplete (<paramref name="buffer"/> is left as it was).</returns>
    /// <exception cref="InvalidDataException">The header announces a payload outside 0..<see cref="MaxPayloadBytes"/>.</exception>
    public static bool TryTake(ref ReadOnlySequence<byte> buffer, out ReadOnlySequence<byte> frame)
    {
        frame = default;
        if (!TryReadHeader(buffer, out Header header)) return false;
        long frameBytes = HeaderBytes + (long)header.PayloadBytes;
        if (buffer.Length < frameBytes) return false;
        frame = buffer.Slice(0, frameBytes);
        buffer = buffer.Slice(frame.End);
        return true;
    }

    /// <summary>Checks that <paramref name="frame"/> is exactly message <paramref name="message"/> of
    /// client <paramref name="client"/>, <paramref name="payloadBytes"/> long: its header, then every
    /// byte of its payload.</summary>
    /// <exception cref="InvalidDataException">Anything differs; the message names the first difference.</exception>
    public static void Verify(in ReadOnlySequence<byte> frame, int client, int message, int payloadBytes)
    {
        if (!TryReadHeader(frame, out Header header) || header != new Header(payloadBytes, client, message))
            throw new InvalidDataException($"client {client}, message {message}: the echo's header is {Describe(frame)}, expected {new Header(payloadBytes, client, message)}");
        if (frame.Length != HeaderBytes + (long)payloadBytes)
            throw new InvalidDataException($"client {client}, message {message}: the echo is {frame.Length} bytes, expected {HeaderBytes + (long)payloadBytes}");
        ReadOnlySpan<byte> expected = Payload(client, message, payloadBytes);
        int offset = 0;
        foreach (ReadOnlyMemory<byte> segment in frame.Slice(HeaderBytes))
        {
            ReadOnlySpan<byte> actual = segment.Span;
            ReadOnlySpan<byte> wanted = expected.Slice(offset, actual.Length);
            if (!actual.SequenceEqual(wanted))
            {
                int at = actual.CommonPrefixLength(wanted);
                throw new InvalidDataException(
                    $"client {client}, message {message} ({payloadBytes} bytes): payload byte {offset + at} is 0x{actual[at]:x2}, expected 0x{wanted[at]:x2}");
            }
            offset += actual.Length;
        }
    }

    private static bool TryReadHeader(in ReadOnlySequence<byte> buffer, out Header header)
    {
        header = default;
        var reader = new SequenceReader<byte>(buffer);
        if (!reader.TryReadLittleEndian(out int payloadBytes) || !reader.TryReadLittleEndian(out int client)
            || !reader.TryReadLittleEndian(out int message)) return false;
        if ((uint)payloadBytes > MaxPayloadBytes)
            throw new InvalidDataException($"a frame header announces {payloadBytes} payload bytes (client {client}, message {message}); the most is {MaxPayloadBytes}");
        header = new Header(payloadBytes, client, message);
        return true;
    }

    private static string Describe(in ReadOnlySequence<byte> frame) =>
        frame.Length < HeaderBytes ? $"cut short ({frame.Length} bytes)" : TryReadHeader(frame, out Header h) ? h.ToString() : "unreadable";

    /// <summary>Where a message's window starts: the two numbers mixed (a multiply and an xor-shift),
    /// the top 20 bits taken, so the offset is below <see cref="MaxPayloadBytes"/>.</summary>
    private static int PayloadOffset(int client, int message)
    {
        ulong h = (((ulong)(uint)client << 32) | (uint)message) * 0x9E3779B97F4A7C15UL;
        h ^= h >> 31;
        h *= 0xBF58476D1CE4E5B9UL;
        return (int)(h >> (64 - 20));
    }

    private static byte[] MakePattern()
    {
        var pattern = new byte[2 * MaxPayloadBytes];
        new Random(PatternSeed).NextBytes(pattern);
        return pattern;
    }
}
