using System.Reflection;
using System.Runtime.InteropServices;

namespace SlabAlloc.Platform;

/// <summary>
/// The Linux system calls SlabAlloc uses, bound through source-generated <c>LibraryImport</c>.
/// Only the platform layer calls these: <see cref="OsMemory"/>, <see cref="ThreadStacks"/>,
/// <see cref="ProcessCounters"/>, and for the shared heap <see cref="SharedRegionFile"/>, <see cref="Futex"/>
/// and <see cref="ProcessIdentity"/>.
/// </summary>
internal static unsafe partial class LibC
{
    private const string Library = "libc";

    public const int ProtNone = 0x0;
    public const int ProtRead = 0x1;
    public const int ProtWrite = 0x2;
    public const int MapPrivate = 0x02;
    public const int MapFixed = 0x10;
    public const int MapAnonymous = 0x20;
    public const int MapNoReserve = 0x4000;
    public const int MapPopulate = 0x8000;
    public const int MadvDontNeed = 4;
    public const int MadvNoHugePage = 15;
    public static readonly void* MapFailed = (void*)(-1);

    static LibC()
    {
        // "libc" alone may resolve to the linker script libc.so on glibc systems; bind the real
        // shared object explicitly.
        NativeLibrary.SetDllImportResolver(typeof(LibC).Assembly, Resolve);
    }

    private static nint Resolve(string name, Assembly assembly, DllImportSearchPath? path)
    {
        if (name != Library) return 0;
        return NativeLibrary.TryLoad("libc.so.6", out nint handle) ? handle : 0;
    }

    /// <summary>Forces the static constructor (the resolver) to run before the first call.</summary>
    public static void EnsureResolver() { }

    [LibraryImport(Library, EntryPoint = "mmap", SetLastError = true)]
    public static partial void* Mmap(void* address, nuint length, int protection, int flags, int fd, nint offset);

    [LibraryImport(Library, EntryPoint = "munmap", SetLastError = true)]
    public static partial int Munmap(void* address, nuint length);

    [LibraryImport(Library, EntryPoint = "madvise", SetLastError = true)]
    public static partial int Madvise(void* address, nuint length, int advice);

    [LibraryImport(Library, EntryPoint = "mprotect", SetLastError = true)]
    public static partial int Mprotect(void* address, nuint length, int protection);

    /// <summary>RLIMIT_AS: the limit on the process's address space.</summary>
    public const int RlimitAddressSpace = 9;

    /// <summary>struct rlimit (64-bit Linux).</summary>
    public struct Rlimit { public ulong Current; public ulong Maximum; }

    [LibraryImport(Library, EntryPoint = "getrlimit", SetLastError = true)]
    public static partial int Getrlimit(int resource, Rlimit* limit);

    // Files: only for reading /proc/self/maps without the managed file stack's first-use cost.

    public const int OpenReadOnlyCloseOnExec = 0x80000; // O_RDONLY (0) | O_CLOEXEC

