using System.Diagnostics;
using System.Text.Json;
using SlabAlloc.Testing;

namespace SlabAlloc.Interprocess;

/// <summary>
/// The parent's side of one run: make the transport, start the child, connect, warm up (unmeasured), then
/// switch the counters on, measure, switch them off and collect the child's figures. Process start, the
/// JIT's first compilations, the warm-up and the teardown all fall outside the measured interval; nothing is
/// printed inside it.
/// </summary>
/// <remarks>
/// The warm-up repeats its batch until <see cref="Options.Warmup"/> has passed, in both processes (each run has
/// a new child). A count alone is not enough: the runtime compiles a method at its final tier only after it
/// has been called for a while (tiered compilation), so a short run measures first-tier code, and more so for
/// a transport whose work is managed code than for one whose work is in the kernel or in libc.
/// </remarks>
internal static class Run
{
    public static RunResult Execute(RunPlan plan, int rep, TimeSpan timeout, TimeSpan warmup, bool countSyscalls)
    {
        string what = $"{plan.Workload} over {plan.Transport}, {plan.SizeBytes} bytes, run {rep}";
        using ITransport transport = Transports.Find(plan.Transport).Create();
        string endpoint = transport.Listen(plan.SizeBytes);
        using ChildProcess child = ChildProcess.Start(plan.ChildArguments(endpoint, timeout), timeout, what);
        try
        {
            transport.Accept();
            using SyscallCounter? clientCounter = countSyscalls ? SyscallCounter.Attach(Environment.ProcessId, child) : null;
            using SyscallCounter? serverCounter = countSyscalls ? SyscallCounter.Attach(child.Id, child) : null;
            using PingPong? pingPong = plan.Workload == RunPlan.PingPong ? new PingPong(plan.Transport, plan.SizeBytes) : null;
            using Bandwidth? bandwidth = plan.Workload == RunPlan.Bandwidth ? new Bandwidth(plan.Transport, plan.SizeBytes) : null;
            var latency = new LatencyHistogram();

            long warmupEnd = Stopwatch.GetTimestamp() + (long)(warmup.TotalSeconds * Stopwatch.Frequency);
            while (true)
            {
                if (pingPong is not null) pingPong.RoundTrips(transport, plan.WarmupCount, new LatencyHistogram());
                else bandwidth!.Stream(transport, plan.WarmupCount);
                child.Expect("ready");
                if (Stopwatch.GetTimestamp() >= warmupEnd) break;
                child.Send("again");
            }

            clientCounter?.Enable();
            serverCounter?.Enable();
            ProcessUsage before = ProcessUsage.Take();
            child.Send("go");
            long ticks;
            if (pingPong is not null)
            {
                long start = Stopwatch.GetTimestamp();
                pingPong.RoundTrips(transport, plan.Count, latency);
                ticks = Stopwatch.GetTimestamp() - start;
            }
            else ticks = bandwidth!.Stream(transport, plan.Count);
            ProcessUsage clientUsage = ProcessUsage.Take().Since(before);
            serverCounter?.Disable();
            clientCounter?.Disable();

            ProcessUsage serverUsage = JsonSerializer.Deserialize(child.ReadLine(), IpcJson.Default.ProcessUsage);
            child.WaitForSuccess();
            (long Syscalls, long Futex) clientCalls = clientCounter?.Finish() ?? (-1, -1);
            (long Syscalls, long Futex) serverCalls = serverCounter?.Finish() ?? (-1, -1);

            bool roundTrips = pingPong is not null;
            long messages = roundTrips ? 2 * plan.Count : plan.Count;
            return new RunResult(plan, rep, messages, messages * plan.SizeBytes, (double)ticks / Stopwatch.Frequency,
                Microseconds(latency, 50), Microseconds(latency, 90), Microseconds(latency, 99), Microseconds(latency, 99.9), Microseconds(latency, 100),
                clientUsage, serverUsage, clientCalls.Syscalls, serverCalls.Syscalls, clientCalls.Futex, serverCalls.Futex);
        }
        catch (Exception e) when (e is IOException or InvalidDataException)
        {
            throw new InvalidDataException($"{what}: {e.Message} (child: {child.Status()})", e);
        }
    }

    private static double Microseconds(LatencyHistogram latency, double percentile) =>
        latency.Count == 0 ? 0 : latency.ValueAtPercentile(percentile) * 1e6 / Stopwatch.Frequency;
}
