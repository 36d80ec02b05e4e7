using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace SlabAlloc.Core;

/// <summary>
/// The first slot of every superslab: found from any block address by masking, it maps each slot to
/// the metadata of the slab that covers it.
/// </summary>
/// <remarks>
/// <see cref="SlabOfSlot"/>[i] is the slab covering slot i, or null for slot 0 and unused slots.
/// It is written by the pool while it holds the slab exclusively (when formatting and releasing),
/// and read by any thread freeing a block of that slab, which can only happen between those two
/// writes (a block is handed out after formatting and returned before release).
/// Checked mode keeps one bit per block from <see cref="CheckedBitsOffset"/> on, 512 bytes per slot;
/// those pages are never touched otherwise.
/// </remarks>
[StructLayout(LayoutKind.Explicit)]
internal unsafe struct SuperslabHeader
{
    public const ulong MagicValue = 0x534C_4142_5353_4C42; // "SLABSSLB"
    public const int CheckedBitsOffset = 4096;
    public const int CheckedBytesPerSlot = 512;

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

    /// <summary>The checked-mode bitmap of slot <paramref name="slot"/>.</summary>
    public static ulong* CheckedBits(SuperslabHeader* h, int slot) =>
        (ulong*)((byte*)h + CheckedBitsOffset + slot * CheckedBytesPerSlot);
}