    [LibraryImport(Library, EntryPoint = "open", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    public static partial int Open(string path, int flags);

    [LibraryImport(Library, EntryPoint = "read", SetLastError = true)]
    public static partial nint Read(int fd, void* buffer, nuint count);

    [LibraryImport(Library, EntryPoint = "close")]
    public static partial int Close(int fd);

    public const int RusageThread = 1;

    /// <summary>struct rusage on 64-bit Linux: two timevals, then 14 longs (maxrss, ixrss, idrss, isrss, minflt, majflt, ...).</summary>
    [System.Runtime.InteropServices.StructLayout(System.Runtime.InteropServices.LayoutKind.Sequential)]
    public struct Rusage
    {
        public long UserSeconds, UserMicroseconds, SystemSeconds, SystemMicroseconds;
        public long MaxRss, SharedText, UnsharedData, UnsharedStack, MinorFaults, MajorFaults;
        public long Swaps, BlockIn, BlockOut, MessagesSent, MessagesReceived, Signals, VoluntarySwitches, InvoluntarySwitches;
    }

    [LibraryImport(Library, EntryPoint = "getrusage", SetLastError = true)]
    public static partial int Getrusage(int who, Rusage* usage);

    // Threads (in libc.so.6 since glibc 2.34 and in musl; ThreadStacks checks they resolve).

    /// <summary>Large enough for pthread_attr_t on every 64-bit Linux ABI (56 or 64 bytes).</summary>
    public const int PthreadAttrBytes = 128;

    [LibraryImport(Library, EntryPoint = "pthread_self")]
    public static partial nuint PthreadSelf();

    [LibraryImport(Library, EntryPoint = "pthread_getattr_np")]
    public static partial int PthreadGetattrNp(nuint thread, void* attr);

    [LibraryImport(Library, EntryPoint = "pthread_attr_getstack")]
    public static partial int PthreadAttrGetstack(void* attr, void** stackAddress, nuint* stackBytes);

    [LibraryImport(Library, EntryPoint = "pthread_attr_destroy")]
    public static partial int PthreadAttrDestroy(void* attr);

    [LibraryImport(Library, EntryPoint = "pthread_key_create")]
    public static partial int PthreadKeyCreate(uint* key, nint destructor);

    [LibraryImport(Library, EntryPoint = "pthread_setspecific")]
    public static partial int PthreadSetspecific(uint key, void* value);

    [LibraryImport(Library, EntryPoint = "pthread_mutex_trylock")]
    public static partial int PthreadMutexTrylock(void* mutex);

    [LibraryImport(Library, EntryPoint = "pthread_getspecific")]
    public static partial void* PthreadGetspecific(uint key);

    [LibraryImport(Library, EntryPoint = "gettid")]
    public static partial int Gettid();

    [LibraryImport(Library, EntryPoint = "pthread_mutex_unlock")]
    public static partial int PthreadMutexUnlock(void* mutex);

    // Shared regions: a file mapped MAP_SHARED by every process that opens it.

    public const int MapShared = 0x01;
    public const int OpenReadWrite = 0x2;
    public const int OpenCreate = 0x40;
    public const int OpenExclusive = 0x80;
    public const int OpenCloseOnExec = 0x80000;
    /// <summary>O_NOFOLLOW: 0x20000 on x86-64, 0x8000 on arm64.</summary>
    public static readonly int OpenNoFollow = RuntimeInformation.ProcessArchitecture == Architecture.Arm64 ? 0x8000 : 0x20000;
    public const int ErrorNoEntry = 2;
    public const int ErrorAccess = 13;
    public const int ErrorExists = 17;
    public const int ErrorLoop = 40;
    public const int ErrorAgain = 11;
    public const int ErrorTimedOut = 110;
    public const int ErrorInterrupted = 4;

    [LibraryImport(Library, EntryPoint = "open", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    public static partial int OpenWithMode(string path, int flags, uint mode);

    [LibraryImport(Library, EntryPoint = "ftruncate", SetLastError = true)]
    public static partial int Ftruncate(int fd, long length);

    [LibraryImport(Library, EntryPoint = "fchmod", SetLastError = true)]
    public static partial int Fchmod(int fd, uint mode);

    [LibraryImport(Library, EntryPoint = "unlink", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    public static partial int Unlink(string path);

    [LibraryImport(Library, EntryPoint = "geteuid")]
    public static partial uint Geteuid();

    public const int AtEmptyPath = 0x1000;
    public const uint StatxBasicStats = 0x7ff;

    /// <summary>struct statx: the same layout on every Linux architecture (256 bytes); the fields read here.</summary>
    [StructLayout(LayoutKind.Explicit, Size = 256)]
    public struct Statx
    {
        [FieldOffset(20)] public uint Uid;
        [FieldOffset(28)] public ushort Mode;
        [FieldOffset(40)] public ulong Size;
    }

    [LibraryImport(Library, EntryPoint = "statx", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    public static partial int StatxOf(int directoryFd, string path, int flags, uint mask, Statx* buffer);

    /// <summary>The futex system call's number: 202 on x86-64, 98 on arm64.</summary>
    public static readonly long FutexSyscall = RuntimeInformation.ProcessArchitecture == Architecture.Arm64 ? 98 : 202;

    /// <summary>struct timespec (64-bit).</summary>
    public struct Timespec { public long Seconds, Nanoseconds; }

    [LibraryImport(Library, EntryPoint = "syscall", SetLastError = true)]
    public static partial long SyscallFutex(long number, int* word, int operation, int value, Timespec* timeout, int* word2, int value3);
}
