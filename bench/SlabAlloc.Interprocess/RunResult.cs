namespace SlabAlloc.Interprocess;

/// <summary>
/// What one run measured, over its measured interval only. A message is one way: a round trip is two, a
/// chunk is one. <see cref="PayloadBytes"/> counts both directions of a round trip. Latencies are round trips
/// in microseconds (upper bounds within 0.8%, <see cref="SlabAlloc.Testing.LatencyHistogram"/>), zero for
/// bandwidth. The system call counts are perf's (all calls; futex alone), or -1 in a run without perf attached.
/// </summary>
internal sealed record RunResult(
    RunPlan Plan, int Rep, long Messages, long PayloadBytes, double Seconds,
    double P50Us, double P90Us, double P99Us, double P999Us, double MaxUs,
    ProcessUsage Client, ProcessUsage Server,
    long ClientSyscalls, long ServerSyscalls, long ClientFutex, long ServerFutex)
{
    public double MessagesPerSecond => Messages / Seconds;
    public double MegabytesPerSecond => PayloadBytes / Seconds / 1e6;
    public bool PerfCounted => ClientSyscalls >= 0;

}
