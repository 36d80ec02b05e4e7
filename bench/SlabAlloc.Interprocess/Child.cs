using System.Text.Json;

namespace SlabAlloc.Interprocess;

/// <summary>
/// The child's role: connects to the parent's transport, echoes (pingpong) or sinks (bandwidth) a warm-up batch,
/// says <c>ready</c> and serves another batch for each <c>again</c> until the parent says <c>go</c>, then serves the measured messages between two readings of its own
/// counters, and reports them as one JSON line on its standard output.
/// </summary>
internal static class Child
{
    public static int Run(IReadOnlyList<string> arguments)
    {
        (RunPlan plan, string endpoint, TimeSpan timeout, int parentId) = RunPlan.Parse(arguments);
        // Dies with the parent: a killed harness leaves no child spinning on a ring.
        LibC.Prctl(LibC.PrSetParentDeathSignal, LibC.SigKill);
        if (LibC.Getppid() != parentId) return ChildProcess.FailureExitCode;
        using var deadline = new Timer(_ =>
        {
            Console.Error.WriteLine($"SlabAlloc.Interprocess child: {plan.Workload} over {plan.Transport} not done after {timeout.TotalSeconds:F0} s");
            Environment.Exit(ChildProcess.FailureExitCode);
        }, null, timeout, Timeout.InfiniteTimeSpan);

        using ITransport transport = Transports.Find(plan.Transport).Create();
        transport.Connect(endpoint);
        using var buffer = new NativeBuffer(plan.SizeBytes);
        while (true)
        {
            Serve(plan, transport, buffer, plan.WarmupCount);
            Console.Out.WriteLine("ready");
            string? line = Console.In.ReadLine();
            if (line == "go") break;
            if (line != "again") throw new InvalidDataException($"child: the parent said '{line}' where 'again' or 'go' was due");
        }
        ProcessUsage before = ProcessUsage.Take();
        Serve(plan, transport, buffer, plan.Count);
        ProcessUsage usage = ProcessUsage.Take().Since(before);
        Console.Out.WriteLine(JsonSerializer.Serialize(usage, IpcJson.Default.ProcessUsage));
        return 0;
    }

    private static void Serve(RunPlan plan, ITransport transport, NativeBuffer buffer, long count)
    {
        if (plan.Workload == RunPlan.PingPong) PingPong.Echo(transport, buffer, count);
        else Bandwidth.Sink(transport, buffer, count);
    }
}
