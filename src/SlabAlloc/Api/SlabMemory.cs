using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using SlabAlloc.Frontend;
using SlabAlloc.Large;
using SlabAlloc.Memory;
using SlabAlloc.Pool;
using SlabAlloc.Support;

namespace SlabAlloc;

/// <summary>
/// A drop-in replacement for <see cref="NativeMemory"/>: every one of its members, with the same
/// semantics, served by SlabAlloc's lock-free slab allocator, plus SlabAlloc's own
/// (<see cref="UsableSize"/>, <see cref="Trim"/>, <see cref="ReserveThreadCache"/>, the statistics).
/// </summary>
/// <remarks>
/// <para>Blocks up to 64 KiB come from per-thread slabs (no lock, no atomic instruction when a thread
/// frees its own blocks); larger blocks, and alignments above 64 KiB, are mapped from the system.</para>
/// <para>Every block may be freed by any thread, with <see cref="Free"/> or <see cref="AlignedFree"/>
/// (the two are interchangeable). A pointer SlabAlloc did not return, or one that points inside a
/// block, gets an <see cref="ArgumentException"/> and changes nothing. With <c>SLABALLOC_CHECKED=1</c>
/// a double free is reported the same way; without it, a double free is detected when it hits a
/// returned large block or a slab that has no block out, and is otherwise undefined.</para>
/// </remarks>
public static unsafe class SlabMemory
{
    /// <summary>Allocates a block of at least <paramref name="byteCount"/> bytes, 16-byte aligned.</summary>
    /// <param name="byteCount">Size in bytes. 0 gives a unique pointer that must be freed.</param>
    /// <returns>The block; never null.</returns>
    /// <exception cref="OutOfMemoryException">The size is impossible or the system has no memory.</exception>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void* Alloc(nuint byteCount)
    {
        nuint sizeMinusOne = byteCount - 1; // 0 wraps to the maximum and takes the general path
        if (sizeMinusOne < SizeClasses.SmallLimitBytes)
            return SmallBlocks.Allocate(SizeClasses.SmallClassOfSizeMinusOne(sizeMinusOne), byteCount);
        return AllocGeneral(byteCount, zero: false);
    }

    /// <summary>Allocates <paramref name="elementCount"/> × <paramref name="elementSize"/> bytes.</summary>
    /// <exception cref="OutOfMemoryException">The product overflows, is impossible, or the system has no memory.</exception>
    public static void* Alloc(nuint elementCount, nuint elementSize) => Alloc(Product(elementCount, elementSize));

    /// <summary>Allocates a zero-filled block of at least <paramref name="byteCount"/> bytes.</summary>
    /// <exception cref="OutOfMemoryException">The size is impossible or the system has no memory.</exception>
    public static void* AllocZeroed(nuint byteCount)
    {
        if (byteCount > SizeClasses.MaxBlockBytes) return AllocGeneral(byteCount, zero: true);
        void* p = Alloc(byteCount);
        NativeMemory.Clear(p, byteCount);
        return p;
    }

    /// <summary>Allocates a zero-filled block of <paramref name="elementCount"/> × <paramref name="elementSize"/> bytes.</summary>
    /// <exception cref="OutOfMemoryException">The product overflows, is impossible, or the system has no memory.</exception>
    public static void* AllocZeroed(nuint elementCount, nuint elementSize) => AllocZeroed(Product(elementCount, elementSize));

    /// <summary>Frees a block from any SlabAlloc allocation method. Null does nothing.</summary>
    /// <exception cref="ArgumentException"><paramref name="ptr"/> is not a live SlabAlloc block.</exception>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Free(void* ptr)
    {
        // In the open part of the superslab arena every header at ptr & ~(4 MiB - 1) can be read (null is outside).
        if (!SuperslabArena.Contains(ptr))
        {
            FreeOutsideArena(ptr);
            return;
        }
        SlabMeta* s = SuperslabHeader.SlabOf(ptr);
        if (s == null) ThrowNotInASlab(ptr);
        int index = SlabMeta.BlockIndexOf(s, ptr);
        if (index < 0) ThrowHelper.ThrowInteriorPointer(ptr);
        SmallBlocks.Free(s, ptr, index);
    }

