using System.Globalization;
using System.Text;

namespace SlabAlloc.Interprocess;

/// <summary>Every run of a suite, one CSV row each, the dropped first runs included and marked
/// (docs/results/ipc-runs.csv): the raw figures behind the Markdown tables.</summary>
internal static class RunsCsv
{
    public static string Text(IEnumerable<RunResult> runs)
    {
        var csv = new StringBuilder();
        csv.AppendLine("workload,transport,size_bytes,rep,dropped,messages,payload_bytes,seconds,messages_per_s,mb_per_s,p50_us,p90_us,p99_us,p999_us,max_us,"
            + "client_user_us,client_sys_us,client_vcs,client_ivcs,client_read_calls,client_write_calls,client_syscalls,client_futex,"
            + "server_user_us,server_sys_us,server_vcs,server_ivcs,server_read_calls,server_write_calls,server_syscalls,server_futex");
        foreach (RunResult r in runs)
            csv.AppendLine(string.Create(CultureInfo.InvariantCulture,
                $"{r.Plan.Workload},{r.Plan.Transport},{r.Plan.SizeBytes},{r.Rep},{(r.Rep == 0 ? 1 : 0)},{r.Messages},{r.PayloadBytes},{r.Seconds:F6},{r.MessagesPerSecond:F0},{r.MegabytesPerSecond:F1},"
                + $"{r.P50Us:F2},{r.P90Us:F2},{r.P99Us:F2},{r.P999Us:F2},{r.MaxUs:F2},"
                + $"{Side(r.Client)},{r.ClientSyscalls},{r.ClientFutex},{Side(r.Server)},{r.ServerSyscalls},{r.ServerFutex}"));
        return csv.ToString();
    }

    private static string Side(ProcessUsage u) => string.Create(CultureInfo.InvariantCulture,
        $"{u.UserMicroseconds},{u.SystemMicroseconds},{u.VoluntarySwitches},{u.InvoluntarySwitches},{u.ReadCalls},{u.WriteCalls}");
}
