using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using SlabAlloc.Support;

namespace SlabAlloc.Memory;

/// <summary>
/// The first slot of every superslab: found from any block address by masking, it maps each slot to
/// the metadata of the slab that covers it.
/// </summary>
/// <remarks>
/// <see cref="SlabOfSlot"/>[i] is the slab covering slot i, or null for slot 0 and unused slots.
/// It is written by the pool while it holds the slab exclusively (when formatting and releasing),
/// and read by any thread validating a pointer into the slot.
/// Checked mode keeps one bit per 16 bytes of the superslab from <see cref="CheckedBitsOffset"/> on
/// (32 KiB), set while a block starting there is handed out. The bit is found from the address alone, not
/// from a slab's geometry, so a free racing with the re-formatting of its slab for another class (a stale
/// free) tests the bit of the address it names under the format that is there now: set only if a live
/// block of that format starts there. Those pages are never touched outside checked mode. A superslab's
/// address range is never unmapped (see <see cref="Superslabs"/>), so a stale reader of the table or the
/// bitmap reads mapped memory.
/// </remarks>
[StructLayout(LayoutKind.Explicit)]
internal unsafe struct SuperslabHeader
{
    public const ulong MagicValue = 0x534C_4142_5353_4C42; // "SLABSSLB"
    public const int CheckedBitsOffset = 4096;

    [FieldOffset(0)] public ulong Magic;
    [FieldOffset(8)] public uint DirectoryIndex;
    [FieldOffset(64)] public SlabTable SlabOfSlot;

    [InlineArray(Geometry.SlotsPerSuperslab)]
    public struct SlabTable { private nint _first; }

    /// <summary>The header of the superslab that contains <paramref name="p"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static SuperslabHeader* Of(void* p) => (SuperslabHeader*)((nuint)p & ~Geometry.SuperslabMask);

    /// <summary>The slab covering address <paramref name="p"/>, or null.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static SlabMeta* SlabOf(void* p)
    {
        // Plain address arithmetic: taking the address of the table field would make the JIT probe the
        // header's first cache line for null, a load on every Free that the table read does not need.
        nuint slot = ((nuint)p & Geometry.SuperslabMask) >> Geometry.SlotShift;
        return *(SlabMeta**)(((nuint)p & ~Geometry.SuperslabMask) + SlabTableOffset + slot * (nuint)sizeof(nint));
    }

    /// <summary>Offset of <see cref="SlabOfSlot"/> in the header.</summary>
    private const nuint SlabTableOffset = 64;

    /// <summary>Checked mode: the bitmap word and bit of the block starting at <paramref name="p"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong* CheckedWord(void* p, out ulong bit)
    {
        nuint granule = ((nuint)p & Geometry.SuperslabMask) >> 4;
        bit = 1UL << (int)(granule & 63);
        return (ulong*)(((nuint)p & ~Geometry.SuperslabMask) + CheckedBitsOffset) + (granule >> 6);
    }

    /// <summary>Checked mode: true if a block starting at <paramref name="p"/> is handed out.</summary>
    public static bool IsAllocated(void* p)
    {
        ulong* word = CheckedWord(p, out ulong bit);
        return (Volatile.Read(ref *word) & bit) != 0;
    }

    /// <summary>Checked mode: marks the block at <paramref name="p"/> handed out. Throws if it already was (corruption).</summary>
    public static void MarkAllocated(void* p)
    {
        ulong* word = CheckedWord(p, out ulong bit);
        if ((Interlocked.Or(ref *word, bit) & bit) != 0) ThrowHelper.ThrowCorruption("a free list handed out a block that is already in use");
    }

    /// <summary>Checked mode: marks the block at <paramref name="p"/> free. Throws <see cref="ArgumentException"/>,
    /// changing nothing, when no block starting there is handed out (a double free).</summary>
    public static void MarkFreed(void* p)
    {
        ulong* word = CheckedWord(p, out ulong bit);
        if ((Interlocked.And(ref *word, ~bit) & bit) == 0) ThrowHelper.ThrowDoubleFree(p);
    }

    /// <summary>Checked mode: clears the bits of the <paramref name="bytes"/> from <paramref name="start"/>
    /// (a slab being formatted, held exclusively).</summary>
    public static void ClearCheckedBits(byte* start, nuint bytes)
    {
        ulong* first = CheckedWord(start, out _);
        System.Runtime.InteropServices.NativeMemory.Clear(first, bytes >> 7); // one bit per 16 bytes
    }
}