    /// <summary>A free of a pointer outside the arena: a block of a superslab mapped on its own (one bit of
    /// the registry says whether the header at ptr &amp; ~(4 MiB - 1) is a superslab's), a large block, or
    /// not SlabAlloc's.</summary>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static void FreeOutsideArena(void* ptr)
    {
        if (!Registry.IsSuperslab(ptr))
        {
            FreeLargeOrForeign(ptr);
            return;
        }
        SlabMeta* s = SuperslabHeader.SlabOf(ptr);
        if (s == null) ThrowHelper.ThrowInteriorPointer(ptr);
        int index = SlabMeta.BlockIndexOf(s, ptr);
        if (index < 0) ThrowHelper.ThrowInteriorPointer(ptr);
        SmallBlocks.Free(s, ptr, index);
    }

    /// <summary>A pointer in the arena that no slab covers: in a superslab (or one being mapped or retired
    /// right now), its header or a slot no slab holds; else in a range of the arena that is no superslab
    /// (never one yet, or retired). The same answers as the registry's path gives.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void ThrowNotInASlab(void* ptr)
    {
        // The value is set before the superslab bit and cleared after it: it covers every moment the bit does.
        if (Registry.Lookup(ptr) == Registry.SuperslabValue) ThrowHelper.ThrowInteriorPointer(ptr);
        ThrowHelper.ThrowForeignPointer(ptr);
    }

    /// <summary>Resizes a block, keeping its contents up to the smaller size. Null allocates.</summary>
    /// <returns>The resized block (possibly moved); never null.</returns>
    /// <exception cref="ArgumentException"><paramref name="ptr"/> is not a live SlabAlloc block.</exception>
    /// <exception cref="OutOfMemoryException">The size is impossible or the system has no memory; the old block is untouched.</exception>
    public static void* Realloc(void* ptr, nuint byteCount)
    {
        if (ptr == null) return Alloc(byteCount);
        return Resize(ptr, byteCount, 16);
    }

    /// <summary>Allocates a block of at least <paramref name="byteCount"/> bytes aligned to <paramref name="alignment"/>.</summary>
    /// <param name="byteCount">Size in bytes. 0 gives a unique pointer that must be freed.</param>
    /// <param name="alignment">A power of two, from 1 up to any size the address space allows.</param>
    /// <exception cref="ArgumentException"><paramref name="alignment"/> is not a power of two.</exception>
    /// <exception cref="OutOfMemoryException">The size is impossible or the system has no memory.</exception>
    public static void* AlignedAlloc(nuint byteCount, nuint alignment)
    {
        if (!BitOperations.IsPow2(alignment)) ThrowHelper.ThrowBadAlignment(alignment);
        if (alignment <= 16) return Alloc(byteCount);
        int sizeClass = SizeClasses.ClassForAligned(byteCount, alignment);
        if (sizeClass >= SmallBlocks.FirstCachedClass) return SmallBlocks.AllocateGeneralClass(sizeClass, byteCount);
        if (sizeClass >= 0) return SmallBlocks.Allocate(sizeClass, byteCount);
        return AllocLarge(byteCount, alignment, zero: false);
    }

    /// <summary>Resizes a block keeping it aligned to <paramref name="alignment"/> and its contents up to the smaller size.</summary>
    /// <exception cref="ArgumentException"><paramref name="alignment"/> is not a power of two, or <paramref name="ptr"/> is not a live SlabAlloc block.</exception>
    /// <exception cref="OutOfMemoryException">The size is impossible or the system has no memory; the old block is untouched.</exception>
    public static void* AlignedRealloc(void* ptr, nuint byteCount, nuint alignment)
    {
        if (!BitOperations.IsPow2(alignment)) ThrowHelper.ThrowBadAlignment(alignment);
        if (ptr == null) return AlignedAlloc(byteCount, alignment);
        return Resize(ptr, byteCount, alignment);
    }

