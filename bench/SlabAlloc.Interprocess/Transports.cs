namespace SlabAlloc.Interprocess;

/// <summary>The transports a run can name, in the order the suite runs them and the results list them.</summary>
internal static class Transports
{
    public sealed record Entry(string Name, string Description, Func<ITransport> Create);

    public static readonly IReadOnlyList<Entry> All =
    [
        new("pipe", "two anonymous pipes, one per direction (default 64 KiB kernel buffer), read/write", () => new PipeTransport()),
        new("uds", "Unix domain stream socket, read/write", () => new UnixSocketTransport()),
        new("tcp", "TCP over 127.0.0.1 with TCP_NODELAY, read/write", () => new TcpTransport()),
        new("mutex-ring", MutexRingTransport.Describe(adaptive: false), () => new MutexRingTransport(adaptive: false)),
        new("mutex-ring-spin", MutexRingTransport.Describe(adaptive: true), () => new MutexRingTransport(adaptive: true)),
        new("slab-channel", SlabChannelTransport.Description, () => new SlabChannelTransport()),
    ];

    public static Entry Find(string name) =>
        All.FirstOrDefault(e => e.Name == name)
        ?? throw new ArgumentException($"unknown transport '{name}' (known: {string.Join(", ", All.Select(e => e.Name))})");
}
