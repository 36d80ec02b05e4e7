using System;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using SlabAlloc.Support;

namespace SlabAlloc.Platform;

/// <summary>
/// The platform layer: the only code in SlabAlloc that asks the operating system (or
/// <see cref="NativeMemory"/>) for memory.
/// </summary>
/// <remarks>
/// Contract for every caller above:
/// <list type="bullet">
/// <item><see cref="Reserve"/> returns read-write memory, zero-filled, aligned to the requested
/// power-of-two alignment, or <c>null</c> when the system refuses (never throws).</item>
/// <item><see cref="Release"/> takes back exactly a range that <see cref="Reserve"/> returned.</item>
/// <item><see cref="Decommit"/> tells the system the contents of a range are no longer needed.
/// The range stays usable; its contents are undefined afterwards (zero on Linux).</item>
/// <item><see cref="ReleaseKeepingRange"/> gives a reserved range's memory back but keeps its addresses
/// readable and writable, so that a stale access never faults; <see cref="TryRecommit"/> counts it again
/// when it is reused. <see cref="ReleaseInPlace"/> does the same without ever replacing the mapping.</item>
/// <item><see cref="ReserveInaccessible"/> maps address space that takes no memory;
/// <see cref="TryMakeWritable"/> makes a part of it read-write and zero-filled, as from <see cref="Reserve"/>.</item>
/// </list>
/// On Linux the memory comes from <c>mmap</c>: regions aligned to more than a page are made by
/// mapping the size plus the alignment and unmapping the two ends, so nothing is wasted.
/// Elsewhere, and on Linux with <c>SLABALLOC_PORTABLE_REGIONS=1</c> (<see cref="PlatformLayer"/>), the portable
/// fallback is <see cref="NativeMemory.AlignedAlloc"/>, where <see cref="Decommit"/> and
/// <see cref="ReleaseKeepingRange"/> do nothing (the memory stays resident and counted, its contents as they
/// were) and <see cref="ReserveAddressSpace"/> refuses.
/// A test-only fault hook (<see cref="FaultInjector"/>) can make the n-th reservation fail (a
/// <see cref="TryMakeWritable"/> counts as one), and
/// <c>SLABALLOC_MAX_MAPPED_MB</c> caps the total mapped.
/// </remarks>
internal static unsafe class OsMemory
{
    /// <summary>True when the mmap path is used (the Linux layer, <see cref="PlatformLayer.Linux"/>); false for
    /// the portable fallback.</summary>
    public static readonly bool UsesMmap = PlatformLayer.Linux;

    /// <summary>The system page size in bytes.</summary>
    public static readonly nuint PageBytes = (nuint)Environment.SystemPageSize;

    private static long s_mappedBytes;

    static OsMemory()
    {
        if (UsesMmap) LibC.EnsureResolver();
    }

    private static long s_refusedByLimit;

    /// <summary>Reservations refused because they would have passed <see cref="AdjustableSettings.MappingLimitBytes"/>.</summary>
    public static long RefusedByLimit => Volatile.Read(ref s_refusedByLimit);

    /// <summary>Bytes currently reserved from the system through this layer.</summary>
    public static long MappedBytes => Volatile.Read(ref s_mappedBytes);

    /// <summary>Reserves <paramref name="bytes"/> of zeroed read-write memory aligned to
    /// <paramref name="alignment"/> (a power of two). Returns null when the system refuses.</summary>
    /// <param name="bytes">Size, a multiple of the page size.</param>
    /// <param name="alignment">Alignment, a power of two.</param>
    /// <param name="populate">Pre-fault the pages (MAP_POPULATE) so later touches take no page fault.</param>
    public static void* Reserve(nuint bytes, nuint alignment, bool populate = false)
    {
        if (FaultInjector.ShouldFail() || !TryCount(bytes)) return null;
        void* result = UsesMmap ? ReserveMmap(bytes, alignment, populate) : ReservePortable(bytes, alignment);
        if (result == null) Interlocked.Add(ref s_mappedBytes, -(long)bytes);
        return result;
    }