    /// <summary>Frees a block; the same as <see cref="Free"/>. Null does nothing.</summary>
    /// <exception cref="ArgumentException"><paramref name="ptr"/> is not a live SlabAlloc block.</exception>
    public static void AlignedFree(void* ptr) => Free(ptr);

    /// <summary>Sets <paramref name="byteCount"/> bytes at <paramref name="ptr"/> to zero, as
    /// <see cref="NativeMemory.Clear"/> does; any memory, not only SlabAlloc's.</summary>
    public static void Clear(void* ptr, nuint byteCount) => NativeMemory.Clear(ptr, byteCount);

    /// <summary>Copies <paramref name="byteCount"/> bytes from <paramref name="source"/> to
    /// <paramref name="destination"/>, as <see cref="NativeMemory.Copy"/> does: the two ranges may
    /// overlap; any memory, not only SlabAlloc's.</summary>
    public static void Copy(void* source, void* destination, nuint byteCount) => NativeMemory.Copy(source, destination, byteCount);

    /// <summary>Sets <paramref name="byteCount"/> bytes at <paramref name="ptr"/> to <paramref name="value"/>,
    /// as <see cref="NativeMemory.Fill"/> does; any memory, not only SlabAlloc's.</summary>
    public static void Fill(void* ptr, nuint byteCount, byte value) => NativeMemory.Fill(ptr, byteCount, value);

    /// <summary>The number of bytes the block at <paramref name="ptr"/> can really hold (at least what was asked). 0 for null.</summary>
    /// <exception cref="ArgumentException"><paramref name="ptr"/> is not a live SlabAlloc block (in checked mode, also when it was freed).</exception>
    public static nuint UsableSize(void* ptr)
    {
        if (ptr == null) return 0;
        if (!Registry.IsSuperslab(ptr)) return LargeObjects.UsableSize(ptr, LargeRegistryValue(ptr));
        return SlabBlockUsableSize(ptr);
    }

    /// <summary><see cref="UsableSize"/> of a pointer whose superslab bit was set.</summary>
    private static nuint SlabBlockUsableSize(void* ptr)
    {
        SlabMeta* s = SuperslabHeader.SlabOf(ptr);
        int index = s == null ? -1 : SlabMeta.BlockIndexOf(s, ptr);
        if (index < 0) ThrowHelper.ThrowInteriorPointer(ptr);
        // The same verdict a free would give: a block that is free already cannot be asked about.
        if (SlabOptions.Checked ? !SuperslabHeader.IsAllocated(ptr) : SlabMeta.HasNoBlockOut(s)) ThrowHelper.ThrowDoubleFree(ptr);
        return s->BlockBytes;
    }

