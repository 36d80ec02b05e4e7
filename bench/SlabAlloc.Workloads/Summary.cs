using System.Globalization;
using System.Text;

namespace SlabAlloc.Workloads;

/// <summary>The comparison's cells reduced to medians, with the ratios that make them comparable.</summary>
internal sealed class Summary
{
    public sealed record Row(
        Cell Cell, int Runs, double MedianOps, double MinOps, double MaxOps, double? SpeedUp, double? VsGlibc,
        long LockAcquisitions, long AcquireSlabLocks, long ReleaseSlabLocks, double LockRate, long Contended, long Blocked,
        long CasRetries, long VoluntaryCs, long InvoluntaryCs, long MinorFaults, long MajorFaults, long PeakRssKiB,
        long LiveBytesPeak, long BaselineRssKiB, long RssGrowthKiB, long SlabMappedBytes,
        long Frees, long RemoteFrees, long RemoteFreesToEndedThreads, long RemoteFreesToUnownedSlabs, long SlabsLetGoInUse, long PartialSlabsAdopted);

    public IReadOnlyList<Row> Rows { get; }
    public IReadOnlyList<string> Contenders { get; }
    private readonly List<(Cell Cell, RunFigures Figures)> _runs;

    private Summary(IReadOnlyList<Row> rows, IReadOnlyList<string> contenders, List<(Cell, RunFigures)> runs)
    {
        Rows = rows;
        Contenders = contenders;
        _runs = runs;
    }

    public static Summary Build(List<(Cell Cell, RunFigures Figures)> runs, IReadOnlyList<string> contenders)
    {
        var medians = runs.GroupBy(r => r.Cell).ToDictionary(g => g.Key, g => Median(g.Select(r => r.Figures.OpsPerSecond)));
        var rows = new List<Row>();
        foreach (var group in runs.GroupBy(r => r.Cell).OrderBy(g => g.Key.Workload).ThenBy(g => g.Key.Threads).ThenBy(g => Order(contenders, g.Key.Contender)))
        {
            Cell c = group.Key;
            var figures = group.Select(r => r.Figures).ToList();
            double median = medians[c];
            double? speedUp = medians.TryGetValue(c with { Threads = 1 }, out double one) && one > 0 ? median / one : null;
            double? vsGlibc = medians.TryGetValue(c with { Contender = Contender.Glibc }, out double glibc) && glibc > 0 ? median / glibc : null;
            long M(Func<RunFigures, long> f) => (long)Median(figures.Select(x => (double)f(x)));
            rows.Add(new Row(c, figures.Count, median, figures.Min(f => f.OpsPerSecond), figures.Max(f => f.OpsPerSecond), speedUp, vsGlibc,
                M(f => f.LockAcquisitions), M(f => f.AcquireSlabLocks), M(f => f.ReleaseSlabLocks), Median(figures.Select(f => f.LockRate)),
                M(f => f.ContendedAcquisitions), M(f => f.BlockedAcquisitions), M(f => f.CasRetries),
                M(f => f.VoluntaryContextSwitches), M(f => f.InvoluntaryContextSwitches), M(f => f.MinorPageFaults), M(f => f.MajorPageFaults), M(f => f.PeakRssKiB),
                M(f => f.LiveBytesPeak), M(f => f.BaselineRssKiB), M(f => f.RssGrowthKiB), M(f => f.SlabMappedBytes),
                M(f => f.Frees), M(f => f.RemoteFrees), M(f => f.RemoteFreesToEndedThreads), M(f => f.RemoteFreesToUnownedSlabs),
                M(f => f.SlabsLetGoInUse), M(f => f.PartialSlabsAdopted)));
        }
        return new Summary(rows, contenders, runs);
    }

    /// <summary>True when every lock-free run took exactly zero locks.</summary>
    public bool LockFreeTookNoLock => _runs.Where(r => r.Cell.Contender == "slab-lockfree").All(r => r.Figures.LockAcquisitions == 0);

    public string LockCheck()
    {
        var lockFree = _runs.Where(r => r.Cell.Contender == "slab-lockfree").ToList();
        var mutex = _runs.Where(r => r.Cell.Contender == "slab-mutex").ToList();
        return string.Create(CultureInfo.InvariantCulture,
            $"lock check: slab-lockfree took {lockFree.Sum(r => r.Figures.LockAcquisitions)} lock acquisitions in {lockFree.Count} runs" +
            $" ({(LockFreeTookNoLock ? "zero, as it must" : "NOT ZERO")}); slab-mutex took acquire_slab {mutex.Sum(r => r.Figures.AcquireSlabLocks)}," +
            $" release_slab {mutex.Sum(r => r.Figures.ReleaseSlabLocks)}, contended {mutex.Sum(r => r.Figures.ContendedAcquisitions)}," +
            $" blocked {mutex.Sum(r => r.Figures.BlockedAcquisitions)} in {mutex.Count} runs");
    }

