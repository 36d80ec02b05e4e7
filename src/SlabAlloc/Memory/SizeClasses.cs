using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace SlabAlloc.Memory;

/// <summary>
/// Maps request sizes to size classes and back.
/// </summary>
/// <remarks>
/// Classes 0..7 are exact 16-byte steps from 16 B to 128 B. Above that there are four classes per
/// power of two (160, 192, 224, 256, 320, ..., 1 KiB, 1280, ..., 64 KiB): at most 25% and on average
/// about 12% rounding waste. Requests above <see cref="MaxBlockBytes"/> take the large-object path.
/// Few classes keep a thread's partly used slabs few (each class has one per thread), which is
/// most of what a thread cache holds beyond its live blocks.
/// </remarks>
internal static class SizeClasses
{
    public const int Count = 44;
    /// <summary>Classes of exact 16-byte steps (16..128 B).</summary>
    public const int ExactCount = 8;
    private const int ExactLimitLog2 = 7; // 128 B
    /// <summary>Requests up to this size map through the fast path's table.</summary>
    public const nuint SmallLimitBytes = 1024;
    public const nuint MaxBlockBytes = 64 * 1024;

    /// <summary>Class of a size in 1..1024, indexed by <c>(size - 1) / 16</c>: the fast path's one load.</summary>
    private static ReadOnlySpan<byte> SmallClassTable =>
    [
        0, 1, 2, 3, 4, 5, 6, 7,                 //    1 ..  128: exact
        8, 8, 9, 9, 10, 10, 11, 11,             //  129 ..  256: 160, 192, 224, 256
        12, 12, 12, 12, 13, 13, 13, 13,         //  257 ..  384: 320, 384
        14, 14, 14, 14, 15, 15, 15, 15,         //  385 ..  512: 448, 512
        16, 16, 16, 16, 16, 16, 16, 16,         //  513 ..  640
        17, 17, 17, 17, 17, 17, 17, 17,         //  641 ..  768
        18, 18, 18, 18, 18, 18, 18, 18,         //  769 ..  896
        19, 19, 19, 19, 19, 19, 19, 19,         //  897 .. 1024
    ];

    /// <summary>Class of a size in 1..<see cref="SmallLimitBytes"/>, given <c>size - 1</c>: the fast path's
    /// mapping, one load from a 64-byte table with no bounds check.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int SmallClassOfSizeMinusOne(nuint sizeMinusOne) =>
        Unsafe.Add(ref MemoryMarshal.GetReference(SmallClassTable), (nint)(sizeMinusOne >> 4));

    /// <summary>Class of any size in 0..<see cref="MaxBlockBytes"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int ClassOf(nuint size)
    {
        if (size <= (nuint)1 << ExactLimitLog2) return size == 0 ? 0 : (int)((size - 1) >> 4);
        nuint s1 = size - 1;
        int log2 = BitOperations.Log2(s1);          // 7..15
        int quarter = (int)(s1 >> (log2 - 2));      // 4..7
        return ExactCount + (log2 - ExactLimitLog2) * 4 + (quarter - 4);
    }

    /// <summary>Block size of a class, in bytes.</summary>
    public static int BlockBytes(int sizeClass)
    {
        if (sizeClass < ExactCount) return (sizeClass + 1) << 4;
        int c = sizeClass - ExactCount;
        int log2 = ExactLimitLog2 + (c >> 2);
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
