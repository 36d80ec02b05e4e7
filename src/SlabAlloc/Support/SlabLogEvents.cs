using System.Diagnostics;
using Microsoft.Extensions.Logging;

namespace SlabAlloc.Support;

/// <summary>
/// The slow-path debug events: superslabs mapped and returned, slabs acquired and released,
/// directory and registry growth, thread caches flushed at thread exit, trims, large blocks.
/// </summary>
/// <remarks>
/// <para>Each event is a <c>[LoggerMessage]</c> method (<c>LogXxx</c>, generated: no boxing, no
/// template parsing per call) behind a <c>[Conditional("DEBUG")]</c> wrapper (<c>Xxx</c>). Call sites
/// call only the wrapper, so a Release build drops the call <i>and the evaluation of its
/// arguments</i> (the C# compiler removes the whole call expression): the fast and slow paths of a
/// Release build are exactly what they were without logging. The wrappers and the generated methods
/// still exist in the Release assembly, uncalled; <c>LogCompiledOutTests</c> reads the Release
/// assembly's IL to prove that no method outside <see cref="SlabLog"/> calls them.</para>
/// <para>A Debug build calls the wrapper, which costs one volatile read when no logger is
/// configured. Levels: Debug for events that happen a few times per superslab or per thread; Trace
/// for per-slab hand-overs, which happen on every thread-cache miss that reaches the pool.</para>
/// <para>Events are raised from lock-free protocols, from inside the mutex pool's lock and from
/// the upkeep's timer, always at a point where the structure they describe is consistent again.</para>
/// </remarks>
internal static partial class SlabLog
{
    // Largest sizes already logged, so that growth is logged once per step (any thread, by CAS).
    private static long s_directoryBytesLogged;
    private static long s_registryBytesLogged;

    /// <summary>Stage 3 mapped a new superslab at <paramref name="address"/> and published it at
    /// <paramref name="directoryIndex"/>.</summary>
    [Conditional("DEBUG")]
    internal static void SuperslabMapped(nuint address, uint directoryIndex)
    {
        if (Logger is { } logger) LogSuperslabMapped(logger, address, directoryIndex);
    }

    /// <summary>An empty superslab was retired: unmapped, its directory index freed for reuse.</summary>
    [Conditional("DEBUG")]
    internal static void SuperslabRetired(nuint address, uint directoryIndex)
    {
        if (Logger is { } logger) LogSuperslabRetired(logger, address, directoryIndex);
    }

    /// <summary>Logs the directory's size when it has grown since it was last logged.</summary>
    [Conditional("DEBUG")]
    internal static void DirectoryCapacity(int entries, long mappedBytes)
    {
        if (Logger is { } logger && Raise(ref s_directoryBytesLogged, mappedBytes)) LogDirectoryGrew(logger, entries, mappedBytes);
    }

    /// <summary>Logs the registry's size when a leaf has been added since it was last logged.</summary>
    [Conditional("DEBUG")]
    internal static void RegistryCapacity(long mappedBytes)
    {
        if (Logger is { } logger && Raise(ref s_registryBytesLogged, mappedBytes)) LogRegistryGrew(logger, mappedBytes);
    }

    /// <summary>The shared pool handed slab <paramref name="slabIndex"/> of <paramref name="sizeClass"/>
    /// to a thread cache from <paramref name="stage"/> 1 (a listed slab), 2 (claimed slots) or 3 (a new superslab).</summary>
    [Conditional("DEBUG")]
    internal static void SlabAcquired(int sizeClass, int stage, uint slabIndex)
    {
        if (Logger is { } logger) LogSlabAcquired(logger, slabIndex, sizeClass, stage);
    }

    /// <summary>An empty slab was kept formatted on its class's empty list.</summary>
    [Conditional("DEBUG")]
    internal static void SlabReleasedToEmptyList(int sizeClass, uint slabIndex)
    {
        if (Logger is { } logger) LogSlabReleasedToEmptyList(logger, slabIndex, sizeClass);
    }

    /// <summary>An empty one-slot slab beyond its class's limit went to the shared reserve, for any one-slot class.</summary>
    [Conditional("DEBUG")]
    internal static void SlabReleasedToReserve(int sizeClass, uint slabIndex)
    {
        if (Logger is { } logger) LogSlabReleasedToReserve(logger, slabIndex, sizeClass);
    }

    /// <summary>An empty slab's slots went back to its superslab (their pages decommitted, or left resident until a purge).</summary>
    [Conditional("DEBUG")]
    internal static void SlabReleasedToUnused(int sizeClass, uint slabIndex)
    {
        if (Logger is { } logger) LogSlabReleasedToUnused(logger, slabIndex, sizeClass);
    }

    /// <summary>The thread cache at <paramref name="heapAddress"/> handed its slabs back after its
    /// thread (<paramref name="managedThreadId"/>, -1 if unknown) ended.</summary>
    [Conditional("DEBUG")]
    internal static void ThreadCacheFlushed(nuint heapAddress, long generation, int managedThreadId)
    {
        if (Logger is { } logger) LogThreadCacheFlushed(logger, heapAddress, generation, managedThreadId);
    }

    /// <summary>The shared pool finished a trim; the numbers are totals since start-up.</summary>
    [Conditional("DEBUG")]
    internal static void PoolTrimmed(long superslabsMapped, long superslabsRetired, long slabsReleasedToUnused)
    {
        if (Logger is { } logger) LogPoolTrimmed(logger, superslabsMapped - superslabsRetired, superslabsRetired, slabsReleasedToUnused);
    }

