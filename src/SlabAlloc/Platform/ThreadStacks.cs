using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace SlabAlloc.Platform;

/// <summary>
/// The calling thread's stack range, and an exit latch: a word that the thread's exit clears, written
/// by the C library on that thread before its stack can be handed to another thread.
/// </summary>
/// <remarks>
/// <para>The latch is a <c>pthread_mutex_t</c> in caller-owned memory that is never freed. Arming it
/// locks it on the calling thread and stores its address in a pthread key whose destructor is
/// <c>pthread_mutex_unlock</c>, so when the thread ends, the C library unlocks it on that thread. Key
/// destructors run in the exiting thread before its stack is released (for reuse by a new thread or
/// for unmapping), so once another thread can run on those addresses, the latch already reads
/// unlocked. This is the thread-exit callback .NET does not have, and it runs no managed code.</para>
/// <para>Supported on Linux with glibc 2.34 or later and on musl (pthread functions in the C library
/// itself); elsewhere, and in the portable layer on Linux (<see cref="PlatformLayer"/>), <see cref="Supported"/>
/// is false and nothing is armed.</para>
/// <para>Limits, where a latch would outlive its thread: code that arms a latch from inside another
/// key's destructor in the C library's last destructor round (SlabAlloc attaches threads only when
/// they allocate, and the runtime runs no managed code there), and <c>fork()</c> without
/// <c>exec</c> (the child's copies of other threads' latches stay armed while the C library reuses
/// those threads' stacks; .NET does not support fork without exec either).</para>
/// </remarks>
internal static unsafe class ThreadStacks
{
    /// <summary>Bytes reserved for a latch: pthread_mutex_t is 40 bytes on x64 and 48 on arm64 (glibc and musl).</summary>
    public const int LatchBytes = 48;

    private static readonly uint s_exitKey;

    /// <summary>True when stack ranges and exit latches are available on this system.</summary>
    public static readonly bool Supported = Initialize(out s_exitKey);

    private static bool Initialize(out uint key)
    {
        key = 0;
        if (!PlatformLayer.Linux) return false;
        if (!NativeLibrary.TryLoad("libc.so.6", out nint libc) && !NativeLibrary.TryLoad("libc.so", out libc)) return false;
        // All of them in the C library itself, or none is used (before glibc 2.34 they live in libpthread).
        foreach (string name in (ReadOnlySpan<string>)["pthread_self", "pthread_getattr_np", "pthread_attr_getstack",
                     "pthread_attr_destroy", "pthread_key_create", "pthread_setspecific", "pthread_getspecific",
                     "pthread_mutex_trylock", "gettid"])
            if (!NativeLibrary.TryGetExport(libc, name, out _)) return false;
        if (!NativeLibrary.TryGetExport(libc, "pthread_mutex_unlock", out nint unlock)) return false;
        LibC.EnsureResolver();
        uint k;
        if (LibC.PthreadKeyCreate(&k, unlock) != 0) return false;
        key = k;
        return true;
    }

    /// <summary>Larger reported stacks are not believed (nothing is registered for them).</summary>
    private const ulong MaxStackBytes = 1UL << 30;

    /// <summary>
    /// The calling thread's stack, lowest address first: memory that no other thread's stack can
    /// overlap while this thread lives. False when it cannot be known.
    /// </summary>
    /// <remarks>For threads the C library created, <c>pthread_getattr_np</c> reports the thread's own
    /// stack mapping. For the main thread it reports the stack limit's worth of address space below the
    /// top of the stack, which with a large or unlimited limit can take in other mappings, thread
    /// stacks included; so the main thread's range is cut to the one mapping that holds its stack now,
    /// from <c>/proc/self/maps</c> (a stack mapping only grows, so that much stays its own).</remarks>
    public static bool TryGetCurrent(out nuint low, out nuint bytes)
    {
        low = 0;
        bytes = 0;
        if (!Supported) return false;
        byte* attr = stackalloc byte[LibC.PthreadAttrBytes];
        if (LibC.PthreadGetattrNp(LibC.PthreadSelf(), attr) != 0) return false;
        void* address;
        nuint size;
        int status = LibC.PthreadAttrGetstack(attr, &address, &size);
        LibC.PthreadAttrDestroy(attr);
        if (status != 0 || size == 0) return false;
        nuint start = (nuint)address, end = start + size;
        if (LibC.Gettid() == Environment.ProcessId)
        {
            byte marker;
            if (!TryFindMapping((nuint)(&marker), out nuint mapStart, out nuint mapEnd)) return false;
            start = Math.Max(start, mapStart);
            end = Math.Min(end, mapEnd);
            if (end <= start) return false;
        }
        if (end - start > MaxStackBytes) return false;
        low = start;
        bytes = end - start;
        return true;
    }

