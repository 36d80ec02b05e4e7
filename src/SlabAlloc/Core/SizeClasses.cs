using System.Numerics;
using System.Runtime.CompilerServices;

namespace SlabAlloc.Core;

/// <summary>
/// Maps request sizes to size classes and back.
/// </summary>
/// <remarks>
/// Classes 0..63 are exact 16-byte steps from 16 B to 1 KiB (no waste beyond rounding to 16,
/// which every allocation needs for alignment). Classes 64..87 are four per power of two from
/// 1 KiB to 64 KiB (1280, 1536, 1792, 2048, 2560, ...), at most 25% and on average about 12%
/// rounding waste. Requests above <see cref="MaxBlockBytes"/> take the large-object path.
/// </remarks>
internal static class SizeClasses
{
    public const int Count = 88;
    public const int FineCount = 64;
    public const nuint FineLimitBytes = 1024;
    public const nuint MaxBlockBytes = 64 * 1024;

    /// <summary>Class of a size in 1..1024: the fast path's one-shift mapping.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int FineClassOfSizeMinusOne(nuint sizeMinusOne) => (int)(sizeMinusOne >> 4);

    /// <summary>Class of any size in 0..<see cref="MaxBlockBytes"/>.</summary>
    public static int ClassOf(nuint size)
    {
        if (size <= FineLimitBytes) return size == 0 ? 0 : FineClassOfSizeMinusOne(size - 1);
        nuint s1 = size - 1;
        int log2 = BitOperations.Log2(s1);          // 10..15
        int quarter = (int)(s1 >> (log2 - 2));      // 4..7
        return FineCount + (log2 - 10) * 4 + (quarter - 4);
    }

    /// <summary>Block size of a class, in bytes.</summary>
    public static int BlockBytes(int sizeClass)
    {
        if (sizeClass < FineCount) return (sizeClass + 1) << 4;
        int c = sizeClass - FineCount;
        int log2 = 10 + (c >> 2);
        int quarter = 4 + (c & 3);
        return (quarter + 1) << (log2 - 2);
    }

    /// <summary>Slots spanned by one slab of this class.</summary>
    public static int SpanSlots(int sizeClass) =>
        BlockBytes(sizeClass) > Geometry.SmallSlabMaxBlockBytes ? Geometry.MediumSpanSlots : 1;

    /// <summary>Blocks per slab of this class.</summary>
    public static int Capacity(int sizeClass) =>
        (int)((nuint)SpanSlots(sizeClass) * Geometry.SlotBytes / (nuint)BlockBytes(sizeClass));

    /// <summary>
    /// The smallest class that holds <paramref name="size"/> bytes and whose blocks are all aligned
    /// to <paramref name="alignment"/> (block size a multiple of it; slabs start on 64 KiB), or -1.
    /// </summary>
    public static int ClassForAligned(nuint size, nuint alignment)
    {
        if (alignment > Geometry.SlotBytes || size > MaxBlockBytes) return -1;
        for (int c = ClassOf(size); c < Count; c++)
            if (((nuint)BlockBytes(c) & (alignment - 1)) == 0) return c;
        return -1;
    }
}
