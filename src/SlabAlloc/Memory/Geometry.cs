namespace SlabAlloc.Memory;

/// <summary>
/// The fixed shapes of SlabAlloc's memory. See docs/architecture.md for the vocabulary.
/// </summary>
/// <remarks>
/// A <b>superslab</b> is a 4 MiB region aligned to 4 MiB, cut into 64 <b>slots</b> of 64 KiB.
/// Slot 0 holds the <see cref="SuperslabHeader"/>; slots 1..63 hold <b>slabs</b>. A small slab
/// spans one slot; a medium slab (blocks above 8 KiB) spans an aligned run of
/// <see cref="MediumSpanSlots"/> slots, so that it holds several blocks of up to 64 KiB.
/// Every slab starts on a 64 KiB boundary, so a block whose size is a multiple of a power of two
/// up to 64 KiB is aligned to that power of two.
/// </remarks>
internal static class Geometry
{
    public const int SuperslabShift = 22;
    public const nuint SuperslabBytes = (nuint)1 << SuperslabShift;
    public const nuint SuperslabMask = SuperslabBytes - 1;

    public const int SlotShift = 16;
    public const nuint SlotBytes = (nuint)1 << SlotShift;
    public const int SlotsPerSuperslab = 64;

    /// <summary>Slots per slab for classes whose blocks are larger than <see cref="SmallSlabMaxBlockBytes"/>.</summary>
    public const int MediumSpanSlots = 8;

    /// <summary>The largest block size served from a one-slot slab (at least 8 blocks per slab).</summary>
    public const int SmallSlabMaxBlockBytes = 8 * 1024;

    /// <summary>Bit set in a superslab's free-slot mask for every slot that can be claimed: all but slot 0.</summary>
    public const ulong AllSlotsFree = ~1UL;

    /// <summary>The largest request SlabAlloc accepts: 2^46 bytes, far beyond any real mapping.</summary>
    public const ulong MaxRequestBytes = 1UL << 46;

    /// <summary>A slab's global index: its superslab's directory index and its first slot, in one number
    /// that the pool's stacks hold.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    public static uint GlobalIndex(uint superslabIndex, int slot) => superslabIndex * SlotsPerSuperslab + (uint)slot;

    /// <summary>The directory index of the superslab that holds the slab of <paramref name="globalIndex"/>.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    public static uint SuperslabIndexOf(uint globalIndex) => globalIndex / SlotsPerSuperslab;

    /// <summary>The first slot of the slab of <paramref name="globalIndex"/> in its superslab.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    public static int SlotOf(uint globalIndex) => (int)(globalIndex % SlotsPerSuperslab);

    /// <summary>User addresses on x86-64 and arm64 Linux lie below 2^47; the registry covers exactly that.</summary>
    public const int AddressBits = 47;
}
