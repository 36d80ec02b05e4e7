using System.Globalization;

namespace SlabAlloc.Workloads;

/// <summary>The process's resident memory, from <c>/proc/self/status</c>: now (<c>VmRSS</c>) and the
/// most ever (<c>VmHWM</c>), in KiB; 0 where there is no /proc.</summary>
/// <remarks>RSS counts every resident page: the .NET runtime's, the harness's and the allocator's.
/// A workload's memory growth is therefore its peak less its baseline, both read in the same process.</remarks>
internal static class ResidentMemory
{
    /// <summary>Resident set size now, in KiB.</summary>
    public static long CurrentKiB() => Read("VmRSS:");

    /// <summary>Peak resident set size since the process started, in KiB.</summary>
    public static long PeakKiB() => Read("VmHWM:");

    private static long Read(string field)
    {
        if (!OperatingSystem.IsLinux()) return 0;
        foreach (string line in File.ReadLines("/proc/self/status"))
            if (line.StartsWith(field, StringComparison.Ordinal))
                return long.Parse(line[field.Length..].Replace("kB", "").Trim(), CultureInfo.InvariantCulture);
        return 0;
    }
}
