using System.Globalization;

namespace SlabAlloc.Platform;

/// <summary>
/// A process named so that a reused pid cannot pass for it: the pid and the process's start time (in clock
/// ticks since boot, field 22 of <c>/proc/PID/stat</c>) packed into one nonzero 64-bit word.
/// </summary>
/// <remarks>pid_max is at most 2^22 on Linux, so the pid takes the low 22 bits and the start time the
/// other 42 (at 100 ticks a second, over a thousand years of uptime). Packing both into one word lets a
/// process claim a slot of a shared table with one compare-exchange. A process is alive while
/// <c>/proc/PID/stat</c> exists, shows the same start time, and is not a zombie (state Z or X): a killed
/// child that its parent has not reaped yet is dead for this purpose.</remarks>
internal static class ProcessIdentity
{
    private const int PidBits = 22;
    private const long PidMask = (1L << PidBits) - 1;

    private static long s_current;

    /// <summary>This process's identity.</summary>
    public static long Current
    {
        get
        {
            long identity = Volatile.Read(ref s_current);
            if (identity != 0) return identity;
            identity = Of(Environment.ProcessId);
            if (identity == 0) throw new PlatformNotSupportedException("/proc/self/stat could not be read; shared heaps need Linux's /proc.");
            Volatile.Write(ref s_current, identity);
            return identity;
        }
    }

    /// <summary>The pid inside an identity.</summary>
    public static int PidOf(long identity) => (int)(identity & PidMask);

    /// <summary>True when the process an identity names is still running.</summary>
    public static bool IsAlive(long identity) => identity != 0 && Of(PidOf(identity)) == identity;

    /// <summary>The identity of the live process <paramref name="pid"/>, or 0 when there is none (or it is a zombie).</summary>
    public static long Of(int pid)
    {
        string text;
        try
        {
            text = File.ReadAllText($"/proc/{pid.ToString(CultureInfo.InvariantCulture)}/stat");
        }
        catch (IOException)
        {
            return 0;
        }
        catch (UnauthorizedAccessException)
        {
            return 0;
        }
        // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so fields are counted after the last ')'.
        int close = text.LastIndexOf(')');
        if (close < 0) return 0;
        string[] fields = text[(close + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
        if (fields.Length < 20) return 0;
        if (fields[0] is "Z" or "X" or "x") return 0; // field 3
        if (!long.TryParse(fields[19], NumberStyles.None, CultureInfo.InvariantCulture, out long startTicks)) return 0; // field 22
        return startTicks << PidBits | (long)pid;
    }
}
