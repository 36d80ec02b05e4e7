using System.Runtime.CompilerServices;
using SlabAlloc.Platform;

namespace SlabAlloc.Memory;

/// <summary>
/// One range of address space, reserved at start-up, that new superslabs are cut from in order, so that
/// "could a superslab start at this pointer's 4 MiB granule?" is a subtraction and a comparison with
/// constants instead of a load from the registry.
/// </summary>
/// <remarks>
/// <para>The whole range is mapped readable (untouched pages read as zeroes and take no memory; a superslab
/// cut from it is made writable then), and no part of it is ever unmapped: a superslab cut from it keeps its
/// addresses when it retires, like any superslab (<see cref="Superslabs"/>), and the part not cut yet reads
/// as zeroes. So any pointer inside the range may have its superslab header read: a header of zeroes
/// names no slab, and validation rejects the pointer.</para>
/// <para>Cutting is a bump of <see cref="s_cut"/> by CAS; the arena never gives a range back (retired
/// superslabs keep theirs, on the kept-ranges stack). When it is used up, or where it cannot be reserved
/// (the portable platform layer, a system that refuses the reservation), superslabs are mapped one by one
/// as before and validated through the registry.</para>
/// </remarks>
internal static unsafe class SuperslabArena
{
    /// <summary>Address space reserved for superslabs: 16,384 of them.</summary>
    private const ulong ReservedBytes = 64UL << 30;

    /// <summary>The first superslab's address (4 MiB aligned); 0 when there is no arena.</summary>
    private static readonly nuint s_base = ReserveBase();

    /// <summary>Bytes of the arena; 0 when there is none, so that <see cref="Contains"/> is false for every pointer.</summary>
    private static readonly nuint s_bytes = s_base == 0 ? 0 : unchecked((nuint)ReservedBytes);

    /// <summary>Bytes cut into superslabs so far.</summary>
    private static long s_cut;

    private static nuint ReserveBase()
    {
        // Over-reserved by one superslab so that a 4 MiB aligned range of the full size fits; the slack stays
        // mapped and unused. Read-only until cut, so that nothing is charged for it.
        var raw = (nuint)OsMemory.ReserveReadOnly(unchecked((nuint)ReservedBytes) + Geometry.SuperslabBytes);
        return raw == 0 ? 0 : (raw + Geometry.SuperslabMask) & ~Geometry.SuperslabMask;
    }

    /// <summary>True if <paramref name="p"/> lies in the arena, whose every superslab header is readable.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool Contains(void* p) => (nuint)p - s_base < s_bytes;

    /// <summary>The arena's first address, its size and the bytes cut from it so far (all 0 when there is none).</summary>
    public static (nuint Base, nuint Bytes, nuint Cut) Range => (s_base, s_bytes, (nuint)Volatile.Read(ref s_cut));

    /// <summary>True when no range is left to cut (or there is no arena).</summary>
    public static bool IsUsedUp => (nuint)Volatile.Read(ref s_cut) + Geometry.SuperslabBytes > s_bytes;

    /// <summary>Marks the whole arena as cut, so that every new superslab is mapped on its own from now on.
    /// For tests of that path; nothing else calls it.</summary>
    public static void UseUp() => Volatile.Write(ref s_cut, (long)s_bytes);

    /// <summary>The next superslab-sized range of the arena, made writable, not counted as mapped (the caller
    /// counts it); null when the arena is used up, there is none, or the system refuses to make the range
    /// writable (the range stays readable zeroes, never used).</summary>
    public static byte* TryCut()
    {
        while (true)
        {
            long cut = Volatile.Read(ref s_cut);
            if ((nuint)cut + Geometry.SuperslabBytes > s_bytes) return null;
            // Loses only to another cut; the offset only grows, so there is no ABA.
            if (Interlocked.CompareExchange(ref s_cut, cut + (long)Geometry.SuperslabBytes, cut) != cut) continue;
            var region = (byte*)(s_base + (nuint)cut);
            return OsMemory.TryMakeWritable(region, Geometry.SuperslabBytes) ? region : null;
        }
    }
}
