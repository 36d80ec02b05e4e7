using System.Buffers;
using System.Collections.Concurrent;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;

namespace SlabAlloc.Testing;

/// <summary>
/// A TCP echo server on the loopback interface, built on System.IO.Pipelines with every buffer rented
/// from one <see cref="MemoryPool{T}"/>: for each connection, the socket's stream is read through
/// <see cref="PipeReader.Create(Stream, StreamPipeReaderOptions)"/> and written through
/// <see cref="PipeWriter.Create(Stream, StreamPipeWriterOptions)"/>, with a <see cref="Pipe"/> between
/// them. One loop takes whole frames (<see cref="EchoFrame"/>) from the socket into the pipe, a second
/// copies the pipe out to the socket.
/// </summary>
/// <remarks>
/// <para>The frames are copied rather than forwarded as they arrive, so that the buffers a connection
/// holds are of every size: the socket reader's fixed-size segments hold a frame until it is whole,
/// then the frame is written into the pipe in one piece (a rent of its whole length, up to 1 MiB),
/// and the socket writer's segments take it back out.</para>
/// <para>A connection ends when its client shuts down its sending side: the server echoes what came
/// before, shuts down its own sending side and closes the socket, having completed its readers and
/// writers, so every buffer of the connection has gone back to the pool. A connection that fails (a
/// protocol error, a reset, the cancellation token) is closed and its exception kept in
/// <see cref="Failures"/>; its client sees the connection end.</para>
/// <para>Every await is <c>ConfigureAwait(false)</c>: the loops run on the thread pool whatever
/// context started the server (a test framework's, for instance).</para>
/// </remarks>
internal sealed class EchoServer
{
    private readonly Socket _listener;
    private readonly MemoryPool<byte> _pool;
    private readonly CancellationToken _token;
    private readonly Task _accepting;
    private readonly List<Task> _connections = []; // the accept loop adds, StopAsync reads once accepting has ended
    private readonly ConcurrentQueue<Exception> _failures = new();
    private long _framesEchoed, _payloadBytesEchoed;
    private volatile bool _stopping;

    private EchoServer(MemoryPool<byte> pool, CancellationToken token)
    {
        _pool = pool;
        _token = token;
        _listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        _listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        _listener.Listen();
        EndPoint = (IPEndPoint)_listener.LocalEndPoint!;
        _accepting = Task.Run(AcceptAsync);
    }

    /// <summary>Starts a server on 127.0.0.1, on a port the system picks (<see cref="EndPoint"/>).</summary>
    /// <param name="pool">Where every buffer of every connection comes from.</param>
    /// <param name="token">Ends every connection, failing it, when cancelled: a bound on a hang.</param>
    public static EchoServer Start(MemoryPool<byte> pool, CancellationToken token) => new(pool, token);

    /// <summary>The address clients connect to.</summary>
    public IPEndPoint EndPoint { get; }

    /// <summary>Frames echoed, and the bytes of their payloads, over every connection so far.</summary>
    public long FramesEchoed => Interlocked.Read(ref _framesEchoed);

    /// <inheritdoc cref="FramesEchoed"/>
    public long PayloadBytesEchoed => Interlocked.Read(ref _payloadBytesEchoed);

    /// <summary>Connections accepted.</summary>
    public int Connections { get; private set; }

    /// <summary>The exceptions of the connections that failed; empty after a clean run.</summary>
    public IReadOnlyCollection<Exception> Failures => _failures;

    /// <summary>Stops accepting and waits until every connection has ended (they end when their clients
    /// close, or when the token is cancelled). Never throws: look at <see cref="Failures"/>.</summary>
    public async Task StopAsync()
    {
        _stopping = true;
        _listener.Dispose();
        await _accepting.ConfigureAwait(false);
        await Task.WhenAll(_connections).ConfigureAwait(false); // ServeAsync keeps its exceptions in _failures
    }

