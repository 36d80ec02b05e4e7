using System.Buffers;
using System.Runtime.CompilerServices;
using Microsoft.Extensions.Logging;
using static SlabAlloc.CheckedProbe.Probe;

namespace SlabAlloc.CheckedProbe.Scenarios;

/// <summary>
/// <c>dropped-owners &lt;count&gt;</c>: rents and disposes <c>count</c> buffers of a <see cref="SlabMemoryPool"/>,
/// so that it has idle owners to reuse; then rents <c>count</c> buffers of sizes from 1 B to 200 KiB, stamps
/// them and drops the owners without Dispose, twice over (so the second batch cannot be the first logged),
/// then collects until their finalizers have run. Prints <c>REUSED some</c> when dropped owners include
/// reused ones (<c>none</c> in checked mode, where owners are never reused). Prints
/// <c>RECLAIMED &lt;n&gt;</c> (the statistics' count) and <c>LOGGED &lt;n&gt;</c> (error events about dropped
/// buffers); fails unless every block came back, the count is exact and exactly one error was logged. Run in a
/// fresh process because the error is logged once per process.
/// </summary>
internal static unsafe class DroppedOwners
{
    private const int PoolBufferNotDisposedEventId = 2;

    public static int Run(string[] args, long baseline)
    {
        if (args.Length != 1 || !int.TryParse(args[0], out int count) || count < 1) return BadArguments;
        var logger = new CountingLoggerFactory();
        SlabAllocLogging.Configure(logger);
        long reclaimedBefore = SlabMemory.GetStatistics().PoolBuffersReclaimed;

        using var pool = new SlabMemoryPool();
        IMemoryOwner<byte> kept = pool.Rent(100); // one disposed properly: not counted
        // Owners rented and disposed first, so that the dropped ones include reused owners (Dispose
        // suppressed their finalization; renting them again must lift that).
        var disposed = new IMemoryOwner<byte>[count];
        for (int i = 0; i < count; i++) disposed[i] = pool.Rent(64);
        foreach (IMemoryOwner<byte> owner in disposed) owner.Dispose();
        Array.Clear(disposed); // the reused ones must be unreachable once dropped
        long createdBefore = SlabMemory.GetStatistics().PoolOwnersCreated;
        for (int batch = 0; batch < 2; batch++) RentAndDrop(pool, count, seed: batch);
        long reclaimed = 0;
        for (int attempt = 0; attempt < 100 && reclaimed < 2L * count; attempt++)
        {
            GC.Collect();
            GC.WaitForPendingFinalizers();
            reclaimed = SlabMemory.GetStatistics().PoolBuffersReclaimed - reclaimedBefore;
        }
        kept.Dispose();
        long reused = 2L * count - (SlabMemory.GetStatistics().PoolOwnersCreated - createdBefore);
        Console.WriteLine($"REUSED {(reused > 0 ? "some" : "none")}");
        Console.WriteLine($"RECLAIMED {reclaimed}");
        Console.WriteLine($"LOGGED {logger.Errors}");
        if (reclaimed != 2L * count) Fail($"RECLAIMED_WRONG: {reclaimed}, expected {2 * count}");
        if (logger.Errors != 1) Fail($"LOGGED_WRONG: {logger.Errors} error events about dropped buffers, expected 1");
        SlabAllocLogging.Configure(null);
        return Finish(baseline);
    }

    /// <summary>Out of line, so that no reference to an owner survives in the caller's frame.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void RentAndDrop(SlabMemoryPool pool, int count, int seed)
    {
        var random = new Random(seed);
        for (int i = 0; i < count; i++)
        {
            int size = (int)Math.Exp(random.NextDouble() * Math.Log(200 * 1024));
            IMemoryOwner<byte> owner = pool.Rent(size);
            using MemoryHandle pin = owner.Memory.Pin();
            Stamp((byte*)pin.Pointer, (nuint)owner.Memory.Length, (byte)i);
        }
    }

    private sealed class CountingLoggerFactory : ILoggerFactory, ILogger
    {
        private int _errors;
        public int Errors => Volatile.Read(ref _errors);
        public ILogger CreateLogger(string categoryName) => this;
        public void AddProvider(ILoggerProvider provider) { }
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
        public bool IsEnabled(LogLevel logLevel) => true;
        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (logLevel == LogLevel.Error && eventId.Id == PoolBufferNotDisposedEventId) Interlocked.Increment(ref _errors);
        }
        public void Dispose() { }
    }
}
