using System.Buffers;
using System.Diagnostics;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;

namespace SlabAlloc.Testing;

/// <summary>
/// One client of <see cref="EchoServer"/>: a socket of its own, read and written through
/// System.IO.Pipelines with its buffers from a <see cref="MemoryPool{T}"/>. It sends one message at a
/// time (<see cref="EchoAsync"/>), waits for the whole echo and checks every byte of it
/// (<see cref="EchoFrame.Verify"/>), so that a round trip is one message's latency.
/// </summary>
/// <remarks>
/// <para>Messages are numbered from 0 in the order sent; <see cref="MessagesSent"/> and
/// <see cref="MessagesVerified"/> differ only while a round trip is under way or after one failed.</para>
/// <para><see cref="CloseAsync"/> ends the conversation cleanly; <see cref="DisposeAsync"/> then closes
/// the socket. Disposing without closing abandons the connection: the writer's unsent bytes are dropped
/// and every buffer still goes back to the pool.</para>
/// </remarks>
internal sealed class EchoClient : IAsyncDisposable
{
    private readonly Socket _socket;
    private readonly NetworkStream _stream;
    private readonly PipeReader _input;
    private readonly PipeWriter _output;

    private EchoClient(Socket socket, MemoryPool<byte> pool, int client)
    {
        _socket = socket;
        _stream = new NetworkStream(socket, ownsSocket: false);
        _input = PipeReader.Create(_stream, new StreamPipeReaderOptions(pool: pool, leaveOpen: true));
        _output = PipeWriter.Create(_stream, new StreamPipeWriterOptions(pool: pool, leaveOpen: true));
        Client = client;
    }

    /// <summary>Connects to <paramref name="server"/> as client number <paramref name="client"/>, which
    /// goes into every frame's header and chooses its payloads.</summary>
    public static async Task<EchoClient> ConnectAsync(EndPoint server, MemoryPool<byte> pool, int client, CancellationToken token)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(server, token).ConfigureAwait(false);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
        return new EchoClient(socket, pool, client);
    }

    /// <summary>This client's number.</summary>
    public int Client { get; }

    /// <summary>Messages sent, and of them those whose echo came back intact.</summary>
    public int MessagesSent { get; private set; }

    /// <inheritdoc cref="MessagesSent"/>
    public int MessagesVerified { get; private set; }

    /// <summary>Sends the next message, with a payload of <paramref name="payloadBytes"/> bytes, waits for
    /// its echo and checks it.</summary>
    /// <returns>The round trip in <see cref="Stopwatch"/> ticks: from before the frame is written to when
    /// the last byte of its echo has been read (the check is not included).</returns>
    /// <exception cref="InvalidDataException">The echo differs, or the connection ended before it was whole.</exception>
    /// <remarks>Pooled (<see cref="PoolingAsyncValueTaskMethodBuilder{TResult}"/>): a round trip that has
    /// to wait reuses a state machine instead of allocating one, so that what the benchmark counts per
    /// message is the pipelines' and the pool's, not this harness's.</remarks>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public async ValueTask<long> EchoAsync(int payloadBytes, CancellationToken token)
    {
        int message = MessagesSent;
        long start = Stopwatch.GetTimestamp();
        EchoFrame.Write(_output, Client, message, payloadBytes);
        MessagesSent++;
        await _output.FlushAsync(token).ConfigureAwait(false);
        long frameBytes = EchoFrame.HeaderBytes + (long)payloadBytes;
        while (true)
        {
            ReadResult result = await _input.ReadAsync(token).ConfigureAwait(false);
            ReadOnlySequence<byte> buffer = result.Buffer;
            if (buffer.Length >= frameBytes)
            {
                long ticks = Stopwatch.GetTimestamp() - start;
                ReadOnlySequence<byte> frame = buffer.Slice(0, frameBytes);
                EchoFrame.Verify(frame, Client, message, payloadBytes);
                _input.AdvanceTo(frame.End);
                MessagesVerified++;
                return ticks;
            }
            if (result.IsCompleted)
                throw new InvalidDataException($"client {Client}: the connection ended after {buffer.Length} of the {frameBytes} bytes of message {message}'s echo");
            _input.AdvanceTo(buffer.Start, buffer.End);
        }
    }

    /// <summary>Ends the conversation: completes the writer, shuts down the socket's sending side (the
    /// server sees the end of the stream, echoes nothing more and closes), then reads to the end of the
    /// server's stream, checking that no byte came after the last echo, and completes the reader.</summary>
    /// <exception cref="InvalidDataException">Bytes came after the last echo.</exception>
    public async Task CloseAsync(CancellationToken token)
    {
        await _output.CompleteAsync().ConfigureAwait(false);
        _socket.Shutdown(SocketShutdown.Send);
        while (true)
        {
            ReadResult result = await _input.ReadAsync(token).ConfigureAwait(false);
            long extra = result.Buffer.Length;
            _input.AdvanceTo(result.Buffer.End);
            if (extra != 0) throw new InvalidDataException($"client {Client}: {extra} bytes came after the echo of the last message");
            if (result.IsCompleted) break;
        }
        await _input.CompleteAsync().ConfigureAwait(false);
    }

    /// <summary>Closes the socket, then completes the reader and the writer if <see cref="CloseAsync"/>
    /// did not (the writer with an exception, so that it drops what it holds instead of flushing it into
    /// a closed socket), which hands their buffers back to the pool.</summary>
    public async ValueTask DisposeAsync()
    {
        _socket.Dispose();
        var abandoned = new OperationCanceledException($"echo client {Client} was disposed without closing its connection");
        await _output.CompleteAsync(abandoned).ConfigureAwait(false);
        await _input.CompleteAsync(abandoned).ConfigureAwait(false);
        await _stream.DisposeAsync().ConfigureAwait(false);
    }
}
