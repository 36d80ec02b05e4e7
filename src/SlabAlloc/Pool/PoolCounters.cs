namespace SlabAlloc.Pool;

/// <summary>
/// Counts what the shared pool did. Updated only on pool operations (thread-cache misses and slab
/// hand-overs), never on the allocation fast path, with one atomic add per event.
/// </summary>
internal sealed class PoolCounters
{
    /// <summary>Acquisitions served by stage 1 (a listed slab of the class), 2 (claimed slots), 3 (new superslab).</summary>
    public long Stage1, Stage2, Stage3;
    /// <summary>Acquisitions that failed because the system refused memory.</summary>
    public long Failed;
    /// <summary>Slabs released: put on the empty list, or their slots freed.</summary>
    public long ReleasedToEmptyList, ReleasedToUnused;
    /// <summary>Slabs published to a partial list.</summary>
    public long PublishedPartial;

    public void Add(ref long counter) => Interlocked.Increment(ref counter);
}
