using System.Numerics;

namespace SlabAlloc.Interprocess;

/// <summary>
/// The block sizes of a shared heap: 64, 128, 192 and 256 bytes, then four sizes per doubling (a quarter
/// apart: 320, 384, 448, 512, 640, ...), up to the slab size. Every size is a multiple of the 64-byte unit,
/// so every block starts on a unit and is named by its unit index.
/// </summary>
/// <remarks>The sizes are a function of the slab size alone; an opener recomputes them instead of trusting
/// the region, so a lying size in shared memory cannot make a block overlap its neighbour.</remarks>
internal static class SharedSizeClasses
{
    /// <summary>The unit that blocks are measured and named in.</summary>
    public const int UnitBytes = 64;
    public const int UnitShift = 6;

    /// <summary>The class of a request of <paramref name="bytes"/> (1 to the slab size).</summary>
    public static int ClassOf(nuint bytes)
    {
        if (bytes <= 256) return (int)((bytes + UnitBytes - 1) >> UnitShift) - 1;
        int log = BitOperations.Log2(bytes - 1); // 2^log < bytes <= 2^(log+1)
        nuint quarter = (nuint)1 << (log - 2);
        int step = (int)((bytes - ((nuint)1 << log) + quarter - 1) >> (log - 2)); // 1 to 4
        return 4 + (log - 8) * 4 + step - 1;
    }

    /// <summary>The block size of class <paramref name="classIndex"/>.</summary>
    public static nuint BlockBytes(int classIndex)
    {
        if (classIndex < 4) return (nuint)(classIndex + 1) * UnitBytes;
        int log = 8 + (classIndex - 4) / 4;
        int step = (classIndex - 4) % 4 + 1;
        return ((nuint)1 << log) + (nuint)step * ((nuint)1 << (log - 2));
    }

    /// <summary>How many classes a slab of <paramref name="slabBytes"/> (a power of two) holds: the last one
    /// is the slab size itself.</summary>
    public static int CountFor(nuint slabBytes) => ClassOf(slabBytes) + 1;
}