    private static readonly string[] Headers =
        ["workload", "T", "allocator", "Mops/s median", "min", "max", "x 1T", "x glibc", "locks", "lock rate", "contended", "blocked", "CAS retries", "vol cs", "invol cs", "minor faults", "peak RSS MiB",
         "live MiB", "RSS growth MiB"];

    private IEnumerable<string[]> Cells() => Rows.Select(r => new[]
    {
        r.Cell.Workload, r.Cell.Threads.ToString(CultureInfo.InvariantCulture), r.Cell.Contender,
        Mops(r.MedianOps), Mops(r.MinOps), Mops(r.MaxOps), Ratio(r.SpeedUp), Ratio(r.VsGlibc),
        Slab(r, r.LockAcquisitions), Slab(r, r.LockRate, rate: true), Slab(r, r.Contended), Slab(r, r.Blocked), Slab(r, r.CasRetries),
        N(r.VoluntaryCs), N(r.InvoluntaryCs), N(r.MinorFaults), (r.PeakRssKiB / 1024.0).ToString("F0", CultureInfo.InvariantCulture),
        r.LiveBytesPeak > 0 ? MiB(r.LiveBytesPeak) : "-", r.BaselineRssKiB > 0 ? MiB(r.RssGrowthKiB * 1024) : "-",
    });

    /// <summary>Limits of memory target (a): Larson's peak RSS at most 1.3 x live bytes + 16 MiB.</summary>
    private const double LiveFactor = 1.3;
    private const long LiveAllowanceBytes = 16L << 20;

    /// <summary>
    /// Evaluates memory target (a) on the Larson rows: "in Larson's steady state, SlabAlloc's peak RSS is
    /// at most mimalloc's in the same run, and at most 1.3x the live bytes plus 16 MiB". Both sides are
    /// compared as RSS growth (peak RSS less the baseline read before the first allocation), so that
    /// the .NET runtime's own footprint, the same under every allocator, is left out; the medians of
    /// the cells are compared. One line per thread count, for SlabAlloc's lock-free pool.
    /// </summary>
    public string MemoryTarget()
    {
        var sb = new StringBuilder("memory target (a), Larson RSS growth (peak RSS - baseline), slab-lockfree vs mimalloc and vs 1.3 x live + 16 MiB:\n");
        var larson = Rows.Where(r => r.Cell.Workload == "larson").ToList();
        foreach (int t in larson.Select(r => r.Cell.Threads).Distinct().Order())
        {
            Row? slab = larson.FirstOrDefault(r => r.Cell.Threads == t && r.Cell.Contender == "slab-lockfree");
            Row? mimalloc = larson.FirstOrDefault(r => r.Cell.Threads == t && r.Cell.Contender == "mimalloc");
            sb.Append(CultureInfo.InvariantCulture, $"- T={t}: ");
            if (slab is null || slab.BaselineRssKiB <= 0 || slab.LiveBytesPeak <= 0)
            {
                sb.Append("no slab-lockfree run with memory figures\n");
                continue;
            }
            long growth = slab.RssGrowthKiB * 1024;
            sb.Append(CultureInfo.InvariantCulture, $"slab-lockfree {MiB(growth)} MiB; ");
            if (mimalloc is null || mimalloc.BaselineRssKiB <= 0) sb.Append("mimalloc not run; ");
            else
            {
                long other = mimalloc.RssGrowthKiB * 1024;
                string ratio = other > 0 ? ((double)growth / other).ToString("F2", CultureInfo.InvariantCulture) + "x" : "-";
                sb.Append(CultureInfo.InvariantCulture, $"mimalloc {MiB(other)} MiB, ratio {ratio} ({(growth <= other ? "met" : "missed")}); ");
            }
            long bound = (long)(LiveFactor * slab.LiveBytesPeak) + LiveAllowanceBytes;
            sb.Append(CultureInfo.InvariantCulture, $"bound 1.3 x {MiB(slab.LiveBytesPeak)} live + 16 = {MiB(bound)} MiB ({(growth <= bound ? "met" : "missed")})\n");
        }
        return sb.ToString().TrimEnd('\n');
    }

