namespace SlabAlloc;

/// <summary>
/// What a <see cref="SharedHeap"/> holds, counted from its shared tables by <see cref="SharedHeap.GetStatistics"/>
/// (exact when no process is working on the heap), and what maintenance has done since the heap was created.
/// </summary>
public sealed record SharedHeapStatistics
{
    /// <summary>Processes (open instances) using the heap.</summary>
    public int Processes { get; init; }
    /// <summary>The region's size in bytes, tables included.</summary>
    public long RegionBytes { get; init; }
    /// <summary>The slab size, which is also the largest block.</summary>
    public long SlabBytes { get; init; }
    /// <summary>How many slabs the region holds.</summary>
    public int SlabCount { get; init; }
    /// <summary>Slabs cut into blocks of some size.</summary>
    public long SlabsInUse { get; init; }
    /// <summary>Slabs no process has touched yet (their pages cost no memory).</summary>
    public long SlabsNeverUsed { get; init; }
    /// <summary>Blocks allocated and not freed, by any process (blocks in channels not included).</summary>
    public long BlocksHeld { get; init; }
    /// <summary>The capacity of <see cref="BlocksHeld"/> in bytes.</summary>
    public long BytesHeld { get; init; }
    /// <summary>Of <see cref="BlocksHeld"/>, those held by this instance.</summary>
    public long BlocksHeldHere { get; init; }
    /// <summary>Blocks sent and not yet received.</summary>
    public long BlocksInChannels { get; init; }
    /// <summary>Free blocks in slabs in use (in caches and free lists).</summary>
    public long FreeBlocksInSlabsInUse { get; init; }
    /// <summary>Maintenance passes run.</summary>
    public long MaintenanceRuns { get; init; }
    /// <summary>Processes found dead and recovered.</summary>
    public long ProcessesRecovered { get; init; }
    /// <summary>Blocks freed by maintenance: held by processes that died or left without freeing them.</summary>
    public long BlocksReclaimed { get; init; }
    /// <summary>Empty slabs maintenance returned to the free slabs, for any size class to take.</summary>
    public long SlabsReturned { get; init; }
    /// <summary>Messages lost because their sender or receiver died in the middle of the send or receive.</summary>
    public long MessagesDropped { get; init; }
    /// <summary>Instances that have opened the heap since it was created.</summary>
    public long ProcessesJoined { get; init; }
}
