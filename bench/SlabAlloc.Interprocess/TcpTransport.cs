using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace SlabAlloc.Interprocess;

/// <summary>TCP over the loopback interface, Nagle's algorithm off on both ends so that a small message leaves
/// at once; the parent listens on a port the kernel picks.</summary>
internal sealed class TcpTransport : ITransport
{
    private Socket? _listener;
    private Socket? _socket;
    private int _fd = -1;

    public string Listen(int maxMessageBytes)
    {
        _listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        _listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        _listener.Listen(1);
        return ((IPEndPoint)_listener.LocalEndPoint!).Port.ToString(CultureInfo.InvariantCulture);
    }

    public void Accept()
    {
        Adopt(_listener!.Accept());
        _listener.Dispose();
        _listener = null;
    }

    public void Connect(string endpoint)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        socket.Connect(new IPEndPoint(IPAddress.Loopback, int.Parse(endpoint, CultureInfo.InvariantCulture)));
        Adopt(socket);
    }

    private void Adopt(Socket socket)
    {
        socket.NoDelay = true;
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
        _socket = _listener = null;
    }
}
