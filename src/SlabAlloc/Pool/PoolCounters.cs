namespace SlabAlloc.Pool;

/// <summary>
/// Counts what the shared pool did. Updated only on pool operations (thread-cache misses and slab
/// hand-overs), never on the allocation fast path, with one atomic add per event.
/// </summary>
internal sealed class PoolCounters
{
    /// <summary>Acquisitions served by stage 1 (a listed slab of the class), 2 (claimed slots), 3 (new superslab).</summary>
    public long Stage1, Stage2, Stage3;
    /// <summary>Of <see cref="Stage1"/>: partial slabs, whose blocks still out were handed out by another thread.</summary>
    public long Stage1Partial;
    /// <summary>Slabs whose slots were released (decommitted), beyond the empty-list bound or by a trim.</summary>
    public long ReleasedToUnused;
    /// <summary>Sweeps of the partial lists for slabs emptied by remote frees (the periodic upkeep's).</summary>
    public long PartialSweeps;
    /// <summary>Slabs those sweeps (and trims) found emptied by remote frees in the partial lists.</summary>
    public long PartialsEmptied;
    /// <summary>Sweeps that stopped on their budget, with slabs perhaps still to look at.</summary>
    public long SweepsCutShort;

    public void Add(ref long counter) => Interlocked.Increment(ref counter);
}
