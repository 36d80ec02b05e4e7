using System.Runtime.InteropServices;

namespace SlabAlloc.Interprocess;

/// <summary>
/// Every libc function the benchmark calls, bound through source-generated <c>LibraryImport</c>: the file
/// descriptors of the kernel transports, the shared mapping and process-shared mutexes of the ring, and the
/// process counters. The library's own binding (src/SlabAlloc/Platform/LibC.cs) is internal to it.
/// </summary>
/// <remarks>
/// Linux only (x64 and arm64: <see cref="Platform.Check"/>). The library is named <c>libc.so.6</c> rather
/// than <c>libc</c>, which on glibc systems may resolve to the linker script <c>libc.so</c>. Since glibc 2.34
/// the pthread functions live in libc.so.6. <c>fcntl</c>, <c>open</c> and <c>prctl</c> are variadic in C;
/// their extra arguments are integers, which the x64 and arm64 Linux calling conventions pass as fixed ones.
/// </remarks>
internal static unsafe partial class LibC
{
    private const string Library = "libc.so.6";

    public const int EINTR = 4;
    public const int OCloseOnExec = 0x80000;
    public const int ONonBlock = 0x800;
    public const int ORdWr = 2;
    public const int OCreat = 0x40;
    public const int OExcl = 0x80;
    public const int FGetFd = 1, FSetFd = 2, FGetFl = 3, FSetFl = 4;
    public const int ProtRead = 1, ProtWrite = 2, MapShared = 1;
    public static readonly void* MapFailed = (void*)(-1);
    public const int PrSetParentDeathSignal = 1;
    public const int SigInt = 2, SigKill = 9;
    public const int RusageSelf = 0;
    public const int PthreadMutexNormal = 0;
    /// <summary>glibc's PTHREAD_MUTEX_ADAPTIVE_NP: spins in user mode a while before sleeping in the kernel.</summary>
    public const int PthreadMutexAdaptive = 3;
    public const int PthreadProcessShared = 1;

    [LibraryImport(Library, EntryPoint = "read", SetLastError = true)]
    public static partial nint Read(int fd, void* buffer, nuint count);

    [LibraryImport(Library, EntryPoint = "write", SetLastError = true)]
    public static partial nint Write(int fd, void* buffer, nuint count);

    /// <summary>struct pollfd.</summary>
    public struct PollFd { public int Fd; public short Events, Returned; }
    public const short PollIn = 0x1;

    [LibraryImport(Library, EntryPoint = "poll", SetLastError = true)]
    public static partial int Poll(PollFd* fds, nuint count, int timeoutMilliseconds);

    [LibraryImport(Library, EntryPoint = "close", SetLastError = true)]
    public static partial int Close(int fd);

    [LibraryImport(Library, EntryPoint = "pipe2", SetLastError = true)]
    public static partial int Pipe2(int* fds, int flags);

    [LibraryImport(Library, EntryPoint = "fcntl", SetLastError = true)]
    public static partial int Fcntl(int fd, int command, int argument);

    [LibraryImport(Library, EntryPoint = "open", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    public static partial int Open(string path, int flags, int mode);

    [LibraryImport(Library, EntryPoint = "ftruncate", SetLastError = true)]
    public static partial int Ftruncate(int fd, nint length);

    [LibraryImport(Library, EntryPoint = "mmap", SetLastError = true)]
    public static partial void* Mmap(void* address, nuint length, int protection, int flags, int fd, nint offset);

    [LibraryImport(Library, EntryPoint = "munmap", SetLastError = true)]
    public static partial int Munmap(void* address, nuint length);

    [LibraryImport(Library, EntryPoint = "mkfifo", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    public static partial int Mkfifo(string path, int mode);

    [LibraryImport(Library, EntryPoint = "prctl", SetLastError = true)]
    public static partial int Prctl(int option, nuint argument);

    [LibraryImport(Library, EntryPoint = "getppid")]
    public static partial int Getppid();

    [LibraryImport(Library, EntryPoint = "kill", SetLastError = true)]
    public static partial int Kill(int pid, int signal);

    /// <summary>struct rusage on 64-bit Linux: two timevals, then 14 longs.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct Rusage
    {
        public long UserSeconds, UserMicroseconds, SystemSeconds, SystemMicroseconds;
        public long MaxRss, SharedText, UnsharedData, UnsharedStack, MinorFaults, MajorFaults;
        public long Swaps, BlockIn, BlockOut, MessagesSent, MessagesReceived, Signals, VoluntarySwitches, InvoluntarySwitches;
    }

    [LibraryImport(Library, EntryPoint = "getrusage", SetLastError = true)]
    public static partial int Getrusage(int who, Rusage* usage);

    // The process-shared mutex of the ring. Attributes are opaque: 4 bytes on x64, 8 on arm64; callers pass 16.

    [LibraryImport(Library, EntryPoint = "pthread_mutexattr_init")]
    public static partial int PthreadMutexattrInit(void* attributes);

    [LibraryImport(Library, EntryPoint = "pthread_mutexattr_settype")]
    public static partial int PthreadMutexattrSettype(void* attributes, int type);

    [LibraryImport(Library, EntryPoint = "pthread_mutexattr_setpshared")]
    public static partial int PthreadMutexattrSetpshared(void* attributes, int shared);

    [LibraryImport(Library, EntryPoint = "pthread_mutexattr_destroy")]
    public static partial int PthreadMutexattrDestroy(void* attributes);

    [LibraryImport(Library, EntryPoint = "pthread_mutex_init")]
    public static partial int PthreadMutexInit(void* mutex, void* attributes);

    [LibraryImport(Library, EntryPoint = "pthread_mutex_lock")]
    public static partial int PthreadMutexLock(void* mutex);

    [LibraryImport(Library, EntryPoint = "pthread_mutex_unlock")]
    public static partial int PthreadMutexUnlock(void* mutex);

    [LibraryImport(Library, EntryPoint = "pthread_mutex_destroy")]
    public static partial int PthreadMutexDestroy(void* mutex);

    /// <summary>An <see cref="IOException"/> naming the call and the errno it left.</summary>
    public static IOException Failure(string call) =>
        new($"{call} failed: {Marshal.GetLastPInvokeErrorMessage()} (errno {Marshal.GetLastPInvokeError()})");
}
