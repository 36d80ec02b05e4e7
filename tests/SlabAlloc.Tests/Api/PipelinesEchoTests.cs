using System.Buffers;
using System.Diagnostics;
using SlabAlloc.Testing;
using Xunit.Abstractions;

namespace SlabAlloc.Tests.Api;

/// <summary>
/// <see cref="SlabMemoryPool"/> under a real client of System.IO.Pipelines: a TCP echo server on
/// 127.0.0.1 (<see cref="EchoServer"/>: stream pipe reader, a <see cref="System.IO.Pipelines.Pipe"/>,
/// stream pipe writer, all on the pool) and eight concurrent clients (<see cref="EchoClient"/>, on the
/// pool too) that send length-prefixed messages of 1 B to 1 MiB and check every byte of every echo.
/// </summary>
/// <remarks>
/// <para>The same echo runs on <see cref="MemoryPool{T}.Shared"/>, which proves the harness itself:
/// that it carries every message and touches no SlabAlloc memory, so that the blocks the SlabAlloc run
/// counts are the pool's.</para>
/// <para>In the non-parallel "SlabAlloc global state" collection: the tests compare
/// <see cref="SlabStatistics.BlocksInUse"/> and <see cref="SlabStatistics.BytesRequestedTotal"/>
/// exactly.</para>
/// </remarks>
[Collection("SlabAlloc global state")]
public sealed class PipelinesEchoTests(ITestOutputHelper output)
{
    private const int Clients = 8;
    private const int Seed = 20261206;

    /// <summary>Payload bytes each client sends (and so a few hundred messages each); the whole echo
    /// takes a few seconds.</summary>
    private static readonly long PayloadBytesPerClient = (32L << 20) * TestScale.Factor;

    /// <summary>Log-uniform: as many messages of 1-2 KiB as of 512 KiB-1 MiB.</summary>
    private static readonly EchoSizes Sizes = new(1, EchoFrame.MaxPayloadBytes);

    /// <summary>Only turns a hang into a failure; the echo itself takes seconds.</summary>
    private static readonly TimeSpan Timeout = TimeSpan.FromMinutes(2);

    /// <summary>What one client did: counted as it sent, and as its echoes came back intact.</summary>
    private readonly record struct ClientTally(int Sent, int Verified, long PayloadBytes, int Small, int Large);

    [Theory]
    [InlineData("slab")]
    [InlineData("shared")]
    public async Task EightClientsGetEveryMessageBackIntactAndNoBlockStaysInUse(string poolName)
    {
        MemoryPool<byte> pool = poolName == "slab" ? SlabMemoryPool.Shared : MemoryPool<byte>.Shared;
        SlabStatistics before = SlabMemory.GetStatistics();
        using var timeout = new CancellationTokenSource(Timeout);
        var clock = Stopwatch.StartNew();

        EchoServer server = EchoServer.Start(pool, timeout.Token);
        ClientTally[] tallies;
        try
        {
            Task<ClientTally>[] clients = Enumerable.Range(0, Clients)
                .Select(c => Task.Run(() => RunClientAsync(server, pool, c, timeout.Token)))
                .ToArray();
            tallies = await Task.WhenAll(clients);
        }
        catch (OperationCanceledException) when (timeout.IsCancellationRequested)
        {
            throw new TimeoutException($"the echo did not finish within {Timeout.TotalMinutes} minutes");
        }
        finally
        {
            await server.StopAsync();
        }

        output.WriteLine($"{poolName}: {server.FramesEchoed} messages, {server.PayloadBytesEchoed >> 20} MiB of payload echoed in {clock.Elapsed.TotalSeconds:F1} s; " +
            $"{tallies.Sum(t => t.Small)} under 1 KiB, {tallies.Sum(t => t.Large)} over 64 KiB");
        Assert.Empty(server.Failures);
        Assert.Equal(Clients, server.Connections);
        foreach (ClientTally t in tallies)
        {
            Assert.True(t.Sent > 0);
            Assert.Equal(t.Sent, t.Verified);
        }
        Assert.Equal(tallies.Sum(t => (long)t.Sent), server.FramesEchoed);
        Assert.Equal(tallies.Sum(t => t.PayloadBytes), server.PayloadBytesEchoed);
        // The seeded sizes do cover both ends: buffers of a few bytes, and large blocks (above 64 KiB).
        Assert.True(tallies.Sum(t => t.Small) > 0 && tallies.Sum(t => t.Large) > 0,
            $"{tallies.Sum(t => t.Small)} messages under 1 KiB, {tallies.Sum(t => t.Large)} over 64 KiB");

        SlabStatistics after = SlabMemory.GetStatistics();
        Assert.Equal(before.BlocksInUse, after.BlocksInUse);
        Assert.Equal(before.BytesInUse, after.BytesInUse);
        long requested = after.BytesRequestedTotal - before.BytesRequestedTotal;
        if (pool is SlabMemoryPool)
            Assert.True(requested >= server.PayloadBytesEchoed,
                $"the pipes rented {requested} bytes of SlabAlloc memory for {server.PayloadBytesEchoed} payload bytes echoed");
        else
            Assert.Equal(0, requested);
    }

    /// <summary>One client: messages of seeded sizes until it has sent its share of payload bytes, each
    /// checked as it comes back; then a clean close.</summary>
    private static async Task<ClientTally> RunClientAsync(EchoServer server, MemoryPool<byte> pool, int client, CancellationToken token)
    {
        var random = new Random(Seed + client);
        await using EchoClient echo = await EchoClient.ConnectAsync(server.EndPoint, pool, client, token);
        long payloadBytes = 0;
        int small = 0, large = 0;
        while (payloadBytes < PayloadBytesPerClient)
        {
            int size = Sizes.Next(random);
            await echo.EchoAsync(size, token);
            payloadBytes += size;
            if (size < 1024) small++;
            if (size > 64 * 1024) large++;
        }
        await echo.CloseAsync(token);
        return new ClientTally(echo.MessagesSent, echo.MessagesVerified, payloadBytes, small, large);
    }
}
