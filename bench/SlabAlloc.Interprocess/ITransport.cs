namespace SlabAlloc.Interprocess;

/// <summary>
/// One way of moving bytes between the two processes of a run: the parent (the client) and the child it
/// starts (the echo server or sink). A transport object is one end: the parent's calls <see cref="Listen"/>
/// and <see cref="Accept"/>, the child's <see cref="Connect"/>; then both <see cref="Send"/> and
/// <see cref="Receive"/>.
/// </summary>
/// <remarks>
/// Equal work: <see cref="Receive"/> always delivers the bytes into the caller's buffer, so a transport that
/// could hand out a view of its own memory still pays the copy-out that a read from a socket pays. Messages
/// keep no boundaries the receiver relies on beyond this: the two sides agree on each message's length, and
/// each <see cref="Receive"/> asks for exactly the bytes of one <see cref="Send"/>. A new transport is one
/// file implementing this interface and one line in <see cref="Transports.All"/>.
/// </remarks>
internal interface ITransport : IDisposable
{
    /// <summary>Parent, before the child starts: creates what the child will open, sized for messages of up
    /// to <paramref name="maxMessageBytes"/>, and returns the text the child passes to <see cref="Connect"/>.</summary>
    string Listen(int maxMessageBytes);

    /// <summary>Parent, once the child has started: returns when the child has connected.</summary>
    void Accept();

    /// <summary>Child: opens what the parent's <see cref="Listen"/> created.</summary>
    void Connect(string endpoint);

    /// <summary>Sends the whole message; may return before the other side has received it.</summary>
    void Send(ReadOnlySpan<byte> message);

    /// <summary>Receives exactly <paramref name="message"/>'s length into it; throws when the other side has gone.</summary>
    void Receive(Span<byte> message);
}
