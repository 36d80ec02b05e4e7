using System.Diagnostics;
using System.Globalization;
using SlabAlloc.Interprocess;

CultureInfo.DefaultThreadCurrentCulture = CultureInfo.InvariantCulture;
CultureInfo.CurrentCulture = CultureInfo.InvariantCulture;
const string Usage = """
    usage: SlabAlloc.Interprocess <command> [options]
      pingpong  [--transport T[,T...]] [--size BYTES[,BYTES...]] [--roundtrips N] [--reps R] [--scale F]
      bandwidth [--transport T[,T...]] [--chunk BYTES[,BYTES...]] [--total BYTES] [--reps R]
      suite     [--transports ...] [--sizes ...] [--chunks ...] [--reps R] [--scale F] [--out DIR]
                pingpong at every size and bandwidth at every chunk size for every transport; writes
                DIR/ipc-pingpong.md, ipc-bandwidth.md, ipc-runs.csv and the two charts (DIR: docs/results)
      common: --warmup SECONDS (the least warm-up of a run, 1), --timeout SECONDS (a run's limit, 1200),
              --syscalls perf|io (perf where it works)
    transports: pipe, uds, tcp, mutex-ring, mutex-ring-spin, slab-channel. Sizes take K and M (binary). Each configuration
    runs R times (11), interleaved, the first dropped; round trips default to 1,000,000 up to 4 KiB, 100,000 at
    64 KiB, 10,000 above, times --scale; bandwidth streams 16 MiB in chunks of 1 KiB to 16 MiB.
    """;

try
{
    if (args.Length == 0) throw new ArgumentException("no command");
    Platform.Check();
    string command = args[0];
    string[] rest = args[1..];
    if (command == "child") return Child.Run(rest);
    string[] workloads = command switch
    {
        RunPlan.PingPong => [RunPlan.PingPong],
        RunPlan.Bandwidth => [RunPlan.Bandwidth],
        "suite" => [RunPlan.PingPong, RunPlan.Bandwidth],
        "help" or "--help" or "-h" => [],
        _ => throw new ArgumentException($"unknown command '{command}'"),
    };
    if (workloads.Length == 0)
    {
        Console.WriteLine(Usage);
        return 0;
    }
    Options options = Options.Parse(command, rest);
    DateTime started = DateTime.UtcNow;
    string loadAtStart = ReportHeader.LoadAverage();
    if (double.Parse(loadAtStart.Split(',')[0], CultureInfo.InvariantCulture) > Environment.ProcessorCount)
        Console.Error.WriteLine($"SlabAlloc.Interprocess: the machine is busy (load average {loadAtStart} on {Environment.ProcessorCount} cores): expect noisy figures");
    var clock = Stopwatch.StartNew();
    List<RunResult> runs = Suite.Execute(Suite.Plans(options, workloads), options);
    if (command == "suite")
    {
        string line = "dotnet SlabAlloc.Interprocess.dll " + string.Join(' ', args);
        ResultsFiles.Write(runs, options, line, started, clock.Elapsed, loadAtStart);
        Console.WriteLine($"results in {Path.GetFullPath(options.OutputDirectory)}: ipc-pingpong.md, ipc-bandwidth.md, ipc-runs.csv, ipc-pingpong.png, ipc-bandwidth.png");
    }
    else
    {
        Console.WriteLine(string.Join("\n", options.Transports.Select(t => $"{t}: {Transports.Find(t).Description}")));
        Console.WriteLine(options.PerfSyscalls ? "syscalls: all, from one more pass with perf attached" : "syscalls: read/write calls only (/proc/PID/io)");
        Console.WriteLine();
        Console.WriteLine(command == RunPlan.PingPong ? PingPongReport.Tables(runs, options) : BandwidthReport.Tables(runs, options));
    }
    return 0;
}
catch (ArgumentException e)
{
    Console.Error.WriteLine($"SlabAlloc.Interprocess: {e.Message}");
    Console.Error.WriteLine(Usage);
    return 2;
}
catch (Exception e) when (e is IOException or InvalidDataException or PlatformNotSupportedException)
{
    Console.Error.WriteLine($"SlabAlloc.Interprocess: FAILED: {e.Message}");
    return 1;
}
