namespace SlabAlloc.Tests.Interprocess;

/// <summary>Seeded contents for shared blocks: every byte depends on the block's id and position, so a byte
/// written by the wrong process, or a block handed out twice, shows.</summary>
internal static class Stamp
{
    public static void Write(Span<byte> bytes, long id)
    {
        for (int i = 0; i < bytes.Length; i++) bytes[i] = (byte)(id * 31 + i * 7 + (i >> 8));
    }

    /// <summary>The index of the first byte that differs, or -1.</summary>
    public static int FirstMismatch(ReadOnlySpan<byte> bytes, long id)
    {
        for (int i = 0; i < bytes.Length; i++)
            if (bytes[i] != (byte)(id * 31 + i * 7 + (i >> 8))) return i;
        return -1;
    }
}
