using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging;

namespace SlabAlloc.Tests.Support;

/// <summary>
/// What <see cref="SlabAllocLogging.Configure"/> logs at run time: a detected error at Error level in
/// every build, slow-path events only in a Debug build, and nothing once logging is turned off.
/// </summary>
[Collection("SlabAlloc global state")]
public sealed unsafe class LogEventsTests
{
    private const int ErrorDetectedId = 1;
    private const int SlabAcquiredId = 110;
    private const int ThreadCacheFlushedId = 120;
    private const int PoolTrimmedId = 121;
    private const int LargeBlockMappedId = 130, LargeBlockReusedId = 131, LargeBlockUnmappedId = 132;

    [Fact]
    public void ForeignPointer_IsLoggedOnceAtErrorLevel_NamingThePointer()
    {
        var factory = new RecordingLoggerFactory();
        void* foreign = NativeMemory.Alloc(64);
        string pointer = $"0x{(nuint)foreign:x}";
        try
        {
            SlabAllocLogging.Configure(factory);
            ArgumentException thrown = FreeExpectingRejection(foreign);

            var error = Assert.Single(factory.Entries, e => e.Level >= LogLevel.Error);
            Assert.Equal(LogLevel.Error, error.Level);
            Assert.Equal(ErrorDetectedId, error.EventId.Id);
            Assert.Equal(SlabAllocLogging.CategoryName, error.Category);
            Assert.Contains(pointer, error.Message);
            Assert.Contains("not allocated by SlabAlloc", error.Message);
            Assert.Same(thrown, error.Exception);

            SlabAllocLogging.Configure(null);
            FreeExpectingRejection(foreign);
            Assert.Single(factory.Entries, e => e.Level >= LogLevel.Error); // off: the second rejection is not logged
        }
        finally
        {
            SlabAllocLogging.Configure(null);
            NativeMemory.Free(foreign);
        }
    }

    [Fact]
    public void ThrowingLogger_DoesNotChangeTheExceptionTheCallerGets()
    {
        void* foreign = NativeMemory.Alloc(64);
        try
        {
            SlabAllocLogging.Configure(new RecordingLoggerFactory(throwOnLog: true));
            ArgumentException thrown = FreeExpectingRejection(foreign);
            Assert.Contains($"0x{(nuint)foreign:x}", thrown.Message);

            void* p = SlabMemory.Alloc(100); // the allocator still works, slow paths included
            SlabMemory.Free(p);
        }
        finally
        {
            SlabAllocLogging.Configure(null);
            NativeMemory.Free(foreign);
        }
    }

    [Fact]
    public void SlowPathEvents_AreLoggedInDebugBuildsOnly()
    {
        var factory = new RecordingLoggerFactory();
        int threadId = 0;
        try
        {
            SlabAllocLogging.Configure(factory);
            // A new thread's first allocation of a class always reaches the shared pool; its end
            // makes its thread cache reclaimable; Trim reclaims it, trims the pool and flushes the large cache.
            var worker = new Thread(() =>
            {
                threadId = Environment.CurrentManagedThreadId;
                void* small = SlabMemory.Alloc(48);
                void* large = SlabMemory.Alloc(1024 * 1024);
                SlabMemory.Free(small);
                SlabMemory.Free(large);
            });
            worker.Start();
            worker.Join();
            SlabMemory.Trim();
            // A GC may have let the thread's finalizable sentinel reclaim the cache first, on the finalizer thread.
            if (LogCompiledOutTests.SlabAllocIsDebugBuild)
                SpinWait.SpinUntil(() => factory.Entries.Any(e => e.EventId.Id == ThreadCacheFlushedId), TimeSpan.FromSeconds(10));
        }
        finally
        {
            SlabAllocLogging.Configure(null);
        }

        var debugEntries = factory.Entries.Where(e => e.Level < LogLevel.Error).ToList();
        if (!LogCompiledOutTests.SlabAllocIsDebugBuild)
        {
            Assert.Empty(debugEntries);
            return;
        }
        Assert.Contains(debugEntries, e => e.EventId.Id == SlabAcquiredId && e.Level == LogLevel.Trace && e.Message.Contains(" of class 2 "));
        Assert.Contains(debugEntries, e => e.EventId.Id == ThreadCacheFlushedId && e.Message.Contains($"thread {threadId})"));
        Assert.Contains(debugEntries, e => e.EventId.Id == PoolTrimmedId);
        Assert.Contains(debugEntries, e => e.EventId.Id is LargeBlockMappedId or LargeBlockReusedId);
        Assert.Contains(debugEntries, e => e.EventId.Id == LargeBlockUnmappedId);
        Assert.All(debugEntries, e => Assert.Equal(SlabAllocLogging.CategoryName, e.Category));
    }

    private static ArgumentException FreeExpectingRejection(void* p)
    {
        try
        {
            SlabMemory.Free(p);
        }
        catch (ArgumentException e)
        {
            return e;
        }
        throw new Xunit.Sdk.XunitException($"Free(0x{(nuint)p:x}) of a NativeMemory block was accepted");
    }
}

/// <summary>One log call as a <see cref="RecordingLoggerFactory"/> logger saw it.</summary>
internal sealed record LogEntry(string Category, LogLevel Level, EventId EventId, string Message, Exception? Exception);

/// <summary>An in-memory <see cref="ILoggerFactory"/> whose loggers record every entry at every level
/// (or, with <c>throwOnLog</c>, throw from every log call).</summary>
internal sealed class RecordingLoggerFactory(bool throwOnLog = false) : ILoggerFactory
{
    private readonly ConcurrentQueue<LogEntry> _entries = new();
    private readonly bool _throwOnLog = throwOnLog;

    /// <summary>Everything logged so far, in order (events may come from several threads).</summary>
    public IReadOnlyList<LogEntry> Entries => _entries.ToArray();

    public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

    public void AddProvider(ILoggerProvider provider) => throw new NotSupportedException();

    public void Dispose() { }

    private sealed class Logger(RecordingLoggerFactory factory, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (factory._throwOnLog) throw new InvalidOperationException("this logger always fails");
            factory._entries.Enqueue(new LogEntry(category, logLevel, eventId, formatter(state, exception), exception));
        }
    }
}
