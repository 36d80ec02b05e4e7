using System.Runtime.InteropServices;
using SlabAlloc.Diagnostics;
using SlabAlloc.Platform;

namespace SlabAlloc.Core;

/// <summary>
/// Blocks above 64 KiB, or with an alignment no slab can give: each is its own mapping, with a
/// small cache of freed mappings so that a program that frees and allocates large blocks in a loop
/// does not pay an mmap/munmap pair each time.
/// </summary>
/// <remarks>
/// <para>A large region starts on a 4 MiB granule (or on its alignment, if larger) with a
/// <see cref="LargeHeader"/>; the block starts <c>max(64, alignment)</c> bytes in. Every granule of
/// the region is in the <see cref="Registry"/> with its distance from the region's start, so any
/// pointer into it finds the header, and a pointer that is not the block's start is rejected.</para>
/// <para>The cache is an array of cells holding region addresses, filled by CAS into an empty cell
/// and emptied by CAS back to zero, so each cached region is taken by exactly one thread. Cached
/// regions are not in the registry: freeing a cached block again is reported as a foreign pointer.</para>
/// </remarks>
internal static unsafe class LargeObjects
{
    private const ulong Magic = 0x534C_4142_4C52_4745; // "SLABLRGE"
    private const int CacheCells = 16;
    private static readonly long CacheLimitBytes = (long)SlabOptions.LargeCacheMiB << 20;

    [StructLayout(LayoutKind.Sequential)]
    private struct LargeHeader
    {
        public ulong Magic;
        public nuint MappedBytes;
        public nuint RegionAlignment;
        public byte* Block;
        public nuint UsableBytes;
    }

    private static readonly nint[] s_cache = new nint[CacheCells];
    private static readonly nint[] s_cacheSizes = new nint[CacheCells];
    private static long s_cachedBytes;
    private static long s_liveCount;
    private static long s_liveBytes;
    private static long s_allocations;
    private static long s_cacheHits;

    /// <summary>Large blocks handed out and not yet freed.</summary>
    public static long LiveCount => Volatile.Read(ref s_liveCount);
    /// <summary>Usable bytes of those blocks.</summary>
    public static long LiveBytes => Volatile.Read(ref s_liveBytes);
    /// <summary>Bytes of freed regions kept mapped for reuse.</summary>
    public static long CachedBytes => Volatile.Read(ref s_cachedBytes);
    /// <summary>Large allocations since start-up, and how many the cache served.</summary>
    public static long Allocations => Volatile.Read(ref s_allocations);
    /// <inheritdoc cref="Allocations"/>
    public static long CacheHits => Volatile.Read(ref s_cacheHits);

    /// <summary>Allocates <paramref name="size"/> bytes aligned to <paramref name="alignment"/>
    /// (a power of two), zero-filled if <paramref name="zero"/>. Null when the system refuses.</summary>
    public static void* Allocate(nuint size, nuint alignment, bool zero)
    {
        nuint offset = Math.Max(64, alignment);
        nuint needed = offset + Math.Max(size, 1); // the block's first byte lies inside the mapping, even for size 0
        if (needed < size) return null;
        nuint mapped = OsMemory.RoundUpToPages(needed);
        if (mapped == 0) return null;
        nuint regionAlignment = Math.Max(Geometry.SuperslabBytes, alignment);

        byte* region = TakeCached(mapped, regionAlignment);
        bool fresh = region == null;
        if (fresh)
        {
            region = (byte*)OsMemory.Reserve(mapped, regionAlignment);
            if (region == null) return null;
        }
        var header = (LargeHeader*)region;
        if (!fresh) mapped = header->MappedBytes;
        header->Magic = Magic;
        header->MappedBytes = mapped;
        header->RegionAlignment = regionAlignment;
        header->Block = region + offset;
        header->UsableBytes = mapped - offset;
        if (!Register(region, mapped))
        {
            OsMemory.Release(region, mapped);
            return null;
        }
        SlabLog.LargeBlockMapped((nuint)region, mapped, fresh);
        SlabLog.RegistryCapacity(Registry.MappedBytes);
        if (zero && !fresh) NativeMemory.Clear(region + offset, size);
        Interlocked.Increment(ref s_liveCount);
        Interlocked.Add(ref s_liveBytes, (long)header->UsableBytes);
        Interlocked.Increment(ref s_allocations);
        return region + offset;
    }

    /// <summary>Usable size of the large block at <paramref name="p"/>, whose registry value is
    /// <paramref name="registryValue"/>; throws if p is not a large block's start.</summary>
    public static nuint UsableSize(void* p, uint registryValue) => Validate(p, registryValue)->UsableBytes;

