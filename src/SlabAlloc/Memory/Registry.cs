using System.Runtime.CompilerServices;
using SlabAlloc.Platform;

namespace SlabAlloc.Memory;

/// <summary>
/// Tells, for any address, whether SlabAlloc owns the 4 MiB granule it lies in, and what is there.
/// </summary>
/// <remarks>
/// <para>A two-level radix map over the 47-bit user address space, one 32-bit value per 4 MiB
/// granule: a top table of 4096 leaf pointers, reserved at start-up, and leaves of 8192 values
/// (32 KiB) mapped on first use and installed by CAS (the loser returns its leaf), so growth takes
/// no lock. Leaves are never freed; a retired granule's value goes back to 0.</para>
/// <para>Values: 0 = not SlabAlloc's; <see cref="SuperslabValue"/> = a superslab starts here
/// (its header is at the granule's base); an even value 2(r+1) = part of the large block whose record
/// (in a table that is never unmapped) is r.</para>
/// <para>A value is written before the memory it describes is handed out, and cleared before the
/// memory is given back. A lookup racing with a clear concerns a pointer the caller no longer owns (a
/// use after free or a double free); what it leads to is safe to read either way: a superslab's range is
/// never unmapped, and a large block is validated from its record, never from its memory.</para>
/// <para><b>Superslab bits.</b> Beside the map, one bit per granule says "a superslab starts here",
/// in a flat bitmap over the whole 47-bit space (4 MiB of address space, huge pages refused, of which
/// only the pages holding set bits are ever touched: one page per 128 GiB of address space in use).
/// <c>Free</c> tests the bit (one load) instead of the two dependent loads of the radix map. The bit
/// is set after the value and cleared before it, by atomic OR / AND (neighbouring granules share a
/// word); clearing an already clear bit writes nothing. Where address space cannot be reserved
/// without committing it (the portable platform layer) there is no bitmap and the radix map answers.</para>
/// </remarks>
internal static unsafe class Registry
{
    public const uint SuperslabValue = 1;
    private const int GranuleShift = Geometry.SuperslabShift;
    private const int LeafBits = 13;
    private const int TopBits = Geometry.AddressBits - GranuleShift - LeafBits;
    private const int LeafEntries = 1 << LeafBits;

    private static readonly uint** s_top = ReserveTop();

    private const int BitWordShift = GranuleShift + 6;                       // 64 granules per word
    private const nuint BitWords = (nuint)1 << (Geometry.AddressBits - BitWordShift);
    /// <summary>The bitmap, or null where address space cannot be reserved without committing it
    /// (the portable platform layer): there <see cref="IsSuperslab"/> asks the radix map.</summary>
    private static readonly ulong* s_superslabBits = ReserveBitmap();
    private static readonly int[] s_bitmapPageTouched = new int[(int)((BitWords * sizeof(ulong) + OsMemory.PageBytes - 1) / OsMemory.PageBytes)];

    /// <summary>True if a superslab starts at the granule of <paramref name="p"/> (its header is at
    /// <c>p &amp; ~(4 MiB − 1)</c>). One load; false for null and for addresses above 47 bits.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool IsSuperslab(void* p)
    {
        if (s_superslabBits == null) return Lookup(p) == SuperslabValue;
        nuint word = (nuint)p >> BitWordShift;
        if (word >= BitWords) return false;
        return ((s_superslabBits[word] >> (int)(((nuint)p >> GranuleShift) & 63)) & 1) != 0;
    }
    private static int s_leafCount;

    /// <summary>Bytes of registry memory mapped (top table plus leaves).</summary>
    public static long MappedBytes => (long)Volatile.Read(ref s_leafCount) * LeafEntries * sizeof(uint) + (1L << TopBits) * sizeof(nint);

    /// <summary>The value for the granule of <paramref name="p"/>; 0 when SlabAlloc does not own it.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint Lookup(void* p)
    {
        nuint a = (nuint)p;
        if ((a >> Geometry.AddressBits) != 0) return 0;
        uint* leaf = s_top[a >> (GranuleShift + LeafBits)];
        if (leaf == null) return 0;
        return leaf[(a >> GranuleShift) & (LeafEntries - 1)];
    }