    /// <summary>Adds <paramref name="bytes"/> to the mapped total unless that passes the limit. Counted
    /// first, so that racing reservations cannot together pass the limit.</summary>
    private static bool TryCount(nuint bytes)
    {
        long after = Interlocked.Add(ref s_mappedBytes, (long)bytes);
        long limit = Volatile.Read(ref AdjustableSettings.MappingLimitBytes);
        if (limit == 0 || after <= limit) return true;
        Interlocked.Add(ref s_mappedBytes, -(long)bytes);
        Interlocked.Increment(ref s_refusedByLimit);
        return false;
    }

    /// <summary>
    /// Gives the memory behind a range from <see cref="Reserve"/> back to the system but keeps the range
    /// mapped, readable and writable (zero-filled), no longer counted in <see cref="MappedBytes"/>: a thread
    /// that still reads or writes it through a stale pointer meets memory, never a fault. Never fails.
    /// </summary>
    /// <remarks>On Linux the range is mapped anew in place (<c>MAP_FIXED</c>), which frees its pages and
    /// their page tables; the kernel replaces the mapping under its own lock, so no access can find the
    /// range unmapped. Should the kernel refuse (no mapping left to split into), the pages are dropped with
    /// <c>MADV_DONTNEED</c> instead. The portable fallback cannot give memory back without giving up the
    /// range: the memory stays allocated, and counted, until the range is reused.</remarks>
    public static void ReleaseKeepingRange(void* address, nuint bytes)
    {
        if (!UsesMmap) return;
        void* p = LibC.Mmap(address, bytes, LibC.ProtRead | LibC.ProtWrite, LibC.MapPrivate | LibC.MapAnonymous | LibC.MapNoReserve | LibC.MapFixed, -1, 0);
        if (p != address) LibC.Madvise(address, bytes, LibC.MadvDontNeed);
        Interlocked.Add(ref s_mappedBytes, -(long)bytes);
    }

    /// <summary>
    /// Gives the memory behind a range back, as <see cref="ReleaseKeepingRange"/> does, but with
    /// <c>MADV_DONTNEED</c> only: the mapping is never replaced, so not even a kernel that refuses a new
    /// mapping half-way can leave a hole where readers expect memory. The page tables stay. Never fails.
    /// </summary>
    public static void ReleaseInPlace(void* address, nuint bytes)
    {
        if (!UsesMmap) return;
        LibC.Madvise(address, bytes, LibC.MadvDontNeed);
        Interlocked.Add(ref s_mappedBytes, -(long)bytes);
    }

    /// <summary>Takes back a range given up with <see cref="ReleaseKeepingRange"/>: counts it as mapped
    /// again, within the limit. False when the limit (or an injected fault) refuses.</summary>
    public static bool TryRecommit(nuint bytes)
    {
        if (FaultInjector.ShouldFail()) return false;
        return !UsesMmap || TryCount(bytes);
    }

    /// <summary>
    /// Reserves zeroed read-write address space for a large, sparsely written table, without counting
    /// it in <see cref="MappedBytes"/>: untouched pages take no memory, and the owner counts the pages
    /// it writes with <see cref="CountTouched"/>. Transparent huge pages are refused for the range, so a
    /// write makes one page resident, not 2 MiB. Linux only (<see cref="UsesMmap"/>); never released.
    /// Null when the system refuses.
    /// </summary>
    public static void* ReserveAddressSpace(nuint bytes)
    {
        if (!UsesMmap) return null;
        void* p = LibC.Mmap(null, bytes, LibC.ProtRead | LibC.ProtWrite, LibC.MapPrivate | LibC.MapAnonymous | LibC.MapNoReserve, -1, 0);
        if (p == LibC.MapFailed) return null;
        LibC.Madvise(p, bytes, LibC.MadvNoHugePage); // advice only: a kernel without THP refuses it harmlessly
        return p;
    }

    /// <summary>
    /// Reserves inaccessible address space: no memory behind it, nothing charged for it (not even where the
    /// system counts every writable mapping), nothing for <c>mlock</c> to fill in. A part becomes usable with
    /// <see cref="TryMakeWritable"/>. Refused under a limit on the address space (<c>ulimit -v</c>), which the
    /// range would eat into. Linux only (<see cref="UsesMmap"/>); never released. Null when refused.
    /// </summary>
    public static void* ReserveInaccessible(nuint bytes)
    {
        if (!UsesMmap) return null;
        LibC.Rlimit limit;
        if (LibC.Getrlimit(LibC.RlimitAddressSpace, &limit) != 0 || limit.Current != ulong.MaxValue) return null;
        void* p = LibC.Mmap(null, bytes, LibC.ProtNone, LibC.MapPrivate | LibC.MapAnonymous | LibC.MapNoReserve, -1, 0);
        return p == LibC.MapFailed ? null : p;
    }