    /// <summary>Gives cached empty memory back to the system: the calling thread's empty slabs,
    /// the caches of threads that have ended, the slabs of other live threads whose blocks other threads
    /// have all freed, every empty slab in the shared pool, empty superslabs and cached large blocks.</summary>
    /// <exception cref="InvalidOperationException">Heap corruption was found in the cache of a thread
    /// that has ended or in a slab of the shared pool (everything else is trimmed first; what was found
    /// corrupt is left out of use).</exception>
    public static void Trim()
    {
        Exception? failure;
        // Failures found while the upkeep is held off are logged once it is not (a logger may wait for another
        // thread's Trim), and before the exception leaves: the scope ends before the throw.
        using (ErrorReports.Defer())
        {
            // Not at the same moment as a pass of the periodic upkeep, whose sweep would hold partial slabs
            // out of this trim's view (and report a corruption it found only to the log).
            using (UpkeepPass.Exclusive())
            {
                // Dead threads' caches first: the frees they held back may empty this thread's slabs.
                failure = ThreadCacheRecords.ReclaimDead();
                ThreadCacheRecords.AwaitReclaims();
                // Live threads' held remote frees too, for the same reason.
                Exception? batchFailure = ThreadCacheRecords.PushOtherThreadsRemoteBatches();
                failure ??= batchFailure;
                try
                {
                    SmallBlocks.FlushCurrentThreadRemoteBatch();
                }
                catch (InvalidOperationException e)
                {
                    failure ??= e;
                }
                // Then the slabs of other live threads that other threads' frees emptied (found once every batch is in).
                ThreadCacheRecords.TakeBackFreedSlabs(idleOnly: false);
                try
                {
                    SmallBlocks.TrimCurrentThread();
                }
                catch (InvalidOperationException e)
                {
                    failure ??= e;
                }
                Exception? poolFailure = SlabPool.Shared.Trim();
                failure ??= poolFailure;
            }
        }
        LargeObjects.FlushCache();
        if (failure != null) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(failure);
    }

