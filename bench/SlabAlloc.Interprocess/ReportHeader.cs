using SlabAlloc.Testing;

namespace SlabAlloc.Interprocess;

/// <summary>The opening of both results files: the command, when, on what machine, and how the runs were taken.</summary>
internal static class ReportHeader
{
    /// <summary>The 1, 5 and 15 minute load averages: a suite's results are worth what the machine's quiet was.</summary>
    public static string LoadAverage() => string.Join(", ", File.ReadAllText("/proc/loadavg").Split(' ').Take(3));

    public static string Text(string title, string command, DateTime startedUtc, TimeSpan elapsed, string loadAtStart, Options options, bool perfCounted)
    {
        string transports = string.Join("\n", options.Transports.Select(t => $"- `{t}`: {Transports.Find(t).Description}"));
        string syscalls = perfCounted
            ? "System calls: all of them, counted by `perf stat -e raw_syscalls:sys_enter,syscalls:sys_enter_futex -p PID` on each process, switched on for the measured interval only, in one extra interleaved pass after the timed runs: the tracepoints put every system call on the kernel's traced path, which slows the futex-bound ring to about half speed, so no timed run has perf attached. The `perf` columns give that pass's own speed."
            : "System calls: read/write calls only (`syscr` + `syscw` of /proc/PID/io; perf was not used), so futex calls and the like are missing.";
        return $"""
            # {title}

            Produced by `{command}` on {startedUtc:yyyy-MM-dd HH:mm} UTC in {elapsed.TotalMinutes:F1} min.

            Machine: {MachineDescription.Text()}; kernel {File.ReadAllText("/proc/sys/kernel/osrelease").Trim()}, nproc {Environment.ProcessorCount}.
            Load average (1, 5, 15 min) at the start: {loadAtStart}; at the end: {LoadAverage()}. Other work on the
            machine shows as a wide [min-max] and hurts the spinning ring most.

            Two processes: the parent (client) starts the child (`dotnet SlabAlloc.Interprocess.dll child ...`, the echo
            server or sink) and nothing else runs in the harness while a run is measured. Each configuration ran
            {options.Reps} times, interleaved (every transport and size once, then the next repetition); the first run
            of each was dropped and the cells give the median of the rest with [min-max]. Every measured interval
            excludes process start, connection, an unmeasured warm-up and teardown. The warm-up repeats a batch
            (pingpong: up to 10,000 round trips; bandwidth: at least 1 MiB and two chunks) until {options.Warmup.TotalSeconds:0.##} s
            have passed, so that both processes run the code the JIT settles on (tiered compilation recompiles a
            method only after it has run a while; a run of 20 ms would otherwise measure first-tier code). Every transport delivers the bytes into the receiver's own
            buffer. A message is one way (a round trip is two); MB is 10^6 bytes, counting both directions of a round
            trip. Counters are per message and given as client / server, each process measuring itself
            (`getrusage(RUSAGE_SELF)`: CPU time, voluntary and involuntary context switches).
            {syscalls}

            Transports:
            {transports}
            """;
    }
}
