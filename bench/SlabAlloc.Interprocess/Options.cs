using System.Globalization;

namespace SlabAlloc.Interprocess;

/// <summary>
/// The options of the <c>pingpong</c>, <c>bandwidth</c> and <c>suite</c> commands, read once from the command
/// line. Each configuration (workload, transport, size) runs <see cref="Reps"/> times; the first run of each is
/// dropped, the rest give median, min and max.
/// </summary>
internal sealed record Options
{
    public IReadOnlyList<string> Transports { get; init; } = Interprocess.Transports.All.Select(e => e.Name).ToArray();
    public IReadOnlyList<int> PingPongSizes { get; init; } = Sizes.PingPongDefaults;
    public IReadOnlyList<int> ChunkSizes { get; init; } = Sizes.ChunkDefaults;
    /// <summary>Round trips per run; 0: <see cref="PingPong.DefaultRoundTrips"/> times <see cref="Scale"/>.</summary>
    public long RoundTrips { get; init; }
    public long TotalBytes { get; init; } = Bandwidth.DefaultTotalBytes;
    public int Reps { get; init; } = 11;
    /// <summary>Scales the default round trips (not the bandwidth's total): 0.1 for a run a tenth as long.</summary>
    public double Scale { get; init; } = 1;
    /// <summary>A run's limit, generous: on a busy 2-core machine the plain-mutex ring can take a hundred times its
    /// quiet time (a preempted lock holder, then a sleep in the kernel per message).</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(1200);
    /// <summary>The least time a run warms up before it is measured (see <see cref="Run"/>).</summary>
    public TimeSpan Warmup { get; init; } = TimeSpan.FromSeconds(1);
    /// <summary>Count every system call with perf (a cost on each call, see <see cref="SyscallCounter"/>), or only
    /// the read and write calls of /proc/PID/io. Defaults to perf where it works.</summary>
    public bool PerfSyscalls { get; init; } = SyscallCounter.Usable;
    public string OutputDirectory { get; init; } = "docs/results";

    public long RoundTripsFor(int sizeBytes) =>
        RoundTrips > 0 ? RoundTrips : Math.Max(100, (long)Math.Round(PingPong.DefaultRoundTrips(sizeBytes) * Scale));

    public static Options Parse(string command, IReadOnlyList<string> arguments)
    {
        var options = new Options();
        for (int i = 0; i < arguments.Count; i++)
        {
            string name = arguments[i];
            string Value() => i + 1 < arguments.Count ? arguments[++i] : throw new ArgumentException($"{name} needs a value");
            options = name switch
            {
                "--transport" or "--transports" => options with { Transports = Value().Split(',').Select(t => Interprocess.Transports.Find(t).Name).ToArray() },
                "--size" or "--sizes" when command != RunPlan.Bandwidth => options with { PingPongSizes = Sizes.ParseList(Value()) },
                "--chunk" or "--chunks" when command != RunPlan.PingPong => options with { ChunkSizes = Sizes.ParseList(Value()) },
                "--roundtrips" => options with { RoundTrips = Sizes.Parse(Value()) },
                "--total" => options with { TotalBytes = Sizes.Parse(Value()) },
                "--reps" => options with { Reps = int.Parse(Value(), CultureInfo.InvariantCulture) },
                "--scale" => options with { Scale = double.Parse(Value(), CultureInfo.InvariantCulture) },
                "--warmup" => options with { Warmup = TimeSpan.FromSeconds(double.Parse(Value(), CultureInfo.InvariantCulture)) },
                "--timeout" => options with { Timeout = TimeSpan.FromSeconds(double.Parse(Value(), CultureInfo.InvariantCulture)) },
                "--syscalls" => options with { PerfSyscalls = Value() switch
                {
                    "perf" => SyscallCounter.Usable ? true : throw new ArgumentException("--syscalls perf: perf cannot count raw_syscalls here"),
                    "io" => false,
                    var other => throw new ArgumentException($"--syscalls {other}: perf or io"),
                } },
                "--out" => options with { OutputDirectory = Value() },
                _ => throw new ArgumentException($"{command}: unknown option {name}"),
            };
        }
        if (options.Reps < 2) throw new ArgumentException("--reps: at least 2 (the first run of each configuration is dropped)");
        foreach (int chunk in options.ChunkSizes)
            if (options.TotalBytes % chunk != 0) throw new ArgumentException($"--total {options.TotalBytes} is not a whole number of {chunk}-byte chunks");
        return options;
    }
}
