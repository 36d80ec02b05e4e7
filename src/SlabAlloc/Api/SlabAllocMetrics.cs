using System.Diagnostics.Metrics;
using SlabAlloc.Telemetry;

namespace SlabAlloc;

/// <summary>Names under which SlabAlloc publishes its metrics.</summary>
/// <remarks>
/// SlabAlloc publishes a <see cref="Meter"/> named <see cref="MeterName"/> with observable
/// instruments only, so nothing is measured until a listener subscribes
/// (<c>dotnet-counters monitor --counters SlabAlloc -p &lt;pid&gt;</c>, OpenTelemetry's
/// <c>AddMeter("SlabAlloc")</c>, or a <see cref="MeterListener"/>).
/// </remarks>
public static class SlabAllocMetrics
{
    /// <summary>The name of SlabAlloc's <see cref="Meter"/>: <c>"SlabAlloc"</c>.</summary>
    public const string MeterName = "SlabAlloc";
}