    /// <summary>Value of every granule of the large block whose record is <paramref name="recordIndex"/>.</summary>
    public static uint LargeValue(uint recordIndex) => (recordIndex + 1) << 1;

    /// <summary>The large-block record index that <paramref name="value"/> (even, non-zero) names.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint LargeRecordIndex(uint value) => (value >> 1) - 1;

    /// <summary>Records <paramref name="value"/> for the granule at <paramref name="granule"/>. False when out of memory.</summary>
    public static bool TrySet(nuint granule, uint value)
    {
        uint* leaf = EnsureLeaf(granule);
        if (leaf == null) return false;
        Volatile.Write(ref leaf[(granule >> GranuleShift) & (LeafEntries - 1)], value);
        if (value == SuperslabValue) SetSuperslabBit(granule);
        return true;
    }

    /// <summary>Forgets the granule at <paramref name="granule"/>.</summary>
    public static void Clear(nuint granule)
    {
        ClearSuperslabBit(granule);
        uint* leaf = s_top[granule >> (GranuleShift + LeafBits)];
        if (leaf != null) Volatile.Write(ref leaf[(granule >> GranuleShift) & (LeafEntries - 1)], 0u);
    }

    private static void SetSuperslabBit(nuint granule)
    {
        if (s_superslabBits == null) return;
        nuint word = granule >> BitWordShift;
        // Other granules of the word may change at the same time: an atomic OR loses none of them.
        Interlocked.Or(ref *(long*)&s_superslabBits[word], 1L << (int)((granule >> GranuleShift) & 63));
        // The first bit in a page of the bitmap makes that page resident: count it as mapped.
        if (Interlocked.Exchange(ref s_bitmapPageTouched[(int)(word * sizeof(ulong) / OsMemory.PageBytes)], 1) == 0)
            OsMemory.CountTouched((long)OsMemory.PageBytes);
    }

    private static void ClearSuperslabBit(nuint granule)
    {
        if (s_superslabBits == null) return;
        nuint word = granule >> BitWordShift;
        if (word >= BitWords) return;
        long bit = 1L << (int)((granule >> GranuleShift) & 63);
        // Only a superslab's granule has its bit set (and only MapNew sets it, never while a large block
        // holds the granule), so a clear bit stays clear: skip the write. Large blocks clear their
        // granules all the time, and an atomic AND would dirty the cache line every Free reads, and
        // touch bitmap pages that were never counted.
        if ((Volatile.Read(ref *(long*)&s_superslabBits[word]) & bit) == 0) return;
        Interlocked.And(ref *(long*)&s_superslabBits[word], ~bit);
    }

    private static uint* EnsureLeaf(nuint granule)
    {
        nuint top = granule >> (GranuleShift + LeafBits);
        if (top >= (1u << TopBits)) return null;
        uint* leaf = (uint*)Volatile.Read(ref *(nint*)&s_top[top]);
        if (leaf != null) return leaf;
        var fresh = (uint*)OsMemory.Reserve((nuint)(LeafEntries * sizeof(uint)), OsMemory.PageBytes);
        if (fresh == null) return null;
        // Loses to another thread installing this leaf at the same time; the cell goes from null to a leaf
        // once and never back, so there is no ABA.
        nint raced = Interlocked.CompareExchange(ref *(nint*)&s_top[top], (nint)fresh, 0);
        if (raced == 0) { Interlocked.Increment(ref s_leafCount); return fresh; }
        OsMemory.Release(fresh, (nuint)(LeafEntries * sizeof(uint))); // lost the install race
        return (uint*)raced;
    }

    private static ulong* ReserveBitmap() =>
        // Null where it cannot be reserved lazily, or when the system refuses: the radix map answers then.
        (ulong*)OsMemory.ReserveAddressSpace(BitWords * sizeof(ulong));

    private static uint** ReserveTop()
    {
        void* top = OsMemory.Reserve(OsMemory.RoundUpToPages((nuint)((1 << TopBits) * sizeof(nint))), OsMemory.PageBytes);
        if (top == null) throw new OutOfMemoryException("SlabAlloc could not reserve its address registry.");
        return (uint**)top;
    }
}
