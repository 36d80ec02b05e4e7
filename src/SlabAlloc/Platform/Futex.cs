using System.Runtime.InteropServices;

namespace SlabAlloc.Platform;

/// <summary>
/// Kernel waits on a 32-bit word of shared memory: the futex system call without <c>FUTEX_PRIVATE_FLAG</c>, so
/// that a wake in one process reaches a waiter in another that maps the same file.
/// </summary>
/// <remarks>The kernel compares the word with the expected value under its own lock before sleeping, so a
/// waker that changes the word and then wakes cannot be missed: the waiter either sees the new value and does
/// not sleep, or is asleep when the wake comes.</remarks>
internal static unsafe class Futex
{
    private const int WaitOperation = 0;
    private const int WakeOperation = 1;

    /// <summary>Sleeps while <c>*word == expected</c>, for at most <paramref name="timeoutMilliseconds"/>.</summary>
    /// <returns>True when woken (or the word had already changed, or a signal interrupted the wait); false when
    /// the time ran out.</returns>
    public static bool Wait(int* word, int expected, int timeoutMilliseconds)
    {
        var timeout = new LibC.Timespec { Seconds = timeoutMilliseconds / 1000, Nanoseconds = timeoutMilliseconds % 1000 * 1_000_000L };
        long result = LibC.SyscallFutex(LibC.FutexSyscall, word, WaitOperation, expected, &timeout, null, 0);
        return result == 0 || Marshal.GetLastPInvokeError() != LibC.ErrorTimedOut;
    }

    /// <summary>Wakes up to <paramref name="count"/> waiters on <paramref name="word"/>.</summary>
    /// <returns>How many were woken.</returns>
    public static int Wake(int* word, int count) =>
        (int)Math.Max(0, LibC.SyscallFutex(LibC.FutexSyscall, word, WakeOperation, count, null, null, 0));
}
