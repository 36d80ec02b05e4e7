using System.Globalization;

namespace SlabAlloc.Interprocess;

/// <summary>
/// What the kernel counted for the calling process (all its threads): CPU time from
/// <c>getrusage(RUSAGE_SELF)</c>, context switches, and the read and write calls of <c>/proc/self/io</c>
/// (<c>syscr</c>, <c>syscw</c>: the fallback count of system calls when perf cannot count them all).
/// Each process takes its own readings at the edges of its measured interval; <see cref="Since"/> gives the
/// interval's share.
/// </summary>
internal readonly record struct ProcessUsage(
    long UserMicroseconds, long SystemMicroseconds, long VoluntarySwitches, long InvoluntarySwitches, long ReadCalls, long WriteCalls)
{
    public static unsafe ProcessUsage Take()
    {
        LibC.Rusage usage;
        if (LibC.Getrusage(LibC.RusageSelf, &usage) != 0) throw LibC.Failure("getrusage");
        long reads = 0, writes = 0;
        foreach (string line in File.ReadLines("/proc/self/io"))
        {
            if (line.StartsWith("syscr:", StringComparison.Ordinal)) reads = long.Parse(line.AsSpan(6).Trim(), CultureInfo.InvariantCulture);
            else if (line.StartsWith("syscw:", StringComparison.Ordinal)) writes = long.Parse(line.AsSpan(6).Trim(), CultureInfo.InvariantCulture);
        }
        return new ProcessUsage(
            usage.UserSeconds * 1_000_000 + usage.UserMicroseconds, usage.SystemSeconds * 1_000_000 + usage.SystemMicroseconds,
            usage.VoluntarySwitches, usage.InvoluntarySwitches, reads, writes);
    }

    public ProcessUsage Since(ProcessUsage earlier) => new(
        UserMicroseconds - earlier.UserMicroseconds, SystemMicroseconds - earlier.SystemMicroseconds,
        VoluntarySwitches - earlier.VoluntarySwitches, InvoluntarySwitches - earlier.InvoluntarySwitches,
        ReadCalls - earlier.ReadCalls, WriteCalls - earlier.WriteCalls);
}
