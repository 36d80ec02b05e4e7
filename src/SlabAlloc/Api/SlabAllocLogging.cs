using Microsoft.Extensions.Logging;
using SlabAlloc.Support;

namespace SlabAlloc;

/// <summary>
/// Sends SlabAlloc's log events to Microsoft.Extensions.Logging. By default nothing is logged.
/// </summary>
/// <remarks>
/// <para><b>Release builds</b> log only errors: every corruption, bad pointer, double free or
/// out-of-memory condition that SlabAlloc detects is logged at <see cref="LogLevel.Error"/> (event
/// id 1, "ErrorDetected") just before the exception that reports it is thrown. The slow-path debug
/// events are compiled out of a Release build entirely (no call, no evaluation of arguments), so
/// logging costs a Release build nothing outside its error paths.</para>
/// <para><b>Debug builds</b> log, in addition, slow-path events (event ids 100 and up): superslabs
/// mapped and returned to the system, directory and registry growth, thread caches flushed after
/// their thread ended, pool trims and large regions mapped and unmapped at
/// <see cref="LogLevel.Debug"/>; slabs acquired (with the pool stage that served them) and released,
/// and large regions reused from the cache, at <see cref="LogLevel.Trace"/>. No event is raised on
/// the allocation or free fast path.</para>
/// <para>Events are raised on the allocating thread, inside the mutex pool's lock and on the
/// periodic upkeep's thread-pool thread, so the logger must not call <see cref="SlabMemory"/> itself, and should be
/// quick. An exception thrown by the logger is dropped: logging never changes what the allocator
/// does. Call <c>Configure(null)</c> before disposing the factory.</para>
/// </remarks>
public static class SlabAllocLogging
{
    /// <summary>The category of SlabAlloc's logger.</summary>
    public const string CategoryName = "SlabAlloc";

    /// <summary>Logs SlabAlloc's events through a logger from <paramref name="factory"/> (category
    /// <see cref="CategoryName"/>) from now on, on every thread.</summary>
    /// <param name="factory">The factory to create the logger with; null turns logging off.</param>
    public static void Configure(ILoggerFactory? factory) => SlabLog.SetLogger(factory?.CreateLogger(CategoryName));
}
