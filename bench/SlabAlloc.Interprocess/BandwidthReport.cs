using System.Globalization;
using System.Text;

namespace SlabAlloc.Interprocess;

/// <summary>The bandwidth tables (docs/results/ipc-bandwidth.md): MB/s by transport and chunk size, then each
/// configuration's counters per chunk.</summary>
internal static class BandwidthReport
{
    public static string Tables(IReadOnlyList<RunResult> all, Options options)
    {
        RunResult[] kept = Suite.Kept(all).ToArray(), counted = Suite.Counted(all).ToArray();
        var md = new StringBuilder();
        int[] chunks = options.ChunkSizes.ToArray();
        md.AppendLine(string.Create(CultureInfo.InvariantCulture, $"## Bandwidth, MB/s, {Sizes.Format(options.TotalBytes)} per run: median [min-max]"));
        md.AppendLine();
        md.AppendLine("| transport | " + string.Join(" | ", chunks.Select(s => Sizes.Format(s))) + " |");
        md.AppendLine("|---|" + string.Concat(chunks.Select(_ => "--:|")));
        foreach (string transport in options.Transports)
        {
            IEnumerable<string> cells = chunks.Select(chunk =>
            {
                RunResult[] runs = Of(kept, transport, chunk);
                return runs.Length == 0 ? "" : Spread.Of(runs.Select(r => r.MegabytesPerSecond)).Format("F0");
            });
            md.AppendLine($"| {transport} | {string.Join(" | ", cells)} |");
        }
        md.AppendLine();
        md.AppendLine("## Each configuration");
        md.AppendLine();
        md.AppendLine("Medians of the timed runs. A message is a chunk; CPU is user+system µs per chunk; the counters are per chunk, client (writer) / server (reader). `MB/s perf` is the run with perf attached, which gave the syscall and futex counts.");
        md.AppendLine();
        md.AppendLine("| chunk | transport | chunks | time ms | MB/s perf | " + Counters.Headings + " |");
        md.AppendLine("|---|---|--:|--:|--:|" + Counters.Alignment);
        foreach (int chunk in chunks)
            foreach (string transport in options.Transports)
            {
                RunResult[] runs = Of(kept, transport, chunk), perf = Of(counted, transport, chunk);
                if (runs.Length == 0) continue;
                string perfRate = perf.Length == 0 ? "" : Spread.Of(perf.Select(r => r.MegabytesPerSecond)).Median.ToString("F0", CultureInfo.InvariantCulture);
                md.AppendLine(string.Create(CultureInfo.InvariantCulture,
                    $"| {Sizes.Format(chunk)} | {transport} | {runs[0].Plan.Count:N0} | {Spread.Of(runs.Select(r => r.Seconds * 1e3)).Median:F2} | {perfRate} | {Counters.Cells(runs, perf)} |"));
            }
        return md.ToString();
    }

    private static RunResult[] Of(IReadOnlyList<RunResult> kept, string transport, int chunk) =>
        kept.Where(r => r.Plan.SizeBytes == chunk && r.Plan.Transport == transport).ToArray();
}
