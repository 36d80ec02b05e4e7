using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using SlabAlloc.Memory;
using SlabAlloc.Platform;
using SlabAlloc.Support;

namespace SlabAlloc.Large;

/// <summary>
/// Blocks above 64 KiB, or with an alignment no slab can give: each is its own mapping, with a
/// small cache of freed mappings so that a program that frees and allocates large blocks in a loop
/// does not pay an mmap/munmap pair each time.
/// </summary>
/// <remarks>
/// <para>A large block is its mapping: it starts on a 4 MiB granule (or on its alignment, if larger),
/// and all it is known by is a <see cref="LargeRecord"/> in a table that is never unmapped. Every granule
/// of the mapping is in the <see cref="Registry"/> with the record's index, so any pointer into it finds
/// the record, and a pointer that is not the block's start, or that lies in the tail of the last granule
/// past the mapping, is rejected.</para>
/// <para><b>Validation never reads the block's memory.</b> A thread may look a pointer up at the moment
/// another thread frees (and unmaps) the block; all it reads is the registry and the record, which stay
/// mapped for good. A stale read of a record that has since been freed, or reused for another block, sees
/// a <see cref="LargeRecord.Block"/> that is 0 or another address, and the pointer is rejected.</para>
/// <para><b>Freeing is a claim.</b> The free that wins the CAS of <see cref="LargeRecord.Block"/> from the
/// block's address to 0 owns the block: it alone unregisters it and caches or unmaps it; a second free of
/// the same block, at the same moment or later, loses the CAS (or finds the registry cleared) and is
/// rejected. <c>Realloc</c> claims the block the same way before it copies from it, so a racing free can
/// never unmap memory it is reading. An ABA on the record (freed, then reused for a new block at the very
/// same address) is harmless: the CAS then claims the live block that is at that address now.</para>
/// <para>The cache is an array of cells holding region addresses, filled by CAS into an empty cell
/// and emptied by CAS back to zero, so each cached region is taken by exactly one thread. A cached region
/// keeps its size in its first word, read only by the thread that took the region. Cached regions are not
/// in the registry: freeing a cached block again is reported as a foreign pointer.</para>
/// </remarks>
internal static unsafe class LargeObjects
{
    private const int CacheCells = 16;
    private static readonly long CacheLimitBytes = (long)SlabOptions.LargeCacheMiB << 20;

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
        nuint mapped = OsMemory.RoundUpToPages(Math.Max(size, 1)); // a first byte to point at, even for size 0
        if (mapped == 0) return null;
        nuint regionAlignment = Math.Max(Geometry.SuperslabBytes, alignment);

