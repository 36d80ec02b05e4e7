using SlabAlloc.Memory;

namespace SlabAlloc.Interprocess;

internal sealed unsafe partial class HeapRegion
{
    /// <summary>Allocates a block of at least <paramref name="bytes"/> (1 to the slab size) for this process.</summary>
    /// <returns>The block's unit, or 0 when the heap is full even after maintenance.</returns>
    public uint Allocate(nuint bytes)
    {
        int classIndex = SharedSizeClasses.ClassOf(bytes);
        for (int attempt = 0; ; attempt++)
        {
            Enter();
            try
            {
                if (TryTakeBlock(classIndex, out uint unit))
                {
                    TakeHold(unit, classIndex);
                    return unit;
                }
            }
            finally
            {
                Exit();
            }
            // Full: free blocks may sit in other classes' stacks, in empty slabs, or with dead processes.
            if (attempt > 0) return 0;
            Recover();
        }
    }

    /// <summary>Takes a free block of the class: from this process's cache, else the global stack, else a new slab.</summary>
    private bool TryTakeBlock(int classIndex, out uint unit)
    {
        BlockLinks links = Links;
        if (CacheStack(Slot, classIndex).TryPop(out unit, links))
        {
            _cachedCount[classIndex]--;
            return true;
        }
        return GlobalStack(classIndex).TryPop(out unit, links) || TryTakeSlab(classIndex, out unit);
    }

    /// <summary>Marks a block just popped from a free stack as held by this process.</summary>
    /// <remarks>A plain store: the pop gave the block to this thread alone, and no process changes a Free word it did
    /// not pop (frees and sends refuse Free words; maintenance waits for quiescence). The checks stand in for a
    /// corrupt region.</remarks>
    private void TakeHold(uint unit, int classIndex)
    {
        if (ClassOfBlock(unit) != classIndex) throw Corrupt(Path, $"the free list of class {classIndex} holds unit {unit}, which is not a block of that class");
        uint* word = OwnerOf(unit);
        uint seen = Volatile.Read(ref *word);
        if (seen != OwnerWord.Free) throw Corrupt(Path, $"unit {unit} was in a free list but is {OwnerWord.Describe(seen)}");
        Volatile.Write(ref *word, OwnerWord.Held(Slot));
    }

    /// <summary>Takes a received block out of <paramref name="channel"/>: its owner word goes from InChannel to
    /// <paramref name="holder"/>.</summary>
    /// <remarks>A plain store: an InChannel word changes only by its one receiver, the thread that claimed its cell
    /// (frees and sends refuse it; maintenance waits for quiescence).</remarks>
    /// <returns>False, with nothing written, when the word is not InChannel of this channel: a corrupt region.</returns>
    private bool TryTakeFromChannel(uint unit, int channel, uint holder, out uint seen)
    {
        uint* word = OwnerOf(unit);
        seen = Volatile.Read(ref *word);
        if (seen != OwnerWord.InChannel(channel)) return false;
        Volatile.Write(ref *word, holder);
        return true;
    }

    /// <summary>Takes a slab for the class (a freed one, else one never used), returns its first block and pushes
    /// the rest onto this process's cache as one chain.</summary>
    private bool TryTakeSlab(int classIndex, out uint unit)
    {
        unit = 0;
        if (!Header.FreeSlabs.TryPop(out uint slab, SlabStackLinks))
        {
            while (true)
            {
                long carved = CarvedSlabs();
                if (carved == Layout.SlabCount) return false;
                // Loses to another process carving the same slab: read the count again.
                if (Interlocked.CompareExchange(ref Header.SlabsCarved, carved + 1, carved) == carved)
                {
                    slab = (uint)carved;
                    break;
                }
            }
        }
        // The class is set before any block of the slab is pushed, so that every pushed block validates. A slab
        // popped from the free slabs or just carved has no class; one that has is in use, and the free-slab list
        // that led here is corrupt: cutting the slab anew would hand out blocks that others hold. Fails only then
        // (no other thread can hold this slab: popping or carving gave it to this one alone).
        uint previousClass = Interlocked.CompareExchange(ref Slab(slab)->ClassPlusOne, (uint)classIndex + 1, 0);
        if (previousClass != 0) throw Corrupt(Path, $"slab {slab} was taken as free but has class {previousClass - 1}");
        uint first = Layout.SlabAreaUnit + slab * Layout.SlabUnits;
        uint step = Layout.BlockUnits[classIndex];
        uint count = Layout.BlocksPerSlab[classIndex];
        if (count > 1)
        {
            uint last = first + (count - 1) * step;
            for (uint block = first + step; block < last; block += step)
                *(int*)Address(block) = (int)(block + step + 1);
            CacheStack(Slot, classIndex).PushChain(first + step, last, Links);
            _cachedCount[classIndex] += (int)count - 1;
        }
        unit = first;
        return true;
    }

