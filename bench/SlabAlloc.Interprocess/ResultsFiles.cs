using System.Globalization;

namespace SlabAlloc.Interprocess;

/// <summary>Writes a suite's results: ipc-pingpong.md and .png, ipc-bandwidth.md and .png, and ipc-runs.csv.</summary>
internal static class ResultsFiles
{
    public static void Write(IReadOnlyList<RunResult> all, Options options, string command, DateTime startedUtc, TimeSpan elapsed, string loadAtStart)
    {
        Directory.CreateDirectory(options.OutputDirectory);
        bool perf = all.Any(r => r.PerfCounted);
        RunResult[] pingPong = all.Where(r => r.Plan.Workload == RunPlan.PingPong).ToArray();
        RunResult[] bandwidth = all.Where(r => r.Plan.Workload == RunPlan.Bandwidth).ToArray();
        string csvHeader = string.Create(CultureInfo.InvariantCulture, $"# {command} ({startedUtc:yyyy-MM-dd HH:mm} UTC)\n");
        File.WriteAllText(Path.Combine(options.OutputDirectory, "ipc-runs.csv"), csvHeader + RunsCsv.Text(all));
        if (pingPong.Length > 0)
        {
            string header = ReportHeader.Text("Interprocess round trips (pingpong)", command, startedUtc, elapsed, loadAtStart, options, perf);
            File.WriteAllText(Path.Combine(options.OutputDirectory, "ipc-pingpong.md"),
                $"{header}\n\n![round-trip p50 by message size](ipc-pingpong.png)\n\n{PingPongReport.Tables(pingPong, options)}");
            ResultCharts.PingPong(Suite.Kept(pingPong).ToArray(), options, Path.Combine(options.OutputDirectory, "ipc-pingpong.png"));
        }
        if (bandwidth.Length > 0)
        {
            string header = ReportHeader.Text("Interprocess bandwidth (streaming)", command, startedUtc, elapsed, loadAtStart, options, perf);
            File.WriteAllText(Path.Combine(options.OutputDirectory, "ipc-bandwidth.md"),
                $"{header}\n\n![bandwidth by chunk size](ipc-bandwidth.png)\n\n{BandwidthReport.Tables(bandwidth, options)}");
            ResultCharts.Bandwidth(Suite.Kept(bandwidth).ToArray(), options, Path.Combine(options.OutputDirectory, "ipc-bandwidth.png"));
        }
    }
}