    private async Task AcceptAsync()
    {
        while (true)
        {
            Socket socket;
            try
            {
                socket = await _listener.AcceptAsync(_token).ConfigureAwait(false);
            }
            catch (Exception e) when (_stopping && e is ObjectDisposedException or SocketException)
            {
                return; // StopAsync closed the listener
            }
            catch (Exception e)
            {
                _failures.Enqueue(e);
                return;
            }
            socket.NoDelay = true;
            Connections++;
            _connections.Add(ServeAsync(socket));
        }
    }

    /// <summary>One connection: the two loops, then the end of the stream for the client.</summary>
    private async Task ServeAsync(Socket socket)
    {
        using (socket)
        await using (var stream = new NetworkStream(socket, ownsSocket: false))
        {
            PipeReader fromSocket = PipeReader.Create(stream, new StreamPipeReaderOptions(pool: _pool, leaveOpen: true));
            PipeWriter toSocket = PipeWriter.Create(stream, new StreamPipeWriterOptions(pool: _pool, leaveOpen: true));
            var frames = new Pipe(new PipeOptions(pool: _pool, useSynchronizationContext: false));
            try
            {
                await Task.WhenAll(TakeFramesAsync(fromSocket, frames.Writer), SendAsync(frames.Reader, toSocket)).ConfigureAwait(false);
                socket.Shutdown(SocketShutdown.Send);
            }
            catch (Exception e)
            {
                _failures.Enqueue(e);
            }
        }
    }

    /// <summary>Reads the socket and writes each whole frame into the pipe, flushing once per read.</summary>
    private async Task TakeFramesAsync(PipeReader socket, PipeWriter frames)
    {
        Exception? error = null;
        try
        {
            while (true)
            {
                ReadResult result = await socket.ReadAsync(_token).ConfigureAwait(false);
                ReadOnlySequence<byte> buffer = result.Buffer;
                long taken = 0, payloadBytes = 0;
                while (EchoFrame.TryTake(ref buffer, out ReadOnlySequence<byte> frame))
                {
                    int frameBytes = (int)frame.Length;
                    frame.CopyTo(frames.GetSpan(frameBytes));
                    frames.Advance(frameBytes);
                    taken++;
                    payloadBytes += frameBytes - EchoFrame.HeaderBytes;
                }
                long leftover = buffer.Length; // read before AdvanceTo hands the consumed segments back
                socket.AdvanceTo(buffer.Start, buffer.End);
                if (taken > 0)
                {
                    Interlocked.Add(ref _framesEchoed, taken);
                    Interlocked.Add(ref _payloadBytesEchoed, payloadBytes);
                    FlushResult flush = await frames.FlushAsync(_token).ConfigureAwait(false);
                    if (flush.IsCompleted) return; // the sending loop has ended, with its own exception
                }
                if (result.IsCompleted)
                {
                    if (leftover != 0) throw new InvalidDataException($"the client ended its stream inside a frame ({leftover} bytes of it)");
                    return;
                }
            }
        }
        catch (Exception e)
        {
            error = e;
            throw;
        }
        finally
        {
            await socket.CompleteAsync(error).ConfigureAwait(false);
            await frames.CompleteAsync(error).ConfigureAwait(false);
        }
    }

    /// <summary>Copies the pipe to the socket, one flush per read, until the pipe's writer completes.</summary>
    private async Task SendAsync(PipeReader frames, PipeWriter socket)
    {
        Exception? error = null;
        try
        {
            while (true)
            {
                ReadResult result = await frames.ReadAsync(_token).ConfigureAwait(false);
                ReadOnlySequence<byte> buffer = result.Buffer;
                bool any = !buffer.IsEmpty; // read before AdvanceTo hands the segments back
                foreach (ReadOnlyMemory<byte> segment in buffer) socket.Write(segment.Span);
                frames.AdvanceTo(buffer.End);
                if (any) await socket.FlushAsync(_token).ConfigureAwait(false);
                if (result.IsCompleted) return;
            }
        }
        catch (Exception e)
        {
            error = e;
            throw;
        }
        finally
        {
            await frames.CompleteAsync(error).ConfigureAwait(false);
            await socket.CompleteAsync(error).ConfigureAwait(false);
        }
    }
}
