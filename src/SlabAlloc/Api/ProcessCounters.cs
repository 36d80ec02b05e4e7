using System.Globalization;
using SlabAlloc.Platform;

namespace SlabAlloc;

/// <summary>What the kernel counted for this process: context switches (kernel waits and
/// preemptions) and page faults. Read from <c>/proc/self/status</c> and <c>/proc/self/stat</c> on
/// Linux; all zero elsewhere.</summary>
/// <param name="VoluntaryContextSwitches">The process gave up the CPU (blocked in the kernel: futex waits, sleeps).</param>
/// <param name="InvoluntaryContextSwitches">The scheduler took the CPU away (preemption).</param>
/// <param name="MinorPageFaults">Page faults served without I/O (first touch of an anonymous page).</param>
/// <param name="MajorPageFaults">Page faults that needed I/O.</param>
public readonly record struct ProcessCounters(
    long VoluntaryContextSwitches, long InvoluntaryContextSwitches, long MinorPageFaults, long MajorPageFaults)
{
    /// <summary>Reads the counters now.</summary>
    public static ProcessCounters Read()
    {
        if (!OperatingSystem.IsLinux()) return default;
        long voluntary = 0, involuntary = 0, minor = 0, major = 0;
        try
        {
            foreach (string line in File.ReadLines("/proc/self/status"))
            {
                if (line.StartsWith("voluntary_ctxt_switches:", StringComparison.Ordinal)) voluntary = ParseTail(line);
                else if (line.StartsWith("nonvoluntary_ctxt_switches:", StringComparison.Ordinal)) involuntary = ParseTail(line);
            }
            // Fields after the command name (which may contain spaces, so split after its closing parenthesis):
            // state(3) ppid pgrp session tty_nr tpgid flags minflt(10) cminflt majflt(12).
            string stat = File.ReadAllText("/proc/self/stat");
            string[] fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            minor = long.Parse(fields[7], CultureInfo.InvariantCulture);
            major = long.Parse(fields[9], CultureInfo.InvariantCulture);
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        return new ProcessCounters(voluntary, involuntary, minor, major);
    }

    /// <summary>Page faults taken by the calling thread alone (<c>getrusage(RUSAGE_THREAD)</c>), as
    /// (minor, major); zeros where the system does not count per thread.</summary>
    public static unsafe (long Minor, long Major) ThreadPageFaults()
    {
        if (!OperatingSystem.IsLinux()) return (0, 0);
        SlabAlloc.Platform.LibC.Rusage usage;
        if (SlabAlloc.Platform.LibC.Getrusage(SlabAlloc.Platform.LibC.RusageThread, &usage) != 0) return (0, 0);
        return (usage.MinorFaults, usage.MajorFaults);
    }

    /// <summary>The counts between <paramref name="earlier"/> and this reading.</summary>
    public ProcessCounters Since(ProcessCounters earlier) => new(
        VoluntaryContextSwitches - earlier.VoluntaryContextSwitches,
        InvoluntaryContextSwitches - earlier.InvoluntaryContextSwitches,
        MinorPageFaults - earlier.MinorPageFaults,
        MajorPageFaults - earlier.MajorPageFaults);

    private static long ParseTail(string line) =>
        long.Parse(line[(line.IndexOf(':') + 1)..].Trim(), CultureInfo.InvariantCulture);
}
