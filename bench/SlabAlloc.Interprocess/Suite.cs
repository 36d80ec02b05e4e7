using System.Globalization;

namespace SlabAlloc.Interprocess;

/// <summary>
/// Runs every configuration <see cref="Options.Reps"/> times, interleaved: each repetition runs every
/// configuration once (every transport at a size, then the next size) before the next repetition starts, so
/// that a slow spell of the machine falls on all transports alike rather than on one. The timed runs have no
/// perf attached: perf's tracepoints slow every system call (the futex-bound ring ran at half speed under
/// them). When perf counts system calls, one more interleaved pass follows with perf attached, and only the
/// system call and futex counts are taken from it.
/// </summary>
internal static class Suite
{
    public static IReadOnlyList<RunPlan> Plans(Options options, IEnumerable<string> workloads)
    {
        var plans = new List<RunPlan>();
        foreach (string workload in workloads)
        {
            IEnumerable<int> sizes = workload == RunPlan.PingPong ? options.PingPongSizes : options.ChunkSizes;
            foreach (int size in sizes)
                foreach (string transport in options.Transports)
                    plans.Add(workload == RunPlan.PingPong
                        ? new RunPlan(workload, transport, size, options.RoundTripsFor(size), PingPong.WarmupRoundTrips(size))
                        : new RunPlan(workload, transport, size, options.TotalBytes / size, Bandwidth.WarmupChunks(size)));
        }
        return plans;
    }

    /// <summary>Every run: the dropped first ones, the timed ones and the perf-counted ones.</summary>
    public static List<RunResult> Execute(IReadOnlyList<RunPlan> plans, Options options)
    {
        var results = new List<RunResult>();
        int passes = options.Reps + (options.PerfSyscalls ? 1 : 0);
        for (int rep = 0; rep < passes; rep++)
        {
            bool counting = rep == options.Reps;
            foreach (RunPlan plan in plans)
            {
                RunResult result = Execute(plan, rep, options, counting);
                results.Add(result);
                // Between runs, never inside one: the measured interval is quiet.
                string latency = plan.Workload == RunPlan.PingPong
                    ? string.Create(CultureInfo.InvariantCulture, $"p50 {result.P50Us:F1} us, p99 {result.P99Us:F1} us, ")
                    : "";
                Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"run {rep + 1}/{passes}{(rep == 0 ? " (dropped)" : counting ? " (perf counting)" : "")} {plan.Workload} {plan.Transport} {Sizes.Format(plan.SizeBytes)}: {latency}{result.MegabytesPerSecond:F0} MB/s, {result.Seconds:F2} s"));
            }
        }
        return results;
    }

    /// <summary>One run; a perf-counted run whose perf failed to attach is tried again, up to three times.</summary>
    private static RunResult Execute(RunPlan plan, int rep, Options options, bool counting)
    {
        for (int attempt = 1; ; attempt++)
        {
            try
            {
                return Run.Execute(plan, rep, options.Timeout, options.Warmup, countSyscalls: counting);
            }
            catch (SyscallCounter.PerfFailedException e) when (attempt < 3)
            {
                Console.Error.WriteLine($"perf failed ({e.Message}); the run is tried again");
            }
        }
    }

    /// <summary>The timed runs the results are made of: all but the first of each configuration and the perf-counted.</summary>
    public static IEnumerable<RunResult> Kept(IEnumerable<RunResult> runs) => runs.Where(r => r.Rep > 0 && !r.PerfCounted);

    /// <summary>The runs with perf attached, which give the system call counts.</summary>
    public static IEnumerable<RunResult> Counted(IEnumerable<RunResult> runs) => runs.Where(r => r.PerfCounted);
}
