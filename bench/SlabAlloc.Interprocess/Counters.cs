using System.Globalization;

namespace SlabAlloc.Interprocess;

/// <summary>The counter cells both reports share, per message, client / server: CPU time and context switches
/// (medians over the timed runs), system calls and futex calls (medians over the perf-counted runs; without
/// them, the read and write calls of the timed runs, and no futex count).</summary>
internal static class Counters
{
    public const string Headings = "CPU µs client | CPU µs server | syscalls | futex | voluntary cs | involuntary cs";
    public const string Alignment = "--:|--:|--:|--:|--:|--:|";

    public static string Cells(IReadOnlyList<RunResult> timed, IReadOnlyList<RunResult> counted)
    {
        static double Per(IReadOnlyList<RunResult> runs, Func<RunResult, double> value) => Spread.Of(runs.Select(r => value(r) / r.Messages)).Median;
        static string Pair(IReadOnlyList<RunResult> runs, Func<RunResult, double> client, Func<RunResult, double> server, string format) =>
            $"{Per(runs, client).ToString(format, CultureInfo.InvariantCulture)} / {Per(runs, server).ToString(format, CultureInfo.InvariantCulture)}";
        string Cpu(Func<RunResult, ProcessUsage> side) => string.Create(CultureInfo.InvariantCulture,
            $"{Per(timed, r => side(r).UserMicroseconds):F2}+{Per(timed, r => side(r).SystemMicroseconds):F2}");
        string syscalls = counted.Count > 0
            ? Pair(counted, r => r.ClientSyscalls, r => r.ServerSyscalls, "F2")
            : Pair(timed, r => r.Client.ReadCalls + r.Client.WriteCalls, r => r.Server.ReadCalls + r.Server.WriteCalls, "F2");
        string futex = counted.Count > 0 ? Pair(counted, r => r.ClientFutex, r => r.ServerFutex, "F3") : "n/a";
        return $"{Cpu(r => r.Client)} | {Cpu(r => r.Server)} | {syscalls} | {futex} | "
            + $"{Pair(timed, r => r.Client.VoluntarySwitches, r => r.Server.VoluntarySwitches, "F3")} | "
            + $"{Pair(timed, r => r.Client.InvoluntarySwitches, r => r.Server.InvoluntarySwitches, "F3")}";
    }
}
