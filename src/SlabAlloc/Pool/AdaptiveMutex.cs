using SlabAlloc.Support;

namespace SlabAlloc.Pool;

/// <summary>
/// The mutex of the baseline pool, built like glibc's adaptive pthread mutex: try to take it, spin a
/// bounded number of times while it is held, then block in the kernel. With lock statistics on it
/// records, per path, acquisitions and contended acquisitions, a log2 histogram of spin iterations
/// before the lock was obtained, and how often a thread gave up spinning and blocked.
/// </summary>
/// <remarks>
/// The blocking part is <see cref="Lock"/>, which parks the thread on a kernel wait (futex) when the
/// lock stays taken. Spinning first pays off when the holder is running on another core and about to
/// release; with more threads than cores the holder is often preempted, and then every spin is wasted
/// and waiters block: the cliff this baseline exists to show. The blocking wait ignores
/// <see cref="Thread.Interrupt"/> (<see cref="Uninterruptible"/>): a pool operation is a hand-over that must
/// not stop half-way.
/// </remarks>
internal sealed class AdaptiveMutex
{
    /// <summary>Spin iterations before a waiter blocks (glibc's default adaptive limit is 100).</summary>
    public const int SpinLimit = 100;

    private readonly Lock _lock = new();

    public void Enter(PoolPath path)
    {
        if (_lock.TryEnter())
        {
            if (LockCounters.Enabled) LockCounters.RecordLock(path, contended: false, spins: 0, blocked: false);
            return;
        }
        for (int spin = 1; spin <= SpinLimit; spin++)
        {
            Thread.SpinWait(8);
            if (_lock.TryEnter())
            {
                if (LockCounters.Enabled) LockCounters.RecordLock(path, contended: true, spins: spin, blocked: false);
                return;
            }
        }
        Uninterruptible.Enter(_lock);
        if (LockCounters.Enabled) LockCounters.RecordLock(path, contended: true, spins: SpinLimit, blocked: true);
    }

    public void Exit() => _lock.Exit();
}