    /// <summary>The mapping of /proc/self/maps that holds <paramref name="address"/>.</summary>
    /// <remarks>Read with plain system calls into a stack buffer and parsed as bytes: the managed file
    /// and text stack's first use is costly, and this runs on a thread's first allocation
    /// (docs/design-measurements.md, "Reading /proc/self/maps").</remarks>
    internal static bool TryFindMapping(nuint address, out nuint start, out nuint end)
    {
        start = end = 0;
        LibC.EnsureResolver();
        int fd = LibC.Open("/proc/self/maps", LibC.OpenReadOnlyCloseOnExec);
        if (fd < 0) return false;
        try
        {
            // Lines are "start-end perms offset device inode path"; a path is at most PATH_MAX (4096) bytes.
            const int BufferBytes = 8192;
            byte* buffer = stackalloc byte[BufferBytes];
            int kept = 0; // an unfinished line, moved to the start of the buffer
            while (true)
            {
                nint read = LibC.Read(fd, buffer + kept, (nuint)(BufferBytes - kept));
                if (read <= 0) return false; // the end (not found) or an error
                int length = kept + (int)read, lineStart = 0;
                for (int i = 0; i < length; i++)
                {
                    if (buffer[i] != (byte)'\n') continue;
                    if (TryParseRange(new ReadOnlySpan<byte>(buffer + lineStart, i - lineStart), out nuint s, out nuint e) && address >= s && address < e)
                    {
                        start = s;
                        end = e;
                        return true;
                    }
                    lineStart = i + 1;
                }
                kept = length - lineStart;
                if (kept == BufferBytes) return false; // a line longer than any the kernel writes
                Buffer.MemoryCopy(buffer + lineStart, buffer, BufferBytes, kept);
            }
        }
        finally
        {
            LibC.Close(fd);
        }
    }

    /// <summary>Parses the "start-end " at the beginning of a maps line (lower-case hex).</summary>
    private static bool TryParseRange(ReadOnlySpan<byte> line, out nuint start, out nuint end)
    {
        start = end = 0;
        int i = 0;
        if (!TryParseHex(line, ref i, out start) || i >= line.Length || line[i] != (byte)'-') return false;
        i++;
        return TryParseHex(line, ref i, out end) && i < line.Length && line[i] == (byte)' ';
    }

    private static bool TryParseHex(ReadOnlySpan<byte> text, ref int i, out nuint value)
    {
        value = 0;
        int first = i;
        for (; i < text.Length && i - first < 16; i++)
        {
            int c = text[i], digit = c is >= '0' and <= '9' ? c - '0' : c is >= 'a' and <= 'f' ? c - 'a' + 10 : -1;
            if (digit < 0) break;
            value = value << 4 | (nuint)digit;
        }
        return i > first;
    }

    /// <summary>
    /// Arms the exit latch at <paramref name="latch"/> (<see cref="LatchBytes"/> bytes, zeroed before its
    /// first use and never freed) for the calling thread. False when the latch is still held by a thread
    /// that has not finished exiting, or the platform has no latch.
    /// </summary>
    public static bool TryArmExitLatch(void* latch)
    {
        if (!Supported) return false;
        // One latch per thread: arming a second one would replace the first in the key, and the first
        // would then stay armed after this thread's exit, vouching for a dead thread's stack.
        if (LibC.PthreadGetspecific(s_exitKey) != null) return false;
        if (LibC.PthreadMutexTrylock(latch) != 0) return false; // EBUSY: the previous owner is still exiting
        // The key holds one latch per thread; a thread arms at most one (its heap's), so this replaces
        // nothing. A latch that reads unlocked although locked (lock elision), or that the exit would not
        // release, must not stay armed: an armed latch of a dead thread would vouch for its stack.
        if (IsArmed(latch) && LibC.PthreadSetspecific(s_exitKey, latch) == 0) return true;
        LibC.PthreadMutexUnlock(latch);
        return false;
    }

    /// <summary>True while the thread that armed the latch has not exited. A non-zero first word means
    /// locked in both glibc (the lock word at offset 0) and musl (the lock word at offset 4).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool IsArmed(void* latch) => Volatile.Read(ref *(long*)latch) != 0;
}
