using System.Text.Json;

namespace SlabAlloc.Workloads;

/// <summary>
/// Everything one benchmark run measured: the throughput and the counts that explain it. Printed as
/// one JSON line with <c>--json</c>, which is how <c>compare</c> collects runs from child processes.
/// </summary>
internal sealed record RunFigures
{
    public required string Workload { get; init; }
    public required string Allocator { get; init; }
    public required int Threads { get; init; }
    public required long Operations { get; init; }
    public required double Seconds { get; init; }
    public double OpsPerSecond => Seconds <= 0 ? 0 : Operations / Seconds;
    public string? Pool { get; init; }
    public string? Preload { get; init; }
    public long LockAcquisitions { get; init; }
    public long AcquireSlabLocks { get; init; }
    public long ReleaseSlabLocks { get; init; }
    public long ContendedAcquisitions { get; init; }
    public long BlockedAcquisitions { get; init; }
    public double LockRate { get; init; }
    public long CasRetries { get; init; }
    public long VoluntaryContextSwitches { get; init; }
    public long InvoluntaryContextSwitches { get; init; }
    public long MinorPageFaults { get; init; }
    public long MajorPageFaults { get; init; }
    public long PeakRssKiB { get; init; }
    public long ThreadsCreated { get; init; }

    /// <summary>Process RSS (KiB) just before the workload's first allocation (see <see cref="RunOutcome.BaselineRssKiB"/>); 0 if not measured.</summary>
    public long BaselineRssKiB { get; init; }

    /// <summary><see cref="PeakRssKiB"/> less <see cref="BaselineRssKiB"/>: the allocator's footprint (and the
    /// workload's threads') beyond the .NET runtime's; 0 if the baseline was not measured.</summary>
    public long RssGrowthKiB => BaselineRssKiB <= 0 ? 0 : PeakRssKiB - BaselineRssKiB;

    /// <summary>The most bytes the workload held at once, as requested sizes (see the workload for how it is sampled); 0 if not measured.</summary>
    public long LiveBytesPeak { get; init; }

    /// <summary>SlabAlloc only: its mapped bytes, sampled by the workload (see there); 0 otherwise.</summary>
    public long SlabMappedBytes { get; init; }

    /// <summary>SlabAlloc only, over the run: frees, and of them the remote ones (see <see cref="SlabStatistics.RemoteFrees"/>)
    /// with those into ended threads' slabs and into unowned slabs; slabs let go with blocks out, and partial
    /// slabs adopted. 0 for other allocators.</summary>
    public long Frees { get; init; }
    /// <inheritdoc cref="Frees"/>
    public long RemoteFrees { get; init; }
    /// <inheritdoc cref="Frees"/>
    public long RemoteFreesToEndedThreads { get; init; }
    /// <inheritdoc cref="Frees"/>
    public long RemoteFreesToUnownedSlabs { get; init; }
    /// <inheritdoc cref="Frees"/>
    public long SlabsLetGoInUse { get; init; }
    /// <inheritdoc cref="Frees"/>
    public long PartialSlabsAdopted { get; init; }

    /// <summary>Measures <paramref name="body"/>, which returns what it did and the memory figures it knows,
    /// with the process counters and the allocator's lock statistics taken around it.</summary>
    public static RunFigures Measure(string workload, string allocator, int threads, Func<RunOutcome> body)
    {
        bool slab = allocator == SlabAllocator.Name;
        SlabLockStatistics? locksBefore = slab ? SlabMemory.GetLockStatistics() : null;
        SlabStatistics? statsBefore = slab ? SlabMemory.GetStatistics() : null;
        ProcessCounters before = ProcessCounters.Read();
        RunOutcome outcome = body();
        ProcessCounters process = ProcessCounters.Read().Since(before);
        SlabLockStatistics? locks = slab ? SlabMemory.GetLockStatistics() : null;
        SlabStatistics? stats = slab ? SlabMemory.GetStatistics() : null;
        long StatsDelta(Func<SlabStatistics, long> f) => stats is null ? 0 : f(stats) - f(statsBefore!);
        long Delta(Func<SlabLockStatistics, long> f) => locks is null ? 0 : f(locks) - f(locksBefore!);
        long lockAcquisitions = Delta(l => l.LockAcquisitions);
        long allocatorOps = Delta(l => l.AllocatorOperations);
        return new RunFigures
        {
            Workload = workload,
            Allocator = allocator,
            Threads = threads,
            Operations = outcome.Ops,
            Seconds = outcome.Seconds,
            Pool = slab ? (locks!.Pool == SlabPoolKind.Mutex ? "mutex" : "lockfree") : null,
            Preload = Environment.GetEnvironmentVariable("LD_PRELOAD") is { Length: > 0 } p ? Path.GetFileName(p) : null,
            LockAcquisitions = lockAcquisitions,
            AcquireSlabLocks = Delta(l => l.AcquireSlabLocks),
            ReleaseSlabLocks = Delta(l => l.ReleaseSlabLocks),
            ContendedAcquisitions = Delta(l => l.ContendedAcquisitions),
            BlockedAcquisitions = Delta(l => l.BlockedAcquisitions),
            LockRate = allocatorOps == 0 ? 0 : (double)lockAcquisitions / allocatorOps,
            CasRetries = Delta(l => l.CasRetries),
            VoluntaryContextSwitches = process.VoluntaryContextSwitches,
            InvoluntaryContextSwitches = process.InvoluntaryContextSwitches,
            MinorPageFaults = process.MinorPageFaults,
            MajorPageFaults = process.MajorPageFaults,
            PeakRssKiB = ResidentMemory.PeakKiB(),
            ThreadsCreated = outcome.ThreadsCreated,
            BaselineRssKiB = outcome.BaselineRssKiB,
            LiveBytesPeak = outcome.LiveBytesPeak,
            SlabMappedBytes = slab ? outcome.SlabMappedBytes : 0,
            Frees = Delta(l => l.Frees),
            RemoteFrees = StatsDelta(s => s.RemoteFrees),
            RemoteFreesToEndedThreads = StatsDelta(s => s.RemoteFreesToEndedThreads),
            RemoteFreesToUnownedSlabs = StatsDelta(s => s.RemoteFreesToUnownedSlabs),
            SlabsLetGoInUse = StatsDelta(s => s.SlabsLetGoInUse),
            PartialSlabsAdopted = StatsDelta(s => s.PartialSlabsAdopted),
        };
    }

    public string ToJson() => JsonSerializer.Serialize(this, BenchJson.Default.RunFigures);

    public static RunFigures FromJson(string line) =>
        JsonSerializer.Deserialize(line, BenchJson.Default.RunFigures) ?? throw new FormatException("empty run figures");
}