    /// <summary>Frees the large block at <paramref name="p"/>; throws if p is not a large block's start.</summary>
    public static void Free(void* p, uint registryValue)
    {
        LargeHeader* header = Validate(p, registryValue);
        byte* region = (byte*)header;
        nuint mapped = header->MappedBytes;
        Interlocked.Decrement(ref s_liveCount);
        Interlocked.Add(ref s_liveBytes, -(long)header->UsableBytes);
        Unregister(region, mapped);
        if (TryCache(region, mapped)) return;
        OsMemory.Release(region, mapped);
        SlabLog.LargeBlockUnmapped((nuint)region, mapped);
    }

    /// <summary>Returns every cached region to the system.</summary>
    public static void FlushCache()
    {
        for (int i = 0; i < CacheCells; i++)
        {
            nint region = Interlocked.Exchange(ref s_cache[i], 0);
            if (region == 0) continue;
            nuint mapped = ((LargeHeader*)region)->MappedBytes;
            Interlocked.Add(ref s_cachedBytes, -(long)mapped);
            OsMemory.Release((void*)region, mapped);
            SlabLog.LargeBlockUnmapped((nuint)region, mapped);
        }
    }

    private static LargeHeader* Validate(void* p, uint registryValue)
    {
        nuint granulesBack = (registryValue >> 1) - 1;
        var header = (LargeHeader*)(((nuint)p & ~Geometry.SuperslabMask) - (granulesBack << Geometry.SuperslabShift));
        // The registry marks whole granules; the tail of the last one past the mapping is not ours.
        if ((nuint)p - (nuint)header >= header->MappedBytes) ThrowHelper.ThrowForeignPointer(p);
        if (header->Magic != Magic || header->Block != p) ThrowHelper.ThrowInteriorPointer(p);
        return header;
    }

    private static bool Register(byte* region, nuint mapped)
    {
        nuint granules = (mapped + Geometry.SuperslabMask) >> Geometry.SuperslabShift;
        for (nuint g = 0; g < granules; g++)
        {
            if (Registry.TrySet((nuint)region + (g << Geometry.SuperslabShift), Registry.LargeValue(g))) continue;
            Unregister(region, g << Geometry.SuperslabShift);
            return false;
        }
        return true;
    }

    private static void Unregister(byte* region, nuint mapped)
    {
        for (nuint offset = 0; offset < mapped; offset += Geometry.SuperslabBytes)
            Registry.Clear((nuint)region + offset);
    }

    private static bool TryCache(byte* region, nuint mapped)
    {
        if (Interlocked.Add(ref s_cachedBytes, (long)mapped) > CacheLimitBytes)
        {
            Interlocked.Add(ref s_cachedBytes, -(long)mapped);
            return false;
        }
        for (int i = 0; i < CacheCells; i++)
        {
            if (Volatile.Read(ref s_cache[i]) != 0) continue;
            // A hint for takers, who must not read a header they do not own (it may be unmapped).
            Volatile.Write(ref s_cacheSizes[i], (nint)mapped);
            // Loses to another thread filling the same empty cell; try the next one. No ABA concern:
            // only an empty cell is filled, and a taker re-checks the header once the region is its own.
            if (Interlocked.CompareExchange(ref s_cache[i], (nint)region, 0) == 0) return true;
        }
        Interlocked.Add(ref s_cachedBytes, -(long)mapped);
        return false;
    }

    /// <summary>A cached region of at least <paramref name="mapped"/> bytes (and at most twice that)
    /// with the right alignment, or null.</summary>
    private static byte* TakeCached(nuint mapped, nuint regionAlignment)
    {
        if (Volatile.Read(ref s_cachedBytes) == 0) return null;
        for (int i = 0; i < CacheCells; i++)
        {
            nint region = Volatile.Read(ref s_cache[i]);
            if (region == 0) continue;
            nuint hint = (nuint)Volatile.Read(ref s_cacheSizes[i]);
            if (hint < mapped || hint / 2 > mapped || ((nuint)region & (regionAlignment - 1)) != 0) continue;
            // Loses to another taker of this region; the winner owns it. A cell refilled with the same
            // address in between (ABA) is harmless: the header is re-checked below once the region is ours.
            if (Interlocked.CompareExchange(ref s_cache[i], 0, region) != region) continue;
            // Ours now, so the header is safe to read; the hint may belong to a later occupant of the cell.
            nuint size = ((LargeHeader*)region)->MappedBytes;
            Interlocked.Add(ref s_cachedBytes, -(long)size);
            if (size < mapped || size / 2 > mapped)
            {
                if (!TryCache((byte*)region, size)) OsMemory.Release((void*)region, size);
                continue;
            }
            Interlocked.Increment(ref s_cacheHits);
            return (byte*)region;
        }
        return null;
    }
}
