namespace SlabAlloc.Shared;

/// <summary>
/// The messages the shared heap's tests send between processes: an 8-byte id, then bytes that depend on the id
/// and their position, so that a torn, foreign or twice-delivered message shows.
/// </summary>
internal static class SharedMessage
{
    /// <summary>The smallest message: the id alone.</summary>
    public const int MinBytes = 8;

    public static void Write(Span<byte> message, long id)
    {
        BitConverter.TryWriteBytes(message, id);
        for (int i = MinBytes; i < message.Length; i++) message[i] = (byte)(id * 31 + i * 7 + (i >> 8));
    }

    /// <summary>The message's id, or a description of what is wrong with it.</summary>
    public static long Read(ReadOnlySpan<byte> message, out string? problem)
    {
        problem = null;
        if (message.Length < MinBytes)
        {
            problem = $"a message of {message.Length} bytes";
            return -1;
        }
        long id = BitConverter.ToInt64(message);
        for (int i = MinBytes; i < message.Length; i++)
        {
            if (message[i] == (byte)(id * 31 + i * 7 + (i >> 8))) continue;
            problem = $"message {id} of {message.Length} bytes: byte {i} is {message[i]}";
            break;
        }
        return id;
    }
}