    /// <summary>Frees a block held by any process (or by none, if it was received and not yet freed).</summary>
    /// <exception cref="ArgumentException">Not a block of this heap, already free, or in a channel.</exception>
    public void Free(long offset)
    {
        Enter();
        try
        {
            uint unit = UnitOfOffset(offset, out int classIndex);
            uint* word = OwnerOf(unit);
            uint seen = Volatile.Read(ref *word);
            while (true)
            {
                if (seen == OwnerWord.Free)
                    throw new ArgumentException($"the block at offset {offset} of the shared heap {Path} is already free (double free), or was never allocated.", nameof(offset));
                if (OwnerWord.IsInChannel(seen))
                    throw new ArgumentException($"the block at offset {offset} of the shared heap {Path} is in a channel; only its receiver may free it.", nameof(offset));
                // Loses to another process freeing or sending the same block: the loop reports what it did.
                uint previous = Interlocked.CompareExchange(ref *word, OwnerWord.Free, seen);
                if (previous == seen) break;
                seen = previous;
            }
            CacheFreed(unit, classIndex);
        }
        finally
        {
            Exit();
        }
    }

    /// <summary>Pushes a block just made Free onto this process's cache, trimming the cache when it grew too long.</summary>
    private void CacheFreed(uint unit, int classIndex)
    {
        CacheStack(Slot, classIndex).Push(unit, Links);
        if (++_cachedCount[classIndex] > 2 * _cacheKeep[classIndex]) TrimCache(classIndex);
    }

    /// <summary>Keeps <see cref="_cacheKeep"/> blocks of a class in this process's cache and moves the rest to the
    /// global stack, so that the process that frees does not hoard what another allocates.</summary>
    private void TrimCache(int classIndex)
    {
        BlockLinks links = Links;
        uint top = CacheStack(Slot, classIndex).TakeAll();
        if (top == 0)
        {
            _cachedCount[classIndex] = 0;
            return;
        }
        int keep = _cacheKeep[classIndex];
        uint keptFirst = top - 1, keptLast = keptFirst, unit = keptFirst;
        int kept = 1;
        ulong steps = 0;
        // Walk the chain (it is this thread's alone now): the first `keep` blocks go back, the rest go global.
        while (true)
        {
            if (++steps > Layout.TotalSlabUnits) throw Corrupt(Path, $"the cache of class {classIndex} loops");
            uint next = (uint)*links.LinkOf(unit);
            if (next == 0) break;
            if (kept == keep)
            {
                uint restLast = next - 1;
                while (true)
                {
                    uint after = (uint)*links.LinkOf(restLast);
                    if (after == 0) break;
                    if (++steps > Layout.TotalSlabUnits) throw Corrupt(Path, $"the cache of class {classIndex} loops");
                    restLast = after - 1;
                }
                GlobalStack(classIndex).PushChain(next - 1, restLast, links);
                break;
            }
            unit = next - 1;
            keptLast = unit;
            kept++;
        }
        CacheStack(Slot, classIndex).PushChain(keptFirst, keptLast, links);
        _cachedCount[classIndex] = kept;
    }

    /// <summary><see cref="RegionHeader.SlabsCarved"/>, which only grows from 0 to the slab count; any other value
    /// is corrupt, and would make a slab index outside the slab table.</summary>
    private long CarvedSlabs()
    {
        long carved = Volatile.Read(ref Header.SlabsCarved);
        if (carved < 0 || carved > Layout.SlabCount) throw Corrupt(Path, $"{carved} of {Layout.SlabCount} slabs are said to be carved");
        return carved;
    }

    /// <summary>The capacity of the block at a unit: the size of its class.</summary>
    internal int CapacityOf(uint unit)
    {
        int classIndex = ClassOfBlock(unit);
        if (classIndex < 0) throw new ArgumentException($"unit {unit} is not the start of a block of the shared heap {Path}.", "offset");
        return (int)SharedSizeClasses.BlockBytes(classIndex);
    }
}
