namespace SlabAlloc.Interprocess;

internal sealed unsafe partial class HeapRegion
{
    /// <summary>What the owner words and tables say at the moment of a walk (exact when the heap is at rest).</summary>
    public readonly record struct Census(
        int Processes, long SlabsInUse, long SlabsNeverUsed, long BlocksHeld, long BytesHeld,
        long BlocksHeldHere, long BlocksInChannels, long FreeBlocksInSlabsInUse);

    /// <summary>Walks the process table, the slab table and every owner word of the slabs in use. Costs
    /// O(slab area / 64 bytes); no lock, so figures taken while processes work are a blur, not a snapshot.</summary>
    public Census TakeCensus()
    {
        Use();
        try
        {
            return TakeCensusOfRegion();
        }
        finally
        {
            Unuse();
        }
    }

    private Census TakeCensusOfRegion()
    {
        int processes = 0;
        for (int slot = 0; slot < Layout.ProcessSlots; slot++)
            if (Volatile.Read(ref Record(slot)->Identity) != 0) processes++;
        long carved = CarvedSlabs();
        long slabsInUse = 0, held = 0, bytesHeld = 0, heldHere = 0, inChannels = 0, free = 0;
        uint mine = OwnerWord.Held(Slot);
        for (uint slab = 0; slab < carved; slab++)
        {
            uint classPlusOne = Volatile.Read(ref Slab(slab)->ClassPlusOne);
            if (classPlusOne == 0 || classPlusOne > (uint)Layout.ClassCount) continue;
            slabsInUse++;
            int classIndex = (int)classPlusOne - 1;
            uint step = Layout.BlockUnits[classIndex];
            uint first = Layout.SlabAreaUnit + slab * Layout.SlabUnits;
            uint end = first + Layout.BlocksPerSlab[classIndex] * step;
            for (uint unit = first; unit < end; unit += step)
            {
                uint word = Volatile.Read(ref *OwnerOf(unit));
                if (word == OwnerWord.Free) free++;
                else if (OwnerWord.IsInChannel(word)) inChannels++;
                else
                {
                    held++;
                    bytesHeld += (long)SharedSizeClasses.BlockBytes(classIndex);
                    if (word == mine) heldHere++;
                }
            }
        }
        return new Census(processes, slabsInUse, Layout.SlabCount - carved, held, bytesHeld, heldHere, inChannels, free);
    }

    /// <summary>The maintenance counters of the header.</summary>
    public readonly record struct Counters(long MaintenanceRuns, long ProcessesRecovered, long BlocksReclaimed,
        long SlabsReturned, long MessagesDropped, long ProcessesJoined);

    public Counters ReadCounters()
    {
        Use();
        try
        {
            return new(
                Volatile.Read(ref Header.MaintenanceRuns), Volatile.Read(ref Header.ProcessesRecovered),
                Volatile.Read(ref Header.BlocksReclaimed), Volatile.Read(ref Header.SlabsReturned),
                Volatile.Read(ref Header.MessagesDropped), Volatile.Read(ref Header.ProcessesJoined));
        }
        finally
        {
            Unuse();
        }
    }
}
