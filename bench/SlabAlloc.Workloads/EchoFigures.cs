using System.Text.Json;

namespace SlabAlloc.Workloads;

/// <summary>
/// What one run of the Pipelines echo (<see cref="PipelinesEcho"/>) measured. Printed as one JSON line
/// with <c>--json</c>, which is how <c>bench/pipelines-echo.sh</c> collects runs.
/// </summary>
/// <remarks>Throughput, latency, allocation and collections are those of the timed part alone (the
/// clients connected, the warm-up done); the resident memory is the process's, whose peak includes the
/// warm-up's (the same workload, shorter).</remarks>
internal sealed record EchoFigures
{
    public string Workload => "echo";

    /// <summary><c>slab</c> (<see cref="SlabMemoryPool.Shared"/>) or <c>shared</c> (<c>MemoryPool&lt;byte&gt;.Shared</c>).</summary>
    public required string Pool { get; init; }
    public required int Clients { get; init; }

    /// <summary>The payload sizes, as <c>--sizes</c> takes them: <c>MIN-MAX</c> (log-uniform) or <c>N</c>.</summary>
    public required string Sizes { get; init; }
    public required double Seconds { get; init; }

    /// <summary>Round trips completed (each message echoed and checked).</summary>
    public required long Messages { get; init; }

    /// <summary>Payload bytes echoed (each crossed the loopback twice).</summary>
    public required long PayloadBytes { get; init; }
    public double MessagesPerSecond => Seconds <= 0 ? 0 : Messages / Seconds;

    /// <summary>Payload echoed per second, in 10^6 bytes.</summary>
    public double MegabytesPerSecond => Seconds <= 0 ? 0 : PayloadBytes / Seconds / 1e6;

    /// <summary>Round-trip latency percentiles in microseconds (upper bounds within 0.8%: <see cref="SlabAlloc.Testing.LatencyHistogram"/>).</summary>
    public required double P50Us { get; init; }
    /// <inheritdoc cref="P50Us"/>
    public required double P99Us { get; init; }
    /// <inheritdoc cref="P50Us"/>
    public required double P999Us { get; init; }

    /// <summary>Managed bytes allocated by the whole process (<c>GC.GetTotalAllocatedBytes(precise: true)</c>), server and clients.</summary>
    public required long ManagedBytes { get; init; }
    public double ManagedBytesPerMessage => Messages == 0 ? 0 : (double)ManagedBytes / Messages;

    /// <summary>Collections of each generation.</summary>
    public required int Gen0Collections { get; init; }
    /// <inheritdoc cref="Gen0Collections"/>
    public required int Gen1Collections { get; init; }
    /// <inheritdoc cref="Gen0Collections"/>
    public required int Gen2Collections { get; init; }

    /// <summary>Process RSS (KiB) before the server started, the most ever, and after everything was closed.</summary>
    public required long BaselineRssKiB { get; init; }
    /// <inheritdoc cref="BaselineRssKiB"/>
    public required long PeakRssKiB { get; init; }
    /// <inheritdoc cref="BaselineRssKiB"/>
    public required long FinalRssKiB { get; init; }

    /// <summary>SlabAlloc's blocks in use once every connection has closed, less those in use after the
    /// warm-up (0 unless a buffer leaked; on the shared pool, 0 unless the harness itself held SlabAlloc
    /// memory), and its mapped bytes at the same point.</summary>
    public required long SlabBlocksInUse { get; init; }
    /// <inheritdoc cref="SlabBlocksInUse"/>
    public required long SlabBytesMapped { get; init; }

    public string ToJson() => JsonSerializer.Serialize(this, BenchJson.Default.EchoFigures);
}
