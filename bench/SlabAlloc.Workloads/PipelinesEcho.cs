using System.Buffers;
using System.Diagnostics;
using System.Globalization;
using SlabAlloc.Testing;

namespace SlabAlloc.Workloads;

/// <summary>
/// A System.IO.Pipelines echo over loopback TCP, <see cref="SlabMemoryPool"/> against
/// <see cref="MemoryPool{T}.Shared"/>: <c>echo clients seconds [--pool slab|shared] [--sizes MIN-MAX|N] [--json]</c>.
/// </summary>
/// <remarks>
/// <para>The server and the clients are the echo test's (tools/Shared: <see cref="EchoServer"/>,
/// <see cref="EchoClient"/>, <see cref="EchoFrame"/>). The server reads each connection through a stream
/// pipe reader, passes whole frames through a <see cref="System.IO.Pipelines.Pipe"/> and writes them back
/// through a stream pipe writer; each client sends one length-prefixed message at a time, waits for its
/// echo and checks every byte of it. Every buffer, the clients' too, comes from the pool under test:
/// <see cref="SlabMemoryPool.Shared"/> (<c>slab</c>, the default) or <c>MemoryPool&lt;byte&gt;.Shared</c>
/// (<c>shared</c>). Given the latter, the pipes recognise it and rent arrays from
/// <c>ArrayPool&lt;byte&gt;.Shared</c> directly, without an owner object per buffer: the comparison is
/// with System.IO.Pipelines' default buffers, whereas every rent from SlabMemoryPool allocates its
/// owner (one small object per buffer, which the managed bytes per message show).</para>
/// <para>Payload sizes are drawn from a fixed seed per client: log-uniform between MIN and MAX (by
/// default 64 B to 64 KiB), or all N bytes (<see cref="EchoSizes"/>).</para>
/// <para>A run is a warm-up of the same echo on connections of its own (a fifth of the time, at most a
/// second), so that the code is compiled before it is measured, a full collection, then the measured
/// echo: the clients connect, are released together, and each echoes messages until the time is up.
/// Throughput, round-trip latency (Stopwatch timestamps around each message), managed allocation
/// (<c>GC.GetTotalAllocatedBytes(precise: true)</c>, the whole process: server and clients) and
/// collections are those of that timed part. The clients then close, the server stops, and the
/// resident memory is read, and SlabAlloc's blocks in use against those after the warm-up (0 on the
/// shared pool too, which shows that the harness holds no SlabAlloc memory of its own). SlabAlloc is
/// loaded in either case, as in every run of this harness, so its start-up is in both pools' resident
/// memory.</para>
/// <para>Exit code 1 when a connection failed or an echo differed, or when SlabAlloc's blocks in use did
/// not come back to where they were (a buffer leaked).</para>
/// </remarks>
internal static class PipelinesEcho
{
    private const int Seed = 20261206;
    private static readonly EchoSizes DefaultSizes = new(64, 64 * 1024);

    /// <summary>Beyond the run's own time: only turns a hang into a failure.</summary>
    private static readonly TimeSpan HangBound = TimeSpan.FromMinutes(2);

    public sealed record Arguments(int Clients, double Seconds, string Pool, EchoSizes Sizes);

    /// <param name="args">The arguments after the command, without the options.</param>
    /// <param name="pool">The value of <c>--pool</c>, if given.</param>
    /// <param name="sizes">The value of <c>--sizes</c>, if given.</param>
    public static Arguments Parse(IReadOnlyList<string> args, string? pool, string? sizes)
    {
        if (args.Count != 2) throw new ArgumentException("echo needs: clients seconds [--pool slab|shared] [--sizes MIN-MAX|N]");
        var a = new Arguments(int.Parse(args[0], CultureInfo.InvariantCulture), double.Parse(args[1], CultureInfo.InvariantCulture),
            pool ?? "slab", sizes is null ? DefaultSizes : EchoSizes.Parse(sizes));
        if (a.Clients < 1 || a.Seconds <= 0) throw new ArgumentException("echo: clients must be at least 1 and seconds positive");
        if (a.Pool is not ("slab" or "shared")) throw new ArgumentException($"echo: unknown pool '{a.Pool}' (slab or shared)");
        return a;
    }

    public static int Run(Arguments args, bool json)
    {
        MemoryPool<byte> pool = args.Pool == "slab" ? SlabMemoryPool.Shared : MemoryPool<byte>.Shared;
        long baselineRssKiB = ResidentMemory.CurrentKiB();
        try
        {
            _ = EchoAsync(pool, args, Math.Min(1, args.Seconds / 5)).GetAwaiter().GetResult();
            long blocksBefore = SlabMemory.GetStatistics().BlocksInUse;
            GC.Collect();
            Measurement m = EchoAsync(pool, args, args.Seconds).GetAwaiter().GetResult();
            SlabStatistics after = SlabMemory.GetStatistics();
            var figures = new EchoFigures
            {
                Pool = args.Pool,
                Clients = args.Clients,
                Sizes = args.Sizes.ToString(),
                Seconds = m.Seconds,
                Messages = m.Latency.Count,
                PayloadBytes = m.PayloadBytes,
                P50Us = Microseconds(m.Latency.ValueAtPercentile(50)),
                P99Us = Microseconds(m.Latency.ValueAtPercentile(99)),
                P999Us = Microseconds(m.Latency.ValueAtPercentile(99.9)),
                ManagedBytes = m.ManagedBytes,
                Gen0Collections = m.Gen0Collections,
                Gen1Collections = m.Gen1Collections,
                Gen2Collections = m.Gen2Collections,
                BaselineRssKiB = baselineRssKiB,
                PeakRssKiB = ResidentMemory.PeakKiB(),
                FinalRssKiB = ResidentMemory.CurrentKiB(),
                SlabBlocksInUse = after.BlocksInUse - blocksBefore,
                SlabBytesMapped = after.BytesMapped,
            };
            Console.WriteLine(json ? figures.ToJson() : Line(figures));
            if (figures.SlabBlocksInUse != 0)
            {
                Console.Error.WriteLine($"echo: {figures.SlabBlocksInUse} SlabAlloc blocks still in use after every connection closed: a buffer leaked");
                return 1;
            }
            return 0;
        }
        catch (Exception e) when (e is InvalidDataException or IOException or OperationCanceledException or AggregateException)
        {
            Console.Error.WriteLine($"echo failed: {e}");
            return 1;
        }
    }

