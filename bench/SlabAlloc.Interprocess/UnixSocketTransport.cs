using System.Net.Sockets;

namespace SlabAlloc.Interprocess;

/// <summary>A Unix domain stream socket whose path lies in a private temporary directory; the path is removed
/// once the child has connected.</summary>
internal sealed class UnixSocketTransport : ITransport
{
    private Socket? _listener;
    private Socket? _socket;
    private string? _directory;
    private int _fd = -1;

    public string Listen(int maxMessageBytes)
    {
        _directory = Directory.CreateTempSubdirectory("slaballoc-ipc-").FullName;
        string path = Path.Combine(_directory, "s");
        _listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        _listener.Bind(new UnixDomainSocketEndPoint(path));
        _listener.Listen(1);
        return path;
    }

    public void Accept()
    {
        Adopt(_listener!.Accept());
        _listener.Dispose();
        _listener = null;
        Directory.Delete(_directory!, recursive: true);
        _directory = null;
    }

    public void Connect(string endpoint)
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        socket.Connect(new UnixDomainSocketEndPoint(endpoint));
        Adopt(socket);
    }

    private void Adopt(Socket socket)
    {
        _socket = socket;
        _fd = (int)socket.SafeHandle.DangerousGetHandle();
        FileDescriptorIo.MakeBlocking(_fd);
    }

    public void Send(ReadOnlySpan<byte> message) => FileDescriptorIo.WriteAll(_fd, message);

    public void Receive(Span<byte> message) => FileDescriptorIo.ReadExactly(_fd, message);

    public void Dispose()
    {
        _socket?.Dispose();
        _listener?.Dispose();
        if (_directory is not null) Directory.Delete(_directory, recursive: true);
        _socket = _listener = null;
        _directory = null;
    }
}
