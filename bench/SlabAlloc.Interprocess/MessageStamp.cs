using System.Buffers.Binary;

namespace SlabAlloc.Interprocess;

/// <summary>
/// The content of every message: seeded bytes, with the message's number in its first 8 bytes and a function
/// of it in its last 8, so that a stale, torn or misrouted message fails even the cheap check of its two ends.
/// </summary>
internal static class MessageStamp
{
    public const int Seed = 4141;
    /// <summary>Messages must hold both stamps.</summary>
    public const int MinBytes = 16;
    private const ulong TailKey = 0x9E3779B97F4A7C15;

    public static void Fill(Span<byte> message) => new Random(Seed).NextBytes(message);

    public static void Stamp(Span<byte> message, long number)
    {
        BinaryPrimitives.WriteInt64LittleEndian(message, number);
        BinaryPrimitives.WriteUInt64LittleEndian(message[^8..], (ulong)number * TailKey);
    }

    public static bool EndsMatch(ReadOnlySpan<byte> message, long number) =>
        BinaryPrimitives.ReadInt64LittleEndian(message) == number
        && BinaryPrimitives.ReadUInt64LittleEndian(message[^8..]) == (ulong)number * TailKey;
}