    /// <summary>The timed part's figures; the latency histogram counts the messages.</summary>
    private sealed record Measurement(double Seconds, long PayloadBytes, LatencyHistogram Latency, long ManagedBytes,
        int Gen0Collections, int Gen1Collections, int Gen2Collections);

    /// <summary>One echo: a server, the clients connected, released together for <paramref name="seconds"/>,
    /// then closed and the server stopped.</summary>
    /// <exception cref="AggregateException">Connections of the server failed.</exception>
    private static async Task<Measurement> EchoAsync(MemoryPool<byte> pool, Arguments args, double seconds)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(seconds) + HangBound);
        EchoServer server = EchoServer.Start(pool, timeout.Token);
        var clients = new EchoClient?[args.Clients];
        Measurement measurement;
        try
        {
            for (int c = 0; c < clients.Length; c++)
                clients[c] = await EchoClient.ConnectAsync(server.EndPoint, pool, c, timeout.Token).ConfigureAwait(false);
            var go = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            using var stop = new CancellationTokenSource();
            Task<(LatencyHistogram, long)>[] runs = clients
                .Select(c => Task.Run(() => RunClientAsync(c!, args.Sizes, go.Task, stop.Token, timeout.Token)))
                .ToArray();

            long allocated = GC.GetTotalAllocatedBytes(precise: true);
            int gen0 = GC.CollectionCount(0), gen1 = GC.CollectionCount(1), gen2 = GC.CollectionCount(2);
            long start = Stopwatch.GetTimestamp();
            go.SetResult();
            stop.CancelAfter(TimeSpan.FromSeconds(seconds));
            (LatencyHistogram Latency, long PayloadBytes)[] done = await Task.WhenAll(runs).ConfigureAwait(false);
            double elapsed = Stopwatch.GetElapsedTime(start).TotalSeconds;
            long managed = GC.GetTotalAllocatedBytes(precise: true) - allocated;
            measurement = new Measurement(elapsed, done.Sum(d => d.PayloadBytes), new LatencyHistogram(), managed,
                GC.CollectionCount(0) - gen0, GC.CollectionCount(1) - gen1, GC.CollectionCount(2) - gen2);
            foreach ((LatencyHistogram latency, _) in done) measurement.Latency.Add(latency);

            foreach (EchoClient? client in clients) await client!.CloseAsync(timeout.Token).ConfigureAwait(false);
        }
        finally
        {
            foreach (EchoClient? client in clients)
                if (client is not null) await client.DisposeAsync().ConfigureAwait(false);
            await server.StopAsync().ConfigureAwait(false);
        }
        if (server.Failures.Count > 0) throw new AggregateException("connections of the echo server failed", server.Failures);
        return measurement;
    }

    /// <summary>One client: messages of seeded sizes, one at a time, until <paramref name="stop"/>; returns
    /// its round trips and the payload bytes it had echoed.</summary>
    private static async Task<(LatencyHistogram, long)> RunClientAsync(EchoClient client, EchoSizes sizes, Task go,
        CancellationToken stop, CancellationToken timeout)
    {
        var random = new Random(Seed + client.Client);
        var latency = new LatencyHistogram();
        long payloadBytes = 0;
        await go.ConfigureAwait(false);
        while (!stop.IsCancellationRequested)
        {
            int size = sizes.Next(random);
            latency.Record(await client.EchoAsync(size, timeout).ConfigureAwait(false));
            payloadBytes += size;
        }
        return (latency, payloadBytes);
    }

    private static string Line(EchoFigures f) =>
        $"echo: {f.Clients} clients, pool {f.Pool}, sizes {f.Sizes}, {f.Seconds:F2} s: {f.Messages} messages ({f.MessagesPerSecond:F0}/s), " +
        $"{f.MegabytesPerSecond:F1} MB/s; round trip p50 {f.P50Us:F1} us, p99 {f.P99Us:F1} us, p99.9 {f.P999Us:F1} us; " +
        $"managed {f.ManagedBytesPerMessage:F1} B/message, GC {f.Gen0Collections}/{f.Gen1Collections}/{f.Gen2Collections}; " +
        $"RSS baseline {f.BaselineRssKiB / 1024.0:F1}, peak {f.PeakRssKiB / 1024.0:F1}, final {f.FinalRssKiB / 1024.0:F1} MiB" +
        $"; SlabAlloc blocks in use after {f.SlabBlocksInUse}, mapped {f.SlabBytesMapped / (1024.0 * 1024.0):F1} MiB";

    private static double Microseconds(long ticks) => ticks * 1e6 / Stopwatch.Frequency;
}
