namespace SlabAlloc.Testing;

/// <summary>
/// The block stamp of the soak (tools/SlabAlloc.Soak) and of the stress tests (tests/SlabAlloc.Tests,
/// Stress): a 16-byte header (the block's id; its size and alignment) and then a pattern derived from
/// the id and the offset, so a block handed out twice, written by its neighbour or moved wrongly by a
/// realloc fails its check. Blocks up to 4 KiB are covered whole; larger ones get one word in every
/// 64 bytes plus their last 64 bytes: an eighth of the stores of a whole stamp, yet no 57 bytes in a
/// row go unchecked, so another block that overlaps it by 57 bytes or more is caught wherever it lies
/// (a checked byte every 61 bytes, the tests' former stamp, needed 61), and so is a wrongly shared or
/// unmapped page.
/// </summary>
/// <remarks>
/// The pattern is written in 8-byte words rather than bytes because the soak stamps every block it
/// allocates: byte stores would make stamping most of the run's work. Each project that uses it compiles
/// this file (a linked source file): one class does not warrant a library of its own, and as source it
/// stays internal to each assembly.
/// </remarks>
internal static unsafe class BlockStamp
{
    /// <summary>The smallest block that can be stamped: the header must fit.</summary>
    public const nuint MinSize = 16;
    /// <summary>The largest block that can be stamped; a header claiming more was overwritten.</summary>
    public const nuint MaxSize = 4 * 1024 * 1024;
    /// <summary>The alignment every block has (16 bytes), recorded for blocks not allocated aligned.</summary>
    public const int BaseAlignmentLog = 4;
    /// <summary>Alignments above 16 bytes are recorded so a block's alignment is checked wherever it travels.</summary>
    public const int MaxAlignmentLog = 20;

    private const nuint WholeLimit = 4096;
    private const nuint SparseStep = 64;
    private const int AlignmentShift = 56;

    public readonly record struct Header(long Id, nuint Size, int AlignmentLog);

    /// <summary>Stamps a block of <paramref name="size"/> bytes, aligned to 2^<paramref name="alignmentLog"/>.
    /// <paramref name="id"/> must be unique among live blocks; an id whose high half is set names the
    /// thread that wrote it (the soak numbers its blocks that way), and a failed check reports that thread.</summary>
    public static void Write(void* block, nuint size, int alignmentLog, long id)
    {
        var p = (byte*)block;
        ((long*)p)[0] = id;
        ((ulong*)p)[1] = size | ((ulong)alignmentLog << AlignmentShift);
        ulong seed = Seed(id);
        nuint tail = TailStart(size);
        for (nuint o = 16; o + 8 <= tail; o += Step(size)) *(ulong*)(p + o) = Word(seed, o);
        for (nuint o = tail; o < size; o++) p[o] = (byte)Word(seed, o);
    }

    /// <summary>Checks the whole stamp (and the alignment it records) and returns the header; throws on any mismatch.</summary>
    public static Header Verify(void* block) => VerifyPrefix(block, nuint.MaxValue);

    /// <summary>Checks the stamp's bytes below <paramref name="limit"/>: what a realloc must have kept.</summary>
    public static Header VerifyPrefix(void* block, nuint limit)
    {
        var p = (byte*)block;
        Header h = ReadHeader(block);
        ulong seed = Seed(h.Id);
        nuint end = Math.Min(h.Size, limit);
        nuint tail = TailStart(h.Size);
        for (nuint o = 16; o + 8 <= tail && o + 8 <= end; o += Step(h.Size))
        {
            // The first differing byte of the word (little-endian, as on every platform .NET runs SlabAlloc on).
            ulong difference = *(ulong*)(p + o) ^ Word(seed, o);
            if (difference != 0) Fail(block, h, o + (nuint)(System.Numerics.BitOperations.TrailingZeroCount(difference) / 8));
        }
        for (nuint o = tail; o < end; o++)
            if (p[o] != (byte)Word(seed, o)) Fail(block, h, o);
        return h;
    }

    private static Header ReadHeader(void* block)
    {
        var p = (byte*)block;
        long id = ((long*)p)[0];
        ulong word = ((ulong*)p)[1];
        var size = (nuint)(word & ((1UL << AlignmentShift) - 1));
        int alignmentLog = (int)(word >> AlignmentShift);
        if (size < MinSize || size > MaxSize || alignmentLog > MaxAlignmentLog)
            throw new InvalidOperationException($"stamp mismatch: block 0x{(nuint)block:x}: header overwritten (id {id}, size word 0x{word:x})");
        if (((nuint)block & (((nuint)1 << alignmentLog) - 1)) != 0)
            throw new InvalidOperationException($"block 0x{(nuint)block:x} (id {id}) is not aligned to {1 << alignmentLog} bytes");
        return new Header(id, size, alignmentLog);
    }

    private static void Fail(void* block, Header h, nuint offset) =>
        throw new InvalidOperationException(
            $"stamp mismatch: block 0x{(nuint)block:x} (id {h.Id}{Writer(h.Id)}, {h.Size} bytes, aligned {1 << h.AlignmentLog}): byte {offset} overwritten");

    private static string Writer(long id) => id >> 32 != 0 ? $", worker {id >> 32}" : "";

    private static nuint Step(nuint size) => size <= WholeLimit ? 8 : SparseStep;

    /// <summary>Where the byte-wise tail starts: after the last whole word of a small block, or the last
    /// 64 bytes of a large one. Words stop before it, so no byte is stamped twice.</summary>
    private static nuint TailStart(nuint size) => size <= WholeLimit ? Math.Max(16, size & ~(nuint)7) : size - 64;

    private static ulong Seed(long id) => ((ulong)id + 1) * 0x9E3779B97F4A7C15UL;

    private static ulong Word(ulong seed, nuint offset) => seed ^ ((ulong)offset * 0x100000001B3UL);
}
