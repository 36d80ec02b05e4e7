using Microsoft.Extensions.Logging;

namespace SlabAlloc.CheckedProbe;

/// <summary>
/// What every scenario shares: the output protocol (a failure is a line of its own, and <c>PROBE_OK</c>
/// comes last only when nothing failed), the stamps that show whether a block was overwritten, and the
/// final check that the allocator still works with exact accounting.
/// </summary>
internal static unsafe class Probe
{
    /// <summary>What an entry returns when its arguments do not parse: the dispatcher prints the usage
    /// and exits with 2.</summary>
    public const int BadArguments = -1;

    private static bool s_failed;

    /// <summary>True once any check of this process has failed.</summary>
    public static bool Failed => s_failed;

    /// <summary>Prints <paramref name="line"/> and marks the probe failed (exit code 1, no <c>PROBE_OK</c>).
    /// Called from any thread.</summary>
    public static void Fail(string line)
    {
        Console.WriteLine(line);
        s_failed = true;
    }

    /// <summary>An exception's message on one line: the tests read the output line by line.</summary>
    public static string OneLine(string message) => message.ReplaceLineEndings(" ");

    /// <summary>The end of a scenario that went its course: checks that the allocator still works and that
    /// <c>BlocksInUse</c> comes back to <paramref name="baseline"/>, then prints <c>PROBE_OK</c> and returns 0,
    /// or returns 1 when this or any earlier check failed.</summary>
    public static int Finish(long baseline)
    {
        CheckAllocatorWorks(baseline);
        if (s_failed) return 1;
        Console.WriteLine("PROBE_OK");
        return 0;
    }

    /// <summary>Allocates a block of each of ten sizes from 1 to 300,000 bytes, stamps them, and checks that
    /// none overlaps another and that the count of blocks in use is exact while they are out and after they
    /// are freed. Prints <c>ALLOCATOR_WORKS</c>, or a failure line.</summary>
    public static void CheckAllocatorWorks(long baseline)
    {
        nuint[] sizes = { 1, 16, 64, 100, 1000, 1025, 8192, 20000, 65536, 300_000 };
        var blocks = new nuint[sizes.Length];
        for (int i = 0; i < sizes.Length; i++)
        {
            var p = (byte*)SlabMemory.Alloc(sizes[i]);
            Stamp(p, sizes[i], (byte)(i + 1));
            blocks[i] = (nuint)p;
        }
        long inUse = SlabMemory.GetStatistics().BlocksInUse;
        if (inUse != baseline + sizes.Length) Fail($"ACCOUNTING_WRONG: BlocksInUse {inUse} with {sizes.Length} blocks out, expected {baseline + sizes.Length}");
        for (int i = 0; i < sizes.Length; i++)
        {
            if (!Verify((byte*)blocks[i], sizes[i], (byte)(i + 1))) Fail($"ALLOCATOR_BROKEN: the {sizes[i]}-byte block overlaps another");
            SlabMemory.Free((void*)blocks[i]);
        }
        long end = SlabMemory.GetStatistics().BlocksInUse;
        if (end != baseline) Fail($"ACCOUNTING_WRONG: BlocksInUse {end} at the end, expected {baseline}");
        else Console.WriteLine($"ALLOCATOR_WORKS: BlocksInUse {end}");
    }

    private static int s_loggerTrims;

    /// <summary>What a logger does that hands its work to a thread that calls into SlabAlloc: the first time, runs
    /// <c>Trim</c> on a thread of its own and waits for it, then prints <c>LOGGER_TRIM_RETURNED</c>; after 20 s it
    /// prints <c>LOGGER_WAITED_FOR_EVER</c> and ends the process with exit code 4 (the waiting thread cannot be freed).</summary>
    public static void TrimOnAnotherThreadOnce()
    {
        if (Interlocked.Exchange(ref s_loggerTrims, 1) != 0) return;
        var trim = new Thread(() =>
        {
            try { SlabMemory.Trim(); }
            catch (InvalidOperationException) { } // a corruption this Trim meets as well
        });
        trim.Start();
        if (!trim.Join(TimeSpan.FromSeconds(20)))
        {
            Console.WriteLine("LOGGER_WAITED_FOR_EVER");
            Environment.Exit(4);
        }
        Console.WriteLine("LOGGER_TRIM_RETURNED");
    }

    /// <summary>Runs <paramref name="body"/> on a thread of its own, which then ends, and returns what it returned.</summary>
    public static nint[] RunOnNewThread(Func<nint[]> body)
    {
        nint[] result = [];
        var t = new Thread(() => result = body());
        t.Start();
        t.Join();
        return result;
    }

    /// <summary>Writes a pattern that depends on <paramref name="seed"/> and on each byte's offset, so that
    /// another block written over this one (or this one over another) shows in <see cref="Verify"/>.</summary>
    public static void Stamp(byte* p, nuint size, byte seed)
    {
        for (nuint i = 0; i < size; i++) p[i] = (byte)(seed + i * 7);
    }

    /// <summary>True when the <paramref name="size"/> bytes at <paramref name="p"/> still hold the pattern
    /// <see cref="Stamp"/> wrote with <paramref name="seed"/>.</summary>
    public static bool Verify(byte* p, nuint size, byte seed)
    {
        for (nuint i = 0; i < size; i++)
            if (p[i] != (byte)(seed + i * 7)) return false;
        return true;
    }

    /// <summary>Prints the statistics' line on the superslab arena, as <c>STATISTICS: superslab arena …</c>.</summary>
    public static void PrintArenaStatistics() =>
        Console.WriteLine($"STATISTICS: {SlabMemory.GetStatistics().ToString().Split('\n').Single(l => l.StartsWith("superslab arena", StringComparison.Ordinal))}");

    /// <summary>A logger factory whose loggers print what SlabAlloc logs at one level as lines the tests read,
    /// whichever thread met the problem: <see cref="Errors"/> and <see cref="Warnings"/>.</summary>
    public sealed class LogPrinter : ILoggerFactory, ILogger
    {
        private readonly Func<LogLevel, bool> _enabled;
        private readonly Func<EventId, string, string> _line;
        private readonly Action? _afterEach;

        private LogPrinter(Func<LogLevel, bool> enabled, Func<EventId, string, string> line, Action? afterEach = null) =>
            (_enabled, _line, _afterEach) = (enabled, line, afterEach);

        /// <summary>Every error, as <c>LOGGED_ERROR: &lt;message&gt;</c>, each followed by
        /// <paramref name="afterEach"/> on the thread that logged it (a logger that calls back into SlabAlloc).</summary>
        public static LogPrinter Errors(Action? afterEach = null) =>
            new(level => level >= LogLevel.Error, (_, message) => $"LOGGED_ERROR: {message}", afterEach);

        /// <summary>Every warning, as <c>LOGGED_WARNING: &lt;event&gt;: &lt;message&gt;</c>, each followed by
        /// <paramref name="afterEach"/> as in <see cref="Errors"/>.</summary>
        public static LogPrinter Warnings(Action? afterEach = null) =>
            new(level => level == LogLevel.Warning, (e, message) => $"LOGGED_WARNING: {e.Name}: {message}", afterEach);

        public ILogger CreateLogger(string categoryName) => this;
        public void AddProvider(ILoggerProvider provider) { }
        public void Dispose() { }
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
        public bool IsEnabled(LogLevel logLevel) => _enabled(logLevel);
        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (!IsEnabled(logLevel)) return;
            Console.WriteLine(_line(eventId, formatter(state, exception)));
            _afterEach?.Invoke();
        }
    }
}