    /// <summary>A large block got its region: a new mapping (<paramref name="fresh"/>) or one from the cache.</summary>
    [Conditional("DEBUG")]
    internal static void LargeBlockMapped(nuint region, nuint mappedBytes, bool fresh)
    {
        if (Logger is not { } logger) return;
        if (fresh) LogLargeBlockMapped(logger, region, mappedBytes);
        else LogLargeBlockReused(logger, region, mappedBytes);
    }

    /// <summary>A large block's region was returned to the system (not kept in the cache).</summary>
    [Conditional("DEBUG")]
    internal static void LargeBlockUnmapped(nuint region, nuint mappedBytes)
    {
        if (Logger is { } logger) LogLargeBlockUnmapped(logger, region, mappedBytes);
    }

    /// <summary>Raises <paramref name="logged"/> to <paramref name="value"/>; true for the one caller that did.</summary>
    private static bool Raise(ref long logged, long value)
    {
        while (true)
        {
            long seen = Volatile.Read(ref logged);
            if (value <= seen) return false;
            // Loses to another thread logging a size; retry against its value, which may already cover ours.
            if (Interlocked.CompareExchange(ref logged, value, seen) == seen) return true;
        }
    }

    [LoggerMessage(EventId = 100, EventName = "SuperslabMapped", Level = LogLevel.Debug, Message = "Superslab mapped at 0x{Address:x}, directory index {DirectoryIndex}")]
    private static partial void LogSuperslabMapped(ILogger logger, nuint address, uint directoryIndex);

    [LoggerMessage(EventId = 101, EventName = "SuperslabRetired", Level = LogLevel.Debug, Message = "Superslab at 0x{Address:x} (directory index {DirectoryIndex}) returned to the system")]
    private static partial void LogSuperslabRetired(ILogger logger, nuint address, uint directoryIndex);

    [LoggerMessage(EventId = 102, EventName = "DirectoryGrew", Level = LogLevel.Debug, Message = "Superslab directory grew to {Entries} entries ({MappedBytes} bytes mapped)")]
    private static partial void LogDirectoryGrew(ILogger logger, int entries, long mappedBytes);

    [LoggerMessage(EventId = 103, EventName = "RegistryGrew", Level = LogLevel.Debug, Message = "Address registry mapped a new leaf ({MappedBytes} bytes mapped)")]
    private static partial void LogRegistryGrew(ILogger logger, long mappedBytes);

    [LoggerMessage(EventId = 110, EventName = "SlabAcquired", Level = LogLevel.Trace, Message = "Slab {SlabIndex} of class {SizeClass} acquired from stage {Stage}")]
    private static partial void LogSlabAcquired(ILogger logger, uint slabIndex, int sizeClass, int stage);

    [LoggerMessage(EventId = 111, EventName = "SlabReleasedToEmptyList", Level = LogLevel.Trace, Message = "Slab {SlabIndex} of class {SizeClass} released to the empty list")]
    private static partial void LogSlabReleasedToEmptyList(ILogger logger, uint slabIndex, int sizeClass);

    [LoggerMessage(EventId = 113, EventName = "SlabReleasedToReserve", Level = LogLevel.Trace, Message = "Slab {SlabIndex} of class {SizeClass} released to the shared reserve, for any one-slot class")]
    private static partial void LogSlabReleasedToReserve(ILogger logger, uint slabIndex, int sizeClass);

    [LoggerMessage(EventId = 112, EventName = "SlabReleasedToUnused", Level = LogLevel.Trace, Message = "Slab {SlabIndex} of class {SizeClass} released to unused slots")]
    private static partial void LogSlabReleasedToUnused(ILogger logger, uint slabIndex, int sizeClass);

    [LoggerMessage(EventId = 120, EventName = "ThreadCacheFlushed", Level = LogLevel.Debug, Message = "Thread cache 0x{HeapAddress:x} (generation {Generation}, thread {ManagedThreadId}) flushed after its thread ended")]
    private static partial void LogThreadCacheFlushed(ILogger logger, nuint heapAddress, long generation, int managedThreadId);

    [LoggerMessage(EventId = 121, EventName = "PoolTrimmed", Level = LogLevel.Debug, Message = "Pool trimmed: {SuperslabsLive} superslabs mapped; since start-up {SuperslabsRetired} returned, {SlabsReleasedToUnused} slabs released to unused slots")]
    private static partial void LogPoolTrimmed(ILogger logger, long superslabsLive, long superslabsRetired, long slabsReleasedToUnused);

    [LoggerMessage(EventId = 130, EventName = "LargeBlockMapped", Level = LogLevel.Debug, Message = "Large block region mapped at 0x{Region:x}, {MappedBytes} bytes")]
    private static partial void LogLargeBlockMapped(ILogger logger, nuint region, nuint mappedBytes);

    [LoggerMessage(EventId = 131, EventName = "LargeBlockReused", Level = LogLevel.Trace, Message = "Large block region 0x{Region:x}, {MappedBytes} bytes, reused from the cache")]
    private static partial void LogLargeBlockReused(ILogger logger, nuint region, nuint mappedBytes);

    [LoggerMessage(EventId = 132, EventName = "LargeBlockUnmapped", Level = LogLevel.Debug, Message = "Large block region at 0x{Region:x}, {MappedBytes} bytes, returned to the system")]
    private static partial void LogLargeBlockUnmapped(ILogger logger, nuint region, nuint mappedBytes);
}
