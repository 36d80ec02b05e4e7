using System.Globalization;
using System.Text.Json;

namespace SlabAlloc.Bench;

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

    /// <summary>Measures <paramref name="body"/>, which returns (operations, seconds, threads created),
    /// with the process counters and the allocator's lock statistics taken around it.</summary>
    public static RunFigures Measure(string workload, string allocator, int threads, Func<(long Ops, double Seconds, long ThreadsCreated)> body)
    {
        bool slab = allocator == SlabAllocator.Name;
        SlabLockStatistics? locksBefore = slab ? SlabMemory.GetLockStatistics() : null;
        ProcessCounters before = ProcessCounters.Read();
        var (ops, seconds, created) = body();
        ProcessCounters process = ProcessCounters.Read().Since(before);
        SlabLockStatistics? locks = slab ? SlabMemory.GetLockStatistics() : null;
        long Delta(Func<SlabLockStatistics, long> f) => locks is null ? 0 : f(locks) - f(locksBefore!);
        long lockAcquisitions = Delta(l => l.LockAcquisitions);
        long allocatorOps = Delta(l => l.AllocatorOperations);
        return new RunFigures
        {
            Workload = workload,
            Allocator = allocator,
            Threads = threads,
            Operations = ops,
            Seconds = seconds,
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
            PeakRssKiB = ReadPeakRssKiB(),
            ThreadsCreated = created,
        };
    }

    public string ToJson() => JsonSerializer.Serialize(this, BenchJson.Default.RunFigures);

    public static RunFigures FromJson(string line) =>
        JsonSerializer.Deserialize(line, BenchJson.Default.RunFigures) ?? throw new FormatException("empty run figures");

    private static long ReadPeakRssKiB()
    {
        if (!OperatingSystem.IsLinux()) return 0;
        foreach (string line in File.ReadLines("/proc/self/status"))
            if (line.StartsWith("VmHWM:", StringComparison.Ordinal))
                return long.Parse(line[6..].Replace("kB", "").Trim(), CultureInfo.InvariantCulture);
        return 0;
    }
}