    /// <summary>Makes a part of a <see cref="ReserveInaccessible"/> range readable and writable, as a range from
    /// <see cref="Reserve"/> is (not counted: the caller counts it). False when the system (or the fault hook) refuses.</summary>
    public static bool TryMakeWritable(void* address, nuint bytes) =>
        !FaultInjector.ShouldFail() && LibC.Mprotect(address, bytes, LibC.ProtRead | LibC.ProtWrite) == 0;

    /// <summary>Takes back the count of a <see cref="TryRecommit"/> whose range was not used after all.</summary>
    public static void Uncount(nuint bytes) => Interlocked.Add(ref s_mappedBytes, -(long)bytes);

    /// <summary>Counts <paramref name="bytes"/> of a <see cref="ReserveAddressSpace"/> table as mapped
    /// (pages it has written).</summary>
    public static void CountTouched(long bytes) => Interlocked.Add(ref s_mappedBytes, bytes);

    /// <summary>Returns a range obtained from <see cref="Reserve"/> to the system.</summary>
    public static void Release(void* address, nuint bytes)
    {
        if (UsesMmap) LibC.Munmap(address, bytes);
        else NativeMemory.AlignedFree(address);
        Interlocked.Add(ref s_mappedBytes, -(long)bytes);
    }

    /// <summary>Gives the physical pages behind a range back; the range stays mapped.</summary>
    public static void Decommit(void* address, nuint bytes)
    {
        if (UsesMmap) LibC.Madvise(address, bytes, LibC.MadvDontNeed);
    }

    /// <summary>Touches one byte per page so the pages are resident before they are needed.</summary>
    public static void Prefault(void* address, nuint bytes)
    {
        byte* p = (byte*)address;
        for (nuint offset = 0; offset < bytes; offset += PageBytes)
            Volatile.Write(ref p[offset], Volatile.Read(ref p[offset]));
    }

    private static void* ReserveMmap(nuint bytes, nuint alignment, bool populate)
    {
        int flags = LibC.MapPrivate | LibC.MapAnonymous | LibC.MapNoReserve;
        if (alignment <= PageBytes)
        {
            void* p = LibC.Mmap(null, bytes, LibC.ProtRead | LibC.ProtWrite, flags | (populate ? LibC.MapPopulate : 0), -1, 0);
            return p == LibC.MapFailed ? null : p;
        }

        // Over-map by the alignment, then cut the misaligned head and the tail off.
        nuint span = bytes + alignment;
        if (span < bytes) return null;
        byte* raw = (byte*)LibC.Mmap(null, span, LibC.ProtRead | LibC.ProtWrite, flags, -1, 0);
        if (raw == LibC.MapFailed) return null;
        byte* aligned = (byte*)(((nuint)raw + alignment - 1) & ~(alignment - 1));
        nuint head = (nuint)(aligned - raw);
        nuint tail = span - head - bytes;
        if (head != 0) LibC.Munmap(raw, head);
        if (tail != 0) LibC.Munmap(aligned + bytes, tail);
        if (populate) Prefault(aligned, bytes);
        return aligned;
    }

    private static void* ReservePortable(nuint bytes, nuint alignment)
    {
        void* p;
        try { p = NativeMemory.AlignedAlloc(bytes, Math.Max(alignment, PageBytes)); }
        catch (OutOfMemoryException) { return null; }
        NativeMemory.Clear(p, bytes);
        return p;
    }

    /// <summary>Rounds <paramref name="bytes"/> up to a whole number of pages; 0 on overflow.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static nuint RoundUpToPages(nuint bytes)
    {
        nuint rounded = (bytes + PageBytes - 1) & ~(PageBytes - 1);
        return rounded < bytes ? 0 : rounded;
    }
}