    public string ToTerminalTable()
    {
        var table = new List<string[]> { Headers };
        table.AddRange(Cells());
        int[] widths = Enumerable.Range(0, Headers.Length).Select(i => table.Max(row => row[i].Length)).ToArray();
        var sb = new StringBuilder();
        string? lastWorkload = null;
        foreach (string[] row in table)
        {
            if (row != Headers && row[0] != lastWorkload && lastWorkload != null) sb.Append('\n');
            if (row != Headers) lastWorkload = row[0];
            for (int i = 0; i < row.Length; i++)
                sb.Append(i < 3 ? row[i].PadRight(widths[i]) : row[i].PadLeft(widths[i])).Append("  ");
            sb.Append('\n');
        }
        return sb.ToString();
    }

    public string ToMarkdown()
    {
        var sb = new StringBuilder();
        sb.Append("| ").Append(string.Join(" | ", Headers)).Append(" |\n");
        sb.Append('|').Append(string.Concat(Headers.Select((_, i) => i < 3 ? "---|" : "---:|"))).Append('\n');
        foreach (string[] row in Cells()) sb.Append("| ").Append(string.Join(" | ", row)).Append(" |\n");
        return sb.ToString();
    }

    public string ToCsv()
    {
        var sb = new StringBuilder("workload,threads,allocator,runs,ops_per_sec_median,ops_per_sec_min,ops_per_sec_max,speedup_vs_1t,ratio_vs_glibc,lock_acquisitions,acquire_slab_locks,release_slab_locks,lock_rate,contended,blocked,cas_retries,voluntary_cs,involuntary_cs,minor_faults,major_faults,peak_rss_kib,live_bytes_peak,baseline_rss_kib,rss_growth_kib,slab_mapped_bytes,frees,remote_frees,remote_frees_to_ended_threads,remote_frees_to_unowned_slabs,slabs_let_go_in_use,partial_slabs_adopted\n");
        foreach (Row r in Rows)
            sb.Append(string.Create(CultureInfo.InvariantCulture,
                $"{r.Cell.Workload},{r.Cell.Threads},{r.Cell.Contender},{r.Runs},{r.MedianOps:F0},{r.MinOps:F0},{r.MaxOps:F0},{r.SpeedUp:F3},{r.VsGlibc:F3},{r.LockAcquisitions},{r.AcquireSlabLocks},{r.ReleaseSlabLocks},{r.LockRate:G6},{r.Contended},{r.Blocked},{r.CasRetries},{r.VoluntaryCs},{r.InvoluntaryCs},{r.MinorFaults},{r.MajorFaults},{r.PeakRssKiB},{r.LiveBytesPeak},{r.BaselineRssKiB},{r.RssGrowthKiB},{r.SlabMappedBytes},{r.Frees},{r.RemoteFrees},{r.RemoteFreesToEndedThreads},{r.RemoteFreesToUnownedSlabs},{r.SlabsLetGoInUse},{r.PartialSlabsAdopted}\n"));
        return sb.ToString();
    }

    private static bool IsSlab(Row r) => r.Cell.Contender.StartsWith("slab", StringComparison.Ordinal);
    private static string Slab(Row r, long value) => IsSlab(r) ? N(value) : "-";
    private static string Slab(Row r, double value, bool rate) => IsSlab(r) ? (value * 100).ToString("F3", CultureInfo.InvariantCulture) + "%" : "-";
    private static string N(long value) => value.ToString(CultureInfo.InvariantCulture);
    private static string MiB(long bytes) => (bytes / (1024.0 * 1024.0)).ToString("F1", CultureInfo.InvariantCulture);
    private static string Mops(double opsPerSecond) => (opsPerSecond / 1e6).ToString("F2", CultureInfo.InvariantCulture);
    private static string Ratio(double? r) => r is null ? "-" : r.Value.ToString("F2", CultureInfo.InvariantCulture);

    private static int Order(IReadOnlyList<string> contenders, string name)
    {
        for (int i = 0; i < contenders.Count; i++) if (contenders[i] == name) return i;
        return int.MaxValue;
    }

    public static double Median(IEnumerable<double> values)
    {
        double[] sorted = values.OrderBy(v => v).ToArray();
        if (sorted.Length == 0) return 0;
        int mid = sorted.Length / 2;
        return sorted.Length % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
    }
}