        if (!TryTakeRecord(out uint index)) return null;
        byte* region = TakeCached(mapped, regionAlignment, out nuint cachedBytes);
        bool fresh = region == null;
        if (fresh)
        {
            region = (byte*)OsMemory.Reserve(mapped, regionAlignment);
            if (region == null)
            {
                FreeRecord(index);
                return null;
            }
        }
        else mapped = cachedBytes;
        LargeRecord* record = MetadataTable<LargeRecord>.Entry(index);
        record->MappedBytes = mapped;
        // Its record's Block is still 0 (free records hold 0): until it is published below, a lookup that
        // finds the index rejects the pointer, as it must for a block not handed out yet.
        if (!Register(region, mapped, Registry.LargeValue(index)))
        {
            FreeRecord(index);
            OsMemory.Release(region, mapped);
            return null;
        }
        SlabLog.LargeBlockMapped((nuint)region, mapped, fresh);
        SlabLog.RegistryCapacity(Registry.MappedBytes);
        if (zero && !fresh) NativeMemory.Clear(region, size);
        Interlocked.Increment(ref s_liveCount);
        Interlocked.Add(ref s_liveBytes, (long)mapped);
        Interlocked.Increment(ref s_allocations);
        // Published last (release: the size and the registration come first); from here a free can claim it.
        Volatile.Write(ref record->Block, (nint)region);
        return region;
    }

    /// <summary>Usable size of the large block at <paramref name="p"/>, whose registry value is
    /// <paramref name="registryValue"/>; throws if p is not a live large block's start.</summary>
    public static nuint UsableSize(void* p, uint registryValue)
    {
        LargeRecord* record = RecordOf(registryValue);
        if (Volatile.Read(ref record->Block) == (nint)p)
        {
            nuint mapped = Volatile.Read(ref record->MappedBytes);
            // The size belongs to this block only if the block was still live after it was read.
            if (Volatile.Read(ref record->Block) == (nint)p) return mapped;
        }
        ThrowRejected(p, registryValue);
        return 0;
    }

    /// <summary>Frees the large block at <paramref name="p"/>; throws if p is not a live large block's start.</summary>
    public static void Free(void* p, uint registryValue) => ReleaseClaimed(Claim(p, registryValue), p);

    /// <summary>The first half of a free: takes the block at <paramref name="p"/> out of use, so that no other
    /// free or realloc can touch it, and returns its record's index; throws if p is not a live large block's
    /// start. Finish with <see cref="ReleaseClaimed"/>, or undo with <see cref="Unclaim"/>.</summary>
    public static uint Claim(void* p, uint registryValue)
    {
        LargeRecord* record = RecordOf(registryValue);
        // Loses to another free or realloc of the same block (the record's block is 0 then), or finds another
        // block in a reused record: either way p is not a live block's start any more.
        if (Volatile.Read(ref record->Block) != (nint)p || Interlocked.CompareExchange(ref record->Block, 0, (nint)p) != (nint)p)
            ThrowRejected(p, registryValue);
        return Registry.LargeRecordIndex(registryValue);
    }

    /// <summary>The usable bytes of the block claimed as record <paramref name="index"/> (its mapping).</summary>
    public static nuint ClaimedBytes(uint index) => MetadataTable<LargeRecord>.Entry(index)->MappedBytes;

    /// <summary>Puts a block claimed by <see cref="Claim"/> back in use, unchanged.</summary>
    public static void Unclaim(uint index, void* p) => Volatile.Write(ref MetadataTable<LargeRecord>.Entry(index)->Block, (nint)p);

    /// <summary>The second half of a free: unregisters the block at <paramref name="p"/>, claimed by
    /// <see cref="Claim"/> as record <paramref name="index"/>, frees the record, and caches or unmaps the
    /// mapping (which starts at the block).</summary>
    public static void ReleaseClaimed(uint index, void* p)
    {
        var region = (byte*)p;
        nuint mapped = MetadataTable<LargeRecord>.Entry(index)->MappedBytes;
        Interlocked.Decrement(ref s_liveCount);
        Interlocked.Add(ref s_liveBytes, -(long)mapped);
        Unregister(region, mapped);
        // Only after the granules stop naming it: a lookup that still finds the index reads a record whose
        // block is 0 or another block's, and rejects the pointer.
        FreeRecord(index);
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
            nuint mapped = *(nuint*)region; // ours now: a cached region keeps its size in its first word
            Interlocked.Add(ref s_cachedBytes, -(long)mapped);
            OsMemory.Release((void*)region, mapped);
            SlabLog.LargeBlockUnmapped((nuint)region, mapped);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static LargeRecord* RecordOf(uint registryValue) => MetadataTable<LargeRecord>.Entry(Registry.LargeRecordIndex(registryValue));

    /// <summary>Rejects <paramref name="p"/>, found in a granule of the record of <paramref name="registryValue"/>:
    /// inside a live block but not at its start, or not SlabAlloc's (past the block's mapping, or a block freed
    /// already).</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void ThrowRejected(void* p, uint registryValue)
    {
        LargeRecord* record = RecordOf(registryValue);
        nint block = Volatile.Read(ref record->Block);
        nuint mapped = Volatile.Read(ref record->MappedBytes);
        if (block != 0 && (nuint)p - (nuint)block < mapped) ThrowHelper.ThrowInteriorPointer(p);
        ThrowHelper.ThrowForeignPointer(p);
    }

    private static bool TryTakeRecord(out uint index) => MetadataTable<LargeRecord>.TryAllocateIndex(out index);

    private static void FreeRecord(uint index) => MetadataTable<LargeRecord>.FreeIndex(index);

    private static bool Register(byte* region, nuint mapped, uint value)
    {
        nuint granules = (mapped + Geometry.SuperslabMask) >> Geometry.SuperslabShift;
        for (nuint g = 0; g < granules; g++)
        {
            if (Registry.TrySet((nuint)region + (g << Geometry.SuperslabShift), value)) continue;
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
        *(nuint*)region = mapped; // the true size, for whoever takes the region
        for (int i = 0; i < CacheCells; i++)
        {
            if (Volatile.Read(ref s_cache[i]) != 0) continue;
            // A hint for takers, who must not read a region they do not own (it may be unmapped).
            Volatile.Write(ref s_cacheSizes[i], (nint)mapped);
            // Loses to another thread filling the same empty cell; try the next one. No ABA concern:
            // only an empty cell is filled, and a taker re-reads the size once the region is its own.
            if (Interlocked.CompareExchange(ref s_cache[i], (nint)region, 0) == 0) return true;
        }
        Interlocked.Add(ref s_cachedBytes, -(long)mapped);
        return false;
    }

    /// <summary>A cached region of at least <paramref name="mapped"/> bytes (and at most twice that)
    /// with the right alignment, and its size; null if there is none.</summary>
    private static byte* TakeCached(nuint mapped, nuint regionAlignment, out nuint size)
    {
        size = 0;
        if (Volatile.Read(ref s_cachedBytes) == 0) return null;
        for (int i = 0; i < CacheCells; i++)
        {
            nint region = Volatile.Read(ref s_cache[i]);
            if (region == 0) continue;
            nuint hint = (nuint)Volatile.Read(ref s_cacheSizes[i]);
            if (hint < mapped || hint / 2 > mapped || ((nuint)region & (regionAlignment - 1)) != 0) continue;
            // Loses to another taker of this region; the winner owns it. A cell refilled with the same
            // address in between (ABA) is harmless: the size is re-read below once the region is ours.
            if (Interlocked.CompareExchange(ref s_cache[i], 0, region) != region) continue;
            size = *(nuint*)region;
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
