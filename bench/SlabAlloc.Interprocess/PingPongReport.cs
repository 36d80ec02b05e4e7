using System.Globalization;
using System.Text;

namespace SlabAlloc.Interprocess;

/// <summary>The pingpong tables (docs/results/ipc-pingpong.md): round-trip p50 and p99 by transport and size,
/// then each configuration's throughput, tail and counters per message.</summary>
internal static class PingPongReport
{
    public static string Tables(IReadOnlyList<RunResult> all, Options options)
    {
        RunResult[] kept = Suite.Kept(all).ToArray(), counted = Suite.Counted(all).ToArray();
        var md = new StringBuilder();
        int[] sizes = options.PingPongSizes.ToArray();
        AppendGrid(md, "Round-trip latency p50, µs", kept, options, sizes, r => r.P50Us);
        AppendGrid(md, "Round-trip latency p99, µs", kept, options, sizes, r => r.P99Us);
        md.AppendLine("## Each configuration");
        md.AppendLine();
        md.AppendLine("Medians of the timed runs; rates as median [min-max]. CPU is user+system µs per message; the counters are per message, client / server. `p50 perf` is the round trip of the run with perf attached, which gave the syscall and futex counts.");
        md.AppendLine();
        md.AppendLine("| size | transport | round trips | messages/s | MB/s | p90 µs | p99.9 µs | max µs | p50 perf µs | " + Counters.Headings + " |");
        md.AppendLine("|---|---|--:|--:|--:|--:|--:|--:|--:|" + Counters.Alignment);
        foreach (int size in sizes)
            foreach (string transport in options.Transports)
            {
                RunResult[] runs = kept.Where(r => r.Plan.SizeBytes == size && r.Plan.Transport == transport).ToArray();
                RunResult[] perf = counted.Where(r => r.Plan.SizeBytes == size && r.Plan.Transport == transport).ToArray();
                if (runs.Length == 0) continue;
                md.AppendLine(string.Create(CultureInfo.InvariantCulture,
                    $"| {Sizes.Format(size)} | {transport} | {runs[0].Plan.Count:N0} | {Spread.Of(runs.Select(r => r.MessagesPerSecond)).Format("N0")} | {Spread.Of(runs.Select(r => r.MegabytesPerSecond)).Format("F0")} | "
                    + $"{Median(runs, r => r.P90Us):F1} | {Median(runs, r => r.P999Us):F1} | {Median(runs, r => r.MaxUs):F0} | {(perf.Length == 0 ? "" : Median(perf, r => r.P50Us).ToString("F1", CultureInfo.InvariantCulture))} | {Counters.Cells(runs, perf)} |"));
            }
        return md.ToString();
    }

    private static void AppendGrid(StringBuilder md, string title, IReadOnlyList<RunResult> kept, Options options, int[] sizes, Func<RunResult, double> value)
    {
        md.AppendLine($"## {title}: median [min-max]");
        md.AppendLine();
        md.AppendLine("| transport | " + string.Join(" | ", sizes.Select(s => Sizes.Format(s))) + " |");
        md.AppendLine("|---|" + string.Concat(sizes.Select(_ => "--:|")));
        foreach (string transport in options.Transports)
        {
            IEnumerable<string> cells = sizes.Select(size =>
            {
                RunResult[] runs = kept.Where(r => r.Plan.SizeBytes == size && r.Plan.Transport == transport).ToArray();
                return runs.Length == 0 ? "" : Spread.Of(runs.Select(value)).Format("F1");
            });
            md.AppendLine($"| {transport} | {string.Join(" | ", cells)} |");
        }
        md.AppendLine();
    }

    private static double Median(IEnumerable<RunResult> runs, Func<RunResult, double> value) => Spread.Of(runs.Select(value)).Median;
}
