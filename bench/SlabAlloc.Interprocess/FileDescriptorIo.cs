using System.Runtime.InteropServices;

namespace SlabAlloc.Interprocess;

/// <summary>
/// Whole messages over a stream file descriptor with plain <c>read</c> and <c>write</c>: the one code path of
/// the pipe, Unix socket and TCP transports, so that they differ only in the kernel object behind the descriptor,
/// not in the .NET wrapper around it (no <c>Socket</c> or <c>PipeStream</c> on the measured path).
/// </summary>
internal static unsafe class FileDescriptorIo
{
    public static void WriteAll(int fd, ReadOnlySpan<byte> message)
    {
        fixed (byte* start = message)
        {
            nuint done = 0, length = (nuint)message.Length;
            while (done < length)
            {
                nint written = LibC.Write(fd, start + done, length - done);
                if (written < 0)
                {
                    if (Marshal.GetLastPInvokeError() == LibC.EINTR) continue;
                    throw LibC.Failure("write");
                }
                done += (nuint)written;
            }
        }
    }

    public static void ReadExactly(int fd, Span<byte> message)
    {
        fixed (byte* start = message)
        {
            nuint done = 0, length = (nuint)message.Length;
            while (done < length)
            {
                nint read = LibC.Read(fd, start + done, length - done);
                if (read < 0)
                {
                    if (Marshal.GetLastPInvokeError() == LibC.EINTR) continue;
                    throw LibC.Failure("read");
                }
                if (read == 0)
                    throw new EndOfStreamException($"the other process closed its end after {done} of {length} bytes of a message");
                done += (nuint)read;
            }
        }
    }

    /// <summary>Clears O_NONBLOCK, which .NET may set on a socket's descriptor, so that a read waits in the
    /// kernel for data as a pipe's does.</summary>
    public static void MakeBlocking(int fd)
    {
        int flags = LibC.Fcntl(fd, LibC.FGetFl, 0);
        if (flags < 0 || LibC.Fcntl(fd, LibC.FSetFl, flags & ~LibC.ONonBlock) < 0) throw LibC.Failure("fcntl(O_NONBLOCK)");
    }
}
