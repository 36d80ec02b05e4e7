using System.Globalization;

namespace SlabAlloc.Interprocess;

/// <summary>Two anonymous pipes, one per direction. The child inherits its two ends (the only descriptors
/// created without close-on-exec) and learns their numbers from its endpoint text.</summary>
internal sealed unsafe class PipeTransport : ITransport
{
    private int _readFd = -1, _writeFd = -1;
    /// <summary>The child's ends, open in the parent from <see cref="Listen"/> until <see cref="Accept"/>.</summary>
    private int _childReadFd = -1, _childWriteFd = -1;

    public string Listen(int maxMessageBytes)
    {
        int* toChild = stackalloc int[2];
        int* toParent = stackalloc int[2];
        if (LibC.Pipe2(toChild, LibC.OCloseOnExec) != 0 || LibC.Pipe2(toParent, LibC.OCloseOnExec) != 0) throw LibC.Failure("pipe2");
        (_writeFd, _childReadFd) = (toChild[1], toChild[0]);
        (_readFd, _childWriteFd) = (toParent[0], toParent[1]);
        // Only the child's ends cross exec; the parent's stay close-on-exec, so the child holding none of them,
        // a parent that dies leaves the child reading end-of-file rather than waiting forever.
        if (LibC.Fcntl(_childReadFd, LibC.FSetFd, 0) != 0 || LibC.Fcntl(_childWriteFd, LibC.FSetFd, 0) != 0) throw LibC.Failure("fcntl(FD_CLOEXEC)");
        return string.Create(CultureInfo.InvariantCulture, $"{_childReadFd},{_childWriteFd}");
    }

    public void Accept()
    {
        // The child has its copies: closing the parent's makes the child's exit (or crash) an end-of-file here.
        LibC.Close(_childReadFd);
        LibC.Close(_childWriteFd);
        _childReadFd = _childWriteFd = -1;
    }

    public void Connect(string endpoint)
    {
        string[] fds = endpoint.Split(',');
        _readFd = int.Parse(fds[0], CultureInfo.InvariantCulture);
        _writeFd = int.Parse(fds[1], CultureInfo.InvariantCulture);
        if (LibC.Fcntl(_readFd, LibC.FGetFd, 0) < 0 || LibC.Fcntl(_writeFd, LibC.FGetFd, 0) < 0)
            throw new IOException($"pipe: descriptors {endpoint} were not inherited from the parent");
    }

    public void Send(ReadOnlySpan<byte> message) => FileDescriptorIo.WriteAll(_writeFd, message);

    public void Receive(Span<byte> message) => FileDescriptorIo.ReadExactly(_readFd, message);

    public void Dispose()
    {
        foreach (int fd in (int[])[_readFd, _writeFd, _childReadFd, _childWriteFd])
            if (fd >= 0) LibC.Close(fd);
        _readFd = _writeFd = _childReadFd = _childWriteFd = -1;
    }
}
