namespace SlabAlloc.Tests.Stress;

/// <summary>
/// Writes and checks a pattern unique to each allocation: a 16-byte header (id, size) at the start,
/// then bytes derived from the id. Blocks up to 4 KiB are stamped whole; larger ones every 61st
/// byte plus their last 64 bytes, so a large block costs little but any overlap is still caught.
/// </summary>
internal static unsafe class BlockStamp
{
    public static void Write(void* block, nuint size, long id)
    {
        var p = (byte*)block;
        ((long*)p)[0] = id;
        ((long*)p)[1] = (long)size;
        foreach (nuint i in Offsets(size)) p[i] = Pattern(id, i);
    }

    /// <summary>Checks the stamp and returns the id; throws on any mismatch.</summary>
    public static long Verify(void* block)
    {
        var p = (byte*)block;
        long id = ((long*)p)[0];
        nuint size = (nuint)((long*)p)[1];
        if (size > 64 * 1024 * 1024) throw new InvalidOperationException($"block 0x{(nuint)block:x}: header overwritten (size {size})");
        foreach (nuint i in Offsets(size))
            if (p[i] != Pattern(id, i))
                throw new InvalidOperationException($"block 0x{(nuint)block:x} (id {id}, {size} bytes): byte {i} overwritten");
        return id;
    }

    private static byte Pattern(long id, nuint i) => (byte)(id * 31 + (long)i * 7 + 1);

    private static IEnumerable<nuint> Offsets(nuint size)
    {
        nuint step = size <= 4096 ? 1u : 61u;
        for (nuint i = 16; i < size; i += step) yield return i;
        if (size > 4096)
            for (nuint i = size - 64; i < size; i++) yield return i;
    }
}
