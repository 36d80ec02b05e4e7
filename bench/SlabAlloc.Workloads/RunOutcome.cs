namespace SlabAlloc.Workloads;

/// <summary>What a workload's body reports to <see cref="RunFigures.Measure"/>: the operations it did
/// and how long they took, and the memory figures only the workload itself can know.</summary>
/// <param name="Ops">Operations done in the timed part.</param>
/// <param name="Seconds">Length of the timed part.</param>
/// <param name="ThreadsCreated">Worker threads started.</param>
/// <remarks>The memory figures are 0 when the workload does not measure them.</remarks>
internal readonly record struct RunOutcome(long Ops, double Seconds, long ThreadsCreated)
{
    /// <summary>Process RSS (KiB) once the harness's own arrays exist and just before the first
    /// allocation of the workload: the .NET runtime's footprint, which the allocator's is measured beyond.</summary>
    public long BaselineRssKiB { get; init; }

    /// <summary>The most bytes the workload held at once, as requested sizes (before any rounding).</summary>
    public long LiveBytesPeak { get; init; }

    /// <summary>SlabAlloc's <see cref="SlabStatistics.BytesMapped"/>, sampled where the workload says.</summary>
    public long SlabMappedBytes { get; init; }
}
