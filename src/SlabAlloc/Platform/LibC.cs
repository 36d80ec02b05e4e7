using System.Reflection;
using System.Runtime.InteropServices;

namespace SlabAlloc.Platform;

/// <summary>
/// The Linux system calls SlabAlloc uses, bound through source-generated <c>LibraryImport</c>.
/// Only <see cref="OsMemory"/> calls these.
/// </summary>
internal static unsafe partial class LibC
{
    private const string Library = "libc";

    public const int ProtRead = 0x1;
    public const int ProtWrite = 0x2;
    public const int MapPrivate = 0x02;
    public const int MapAnonymous = 0x20;
    public const int MapNoReserve = 0x4000;
    public const int MapPopulate = 0x8000;
    public const int MadvDontNeed = 4;
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
}
