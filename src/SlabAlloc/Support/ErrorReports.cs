using System.Runtime.CompilerServices;

namespace SlabAlloc.Support;

/// <summary>
/// Logs each failure SlabAlloc detects: at once, or, inside a <see cref="Defer"/> scope, when the thread's
/// outermost scope ends.
/// </summary>
/// <remarks>
/// <para><b>Why defer.</b> A logger is user code, and it may call back into SlabAlloc or wait for a thread
/// that does. Some failures are found while the finding thread holds something other threads wait for: the
/// upkeep's exclusivity (held by <c>Trim</c> and by a pass of the upkeep), or a dead thread's cache record
/// while it is being reclaimed (<c>Trim</c> waits for every reclaim in flight). A logger that waited there for
/// another thread's <c>Trim</c> would wait for ever. Those holders open a scope around what they hold and
/// close it once they have let go, before any exception leaves them; the failures found inside are logged
/// then, in the order they were found.</para>
/// <para><b>Once.</b> An exception SlabAlloc builds (<c>ThrowHelper</c>) is marked when it is reported, and a
/// catch further up that reports it again (<see cref="ReportCaught"/>) finds the mark and does nothing. An
/// exception of the runtime's own (an out-of-memory) is not marked, since the runtime may throw the same instance
/// again; a scope keeps it once however often it is reported inside.</para>
/// <para><b>Who writes what.</b> Every field is the calling thread's own (thread-static): nothing is shared, and
/// a scope is opened and closed on one thread (a <c>ref struct</c>, which cannot cross an <c>await</c>). Nothing
/// is allocated: the kept failures are an inline array in the thread-static block.</para>
/// <para><b>Bounds.</b> One scope keeps the first <see cref="KeptPerScope"/> failures; past that they are still
/// thrown or dropped as before, and their number is logged (<c>ErrorsNotLogged</c>), together with failures an
/// operation handled without reporting them one by one (<see cref="ReportUnreported"/>).</para>
/// </remarks>
internal static class ErrorReports
{
    /// <summary>The most failures one outermost scope keeps for logging.</summary>
    public const int KeptPerScope = 16;

    private const string ReportedKey = "SlabAlloc.Reported";

    [InlineArray(KeptPerScope)]
    private struct Kept
    {
        private Exception? _first;
    }

    [ThreadStatic] private static int t_depth;
    [ThreadStatic] private static int t_count;
    [ThreadStatic] private static int t_notReported;
    [ThreadStatic] private static Kept t_kept;

    /// <summary>Reports an exception SlabAlloc built: marks it, and logs it now or when the calling thread's
    /// outermost scope ends. Returns it.</summary>
    public static T Report<T>(T exception) where T : Exception
    {
        if (WasReported(exception)) return exception;
        exception.Data[ReportedKey] = true;
        LogOrKeep(exception);
        return exception;
    }

    /// <summary>Reports an exception caught at a boundary (a reclaim, a pass of the upkeep, the warm-up), unless
    /// SlabAlloc reported it already where it was built.</summary>
    public static void ReportCaught(Exception exception)
    {
        if (!WasReported(exception)) LogOrKeep(exception);
    }

    /// <summary>Reports that <paramref name="count"/> more failures were handled without being reported one by one
    /// (their number is logged, now or when the calling thread's outermost scope ends).</summary>
    public static void ReportUnreported(int count)
    {
        if (count <= 0) return;
        if (t_depth == 0) SlabLog.ErrorsNotLogged(count, KeptPerScope);
        else t_notReported += count;
    }

    /// <summary>True if SlabAlloc reported <paramref name="exception"/> where it built it (logged, or kept to be logged).</summary>
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
        /// <remarks>Never inlined, so that one call (the warm-up's) compiles it for every later scope: the reclaim of
        /// an ended thread's cache opens one inside another thread's first allocation.</remarks>
        [MethodImpl(MethodImplOptions.NoInlining)]
        public void Dispose() => End();
    }

    /// <summary>Failures reported in the calling thread's open scope (tests).</summary>
    internal static int KeptCount => t_count;

    private static void LogOrKeep(Exception exception)
    {
        if (t_depth == 0)
        {
            SlabLog.ErrorDetected(exception);
            return;
        }
        int kept = Math.Min(t_count, KeptPerScope);
        for (int i = 0; i < kept; i++)
            if (ReferenceEquals(t_kept[i], exception)) return;
        if (t_count < KeptPerScope) t_kept[t_count] = exception;
        t_count++;
    }

    private static void End()
    {
        Invariant.Holds(t_depth > 0, "a report scope is closed once, on the thread that opened it");
        if (--t_depth != 0 || t_count + t_notReported == 0) return;
        int count = t_count, kept = Math.Min(count, KeptPerScope), notLogged = count - kept + t_notReported;
        // Taken from the thread before any is logged: a logger that calls back into SlabAlloc may open and close
        // scopes of its own, which then start from nothing.
        Kept list = t_kept;
        t_kept = default;
        t_count = 0;
        t_notReported = 0;
        for (int i = 0; i < kept; i++) SlabLog.ErrorDetected(list[i]!);
        if (notLogged > 0) SlabLog.ErrorsNotLogged(notLogged, KeptPerScope);
    }
}
