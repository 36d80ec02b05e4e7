using Microsoft.Extensions.Logging;

namespace SlabAlloc.Support;

/// <summary>
/// The one place SlabAlloc logs from: the configured logger, the events of every build (errors, the
/// superslab arena used up) and, in <see cref="SlabLog"/>'s other half (SlabLogEvents.cs), the slow-path
/// debug events that only Debug builds contain.
/// </summary>
/// <remarks>
/// <para><b>Layer.</b> This class sits at the bottom of the layering, beside <c>Platform</c>:
/// <c>Memory</c>, <c>Pool</c>, <c>Frontend</c> and <c>Runtime</c> call it, and it
/// depends on nothing of SlabAlloc (no pool, thread cache, directory or option), only on
/// Microsoft.Extensions.Logging. Its events take plain numbers, so no type of an upper layer leaks
/// down into it.</para>
/// <para><b>Who writes what.</b> <see cref="s_logger"/> is written by
/// <c>SlabAllocLogging.Configure</c> (any thread, <c>Volatile.Write</c>) and read by every
/// event (<c>Volatile.Read</c>): a thread that races with a reconfiguration logs to the old logger
/// or the new one, both of which are valid. Null, the default, means no logging.</para>
/// <para><b>Failures.</b> The configured logger is wrapped in a <see cref="GuardedLogger"/> that
/// drops anything it throws: events are raised in the middle of slab hand-overs, on the upkeep's timer thread and
/// just before an exception is thrown, where a logging failure must not change what the allocator
/// does or which exception the caller sees.</para>
/// </remarks>
internal static partial class SlabLog
{
    private static ILogger? s_logger;

    /// <summary>The logger events go to, or null when logging is off.</summary>
    public static ILogger? Logger => Volatile.Read(ref s_logger);

    /// <summary>Sends events to <paramref name="logger"/> from now on; null turns logging off.</summary>
    public static void SetLogger(ILogger? logger) =>
        Volatile.Write(ref s_logger, logger is null ? null : new GuardedLogger(logger));

    /// <summary>Logs a detected failure (corruption, a bad pointer, a double free, out of memory) at
    /// Error level. Every build: called by <c>ErrorReports</c> just before the exception is thrown, or once the
    /// operation that found it has let go of what other threads wait for.</summary>
    public static void ErrorDetected(Exception exception)
    {
        if (Logger is { } logger) LogErrorDetected(logger, exception.Message, exception);
    }

    [LoggerMessage(EventId = 1, EventName = "ErrorDetected", Level = LogLevel.Error, Message = "SlabAlloc detected an error: {Detail}")]
    private static partial void LogErrorDetected(ILogger logger, string detail, Exception exception);

    /// <summary>Logs, at Error level, that <paramref name="count"/> more failures were found by one operation than the
    /// <paramref name="kept"/> it keeps to log once it has let go (<c>ErrorReports</c>). Every build.</summary>
    public static void ErrorsNotLogged(int count, int kept)
    {
        if (Logger is { } logger) LogErrorsNotLogged(logger, count, kept);
    }

    [LoggerMessage(EventId = 4, EventName = "ErrorsNotLogged", Level = LogLevel.Error,
        Message = "SlabAlloc detected {Count} more errors in one operation than the {Kept} it logs; they were handled as the logged ones were")]
    private static partial void LogErrorsNotLogged(ILogger logger, int count, int kept);

    /// <summary>Logs, at Error level, that a buffer rented from the memory pool was dropped without being
    /// disposed and that its block was given back by the owner's finalizer. Every build; the pool calls it
    /// for the first such buffer only.</summary>
    public static void PoolBufferNotDisposed(int lengthBytes)
    {
        if (Logger is { } logger) LogPoolBufferNotDisposed(logger, lengthBytes);
    }

    [LoggerMessage(EventId = 2, EventName = "PoolBufferNotDisposed", Level = LogLevel.Error,
        Message = "A {LengthBytes}-byte buffer rented from SlabMemoryPool was dropped without Dispose; its block was given back when the buffer was finalized. Later ones are counted (SlabStatistics.PoolBuffersReclaimed) but not logged.")]
    private static partial void LogPoolBufferNotDisposed(ILogger logger, int lengthBytes);

    /// <summary>Logs, at Warning level, that the superslab arena has no range left to cut: every range of it
    /// is cut (<paramref name="refused"/> false) or the system refused to open one. Every build; the arena
    /// calls it once.</summary>
    public static void SuperslabArenaUsedUp(long reservedBytes, long openBytes, bool refused)
    {
        if (Logger is { } logger)
            LogSuperslabArenaUsedUp(logger, refused ? "the system refused to open a range of it" : "every range of it has been cut",
                openBytes, reservedBytes);
    }

    [LoggerMessage(EventId = 3, EventName = "SuperslabArenaUsedUp", Level = LogLevel.Warning,
        Message = "The superslab arena is used up ({Reason}; {OpenBytes} of {ReservedBytes} bytes open): new superslabs are mapped on their own, and each free of their blocks looks the address up in the registry first")]
    private static partial void LogSuperslabArenaUsedUp(ILogger logger, string reason, long openBytes, long reservedBytes);

    /// <summary>Forwards to the configured logger and drops whatever it throws (see the class remarks).</summary>
    private sealed class GuardedLogger(ILogger inner) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull
        {
            try { return inner.BeginScope(state); }
            catch (Exception) { return null; } // a scope the logger cannot open is no reason to fail an allocation
        }

        public bool IsEnabled(LogLevel logLevel)
        {
            try { return inner.IsEnabled(logLevel); }
            catch (Exception) { return false; } // e.g. a disposed factory: treat as "off"
        }

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            try { inner.Log(logLevel, eventId, state, exception, formatter); }
            catch (Exception) { } // the event is lost; the allocator's own operation must go on unchanged
        }
    }
}
