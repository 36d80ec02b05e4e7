namespace SlabAlloc.Support;

/// <summary>
/// Logs each failure SlabAlloc detects exactly once: at once, or, inside a <see cref="Defer"/> scope, when the
/// outermost scope of the thread ends.
/// </summary>
/// <remarks>
/// <para><b>Why defer.</b> A logger is user code, and it may call back into SlabAlloc or wait for a thread
/// that does. Some failures are found while the finding thread holds something other threads wait for: the
/// upkeep's exclusivity (held by <c>Trim</c> and by a pass of the upkeep), or a dead thread's cache record
/// while it is being reclaimed (<c>Trim</c> waits for every reclaim in flight). A logger that waited there for
/// another thread's <c>Trim</c> would wait for ever. Those holders open a scope around what they hold and
/// close it once they have let go; the failures found inside are logged then, in the order they were found.</para>
/// <para><b>Who writes what.</b> Every field is the calling thread's own (thread-static): nothing is shared, and
/// a scope is opened and closed on one thread. No object is left behind per thread but the small array of
/// kept failures, allocated the first time a scope keeps one (no finalizer).</para>
/// <para><b>Bounds.</b> One scope keeps the first <see cref="KeptPerScope"/> failures; past that they are
/// still thrown or dropped as before, but not logged.</para>
/// </remarks>
internal static class ErrorReports
{
    /// <summary>The most failures one outermost scope keeps for logging.</summary>
    public const int KeptPerScope = 16;

    private const string ReportedKey = "SlabAlloc.Reported";

    [ThreadStatic] private static int t_depth;
    [ThreadStatic] private static Exception?[]? t_kept;
    [ThreadStatic] private static int t_count;

    /// <summary>Logs <paramref name="exception"/> now, or when the calling thread's outermost scope ends, unless
    /// it was reported before; returns it.</summary>
    public static T Report<T>(T exception) where T : Exception
    {
        if (WasReported(exception)) return exception;
        exception.Data[ReportedKey] = true;
        if (t_depth == 0) SlabLog.ErrorDetected(exception);
        else Keep(exception);
        return exception;
    }

    /// <summary>True if <paramref name="exception"/> was reported (logged, or kept to be logged).</summary>
    public static bool WasReported(Exception exception) => exception.Data.Contains(ReportedKey);

    /// <summary>Opens a scope on the calling thread (nested scopes log when the outermost one ends).</summary>
    public static Scope Defer()
    {
        t_depth++;
        return default;
    }

    /// <summary>Closes the scope <see cref="Defer"/> opened.</summary>
    public readonly ref struct Scope
    {
        public void Dispose() => End();
    }

    /// <summary>Failures kept in the calling thread's open scope (tests).</summary>
    internal static int KeptCount => t_count;

    private static void Keep(Exception exception)
    {
        int n = t_count++;
        if (n >= KeptPerScope) return;
        // The array is made when the first failure is kept; if even that fails, the failure is logged now.
        try
        {
            (t_kept ??= new Exception?[KeptPerScope])[n] = exception;
        }
        catch (OutOfMemoryException)
        {
            t_count--;
            SlabLog.ErrorDetected(exception);
        }
    }

    private static void End()
    {
        Invariant.Holds(t_depth > 0, "a report scope is closed once, on the thread that opened it");
        if (--t_depth != 0 || t_count == 0) return;
        int kept = Math.Min(t_count, KeptPerScope);
        // Taken from the thread before any is logged: a logger that calls back into SlabAlloc may open and close
        // scopes of its own, which then start from nothing.
        Exception?[] list = t_kept!;
        t_kept = null;
        t_count = 0;
        for (int i = 0; i < kept; i++)
        {
            Exception e = list[i]!;
            list[i] = null;
            SlabLog.ErrorDetected(e);
        }
        t_kept ??= list;
    }
}
