namespace SlabAlloc;

/// <summary>What one process's <see cref="SharedChannel"/> did: its own counts, not the other processes'.</summary>
public sealed record SharedChannelStatistics
{
    /// <summary>Messages this process sent.</summary>
    public long Sent { get; init; }
    /// <summary>Messages this process received.</summary>
    public long Received { get; init; }
    /// <summary>Blocking sends that found the channel full at first.</summary>
    public long SendsThatFoundItFull { get; init; }
    /// <summary>Blocking receives that found the channel empty at first.</summary>
    public long ReceivesThatFoundItEmpty { get; init; }
    /// <summary>Of those, how many the spin phase settled without a kernel wait.</summary>
    public long SettledBySpinning { get; init; }
    /// <summary>Spin iterations in all.</summary>
    public long SpinIterations { get; init; }
    /// <summary>Kernel waits: futex wait calls (each at most 50 ms).</summary>
    public long KernelWaits { get; init; }
    /// <summary>Kernel wakes issued: futex wake calls, made only when a peer sleeps.</summary>
    public long KernelWakes { get; init; }
    /// <summary>Messages skipped because maintenance dropped them (their sender died mid-send).</summary>
    public long DroppedSkipped { get; init; }
}