    /// <summary>
    /// Warms the calling thread's cache: at least <paramref name="count"/> blocks that can hold
    /// <paramref name="blockSize"/> bytes are made ready, with every page behind them touched, so that a
    /// latency-critical thread allocating and freeing up to that many such blocks takes no page fault
    /// (with <c>SLABALLOC_PREFAULT=1</c>, new superslabs are faulted in whole as well).
    /// </summary>
    /// <param name="blockSize">The size the hot loop allocates, at most 64 KiB.</param>
    /// <param name="count">How many blocks the loop holds at most at once.</param>
    /// <exception cref="ArgumentOutOfRangeException">The size is above 64 KiB or the count is negative.</exception>
    /// <exception cref="OutOfMemoryException">The system has no memory for the blocks.</exception>
    public static void ReserveThreadCache(nuint blockSize, int count)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(blockSize, SizeClasses.MaxBlockBytes);
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        SmallBlocks.Reserve(SizeClasses.ClassOf(blockSize), count);
    }

    /// <summary>A snapshot of what the allocator holds and has done.</summary>
    public static SlabStatistics GetStatistics() => StatisticsCollector.Collect(UpkeepPass.Count, UpkeepPass.ArmedDelayMs);

    /// <summary>A snapshot of the shared pool's lock statistics (lock and CAS counters need <c>SLABALLOC_LOCK_STATS=1</c>).</summary>
    public static SlabLockStatistics GetLockStatistics() => LockStatisticsCollector.Collect();

    /// <summary>True when a block of <paramref name="usable"/> bytes is a good home for <paramref name="byteCount"/>
    /// bytes: the same size class, or a large block at most half empty.</summary>
    private static bool Fits(nuint usable, nuint byteCount)
    {
        if (usable <= SizeClasses.MaxBlockBytes)
            return byteCount <= SizeClasses.MaxBlockBytes && SizeClasses.BlockBytes(SizeClasses.ClassOf(byteCount)) == (int)usable;
        return byteCount > SizeClasses.MaxBlockBytes && byteCount >= usable / 2;
    }

    // Every allocation above 1 KiB comes here: compiled optimized at once rather than tiered up.
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static void* AllocGeneral(nuint byteCount, bool zero)
    {
        if (byteCount <= SizeClasses.MaxBlockBytes)
            return SmallBlocks.AllocateGeneralClass(SizeClasses.ClassOf(byteCount), byteCount);
        return AllocLarge(byteCount, 16, zero);
    }

    private static void* AllocLarge(nuint byteCount, nuint alignment, bool zero)
    {
        if (byteCount > Geometry.MaxRequestBytes || alignment > Geometry.MaxRequestBytes) ThrowHelper.ThrowOutOfMemory(byteCount);
        void* p = LargeObjects.Allocate(byteCount, alignment, zero);
        if (p == null) ThrowHelper.ThrowOutOfMemory(byteCount);
        return p;
    }

    /// <summary>Null, a large block, or not SlabAlloc's.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void FreeLargeOrForeign(void* ptr)
    {
        if (ptr == null) return;
        LargeObjects.Free(ptr, LargeRegistryValue(ptr));
    }

    /// <summary>The registry value of <paramref name="ptr"/>, whose superslab bit is clear, if it names a
    /// large block; otherwise throws: not SlabAlloc's, or a superslab being mapped or retired right now, of
    /// which no block can be live (the bit is set before the value's memory is handed out).</summary>
    private static uint LargeRegistryValue(void* ptr)
    {
        uint value = Registry.Lookup(ptr);
        if (value == 0) ThrowHelper.ThrowForeignPointer(ptr);
        if (value == Registry.SuperslabValue) ThrowHelper.ThrowInteriorPointer(ptr);
        return value;
    }

    /// <summary>Realloc and AlignedRealloc of a non-null pointer: the block itself while it fits (and is
    /// aligned), else a new block with the contents copied and the old one freed.</summary>
    /// <remarks>Nothing changes when the pointer is rejected, whenever that is found. Which kind of block it is
    /// is decided once, from the superslab bit. A large block that has to move is taken out of use (claimed)
    /// before its size is read again and its contents copied, so a free of it racing with this call is rejected
    /// and cannot unmap it under the copy; if the new block cannot be had, the claim is undone. A slab block is read
    /// in memory that is never unmapped (a superslab's range is kept), never past its superslab, and freed
    /// after the copy; if that free is rejected (another thread freed the block first), the new block is
    /// freed again before the rejection is passed on.</remarks>
    private static void* Resize(void* ptr, nuint byteCount, nuint alignment)
    {
        if (!Registry.IsSuperslab(ptr)) return ResizeLarge(ptr, byteCount, alignment);
        nuint usable = SlabBlockUsableSize(ptr);
        if (((nuint)ptr & (alignment - 1)) == 0 && byteCount <= usable && Fits(usable, byteCount)) return ptr;
        void* fresh = AlignedAlloc(byteCount, alignment);
        // The block cannot reach past its superslab; a geometry read while its slab was being re-formatted (a
        // stale pointer) might say otherwise.
        nuint inSuperslab = Geometry.SuperslabBytes - ((nuint)ptr & Geometry.SuperslabMask);
        Buffer.MemoryCopy(ptr, fresh, byteCount, Math.Min(Math.Min(usable, byteCount), inSuperslab));
        try
        {
            Free(ptr);
        }
        catch
        {
            Free(fresh);
            throw;
        }
        return fresh;
    }

    private static void* ResizeLarge(void* ptr, nuint byteCount, nuint alignment)
    {
        uint value = LargeRegistryValue(ptr);
        nuint usable = LargeObjects.UsableSize(ptr, value);
        if (((nuint)ptr & (alignment - 1)) == 0 && byteCount <= usable && Fits(usable, byteCount)) return ptr;
        uint index = LargeObjects.Claim(ptr, value);
        void* fresh;
        try
        {
            fresh = AlignedAlloc(byteCount, alignment);
        }
        catch
        {
            LargeObjects.Unclaim(index, ptr);
            throw;
        }
        // The size of the block claimed: the one read above may belong to a block freed since.
        Buffer.MemoryCopy(ptr, fresh, byteCount, Math.Min(LargeObjects.ClaimedBytes(index), byteCount));
        LargeObjects.ReleaseClaimed(index, ptr);
        return fresh;
    }

    private static nuint Product(nuint count, nuint size)
    {
        nuint high = (nuint)Math.BigMul((ulong)count, (ulong)size, out ulong low);
        if (high != 0) ThrowHelper.ThrowOutOfMemoryOverflow(count, size);
        return (nuint)low;
    }
}
