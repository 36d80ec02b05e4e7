namespace SlabAlloc.Support;

/// <summary>
/// Takes a <see cref="Lock"/> without letting <see cref="Thread.Interrupt"/> break the wait.
/// </summary>
/// <remarks>
/// <para>The blocking wait of <see cref="Lock.Enter"/> throws <see cref="ThreadInterruptedException"/>
/// when the thread is interrupted. SlabAlloc waits for a lock in the middle of hand-overs (a slab
/// detached from a thread cache on its way to the pool, a dead thread's cache half handed back): an
/// exception there would leave a slab in no list and owned by nobody. So the wait is simply taken up
/// again, and the interrupt is given back to the thread once the lock is held: it stays pending for the
/// caller's next interruptible wait, as if it had arrived a moment later. Code run under a lock taken
/// here must not itself wait on anything interruptible (none of SlabAlloc's does).</para>
/// </remarks>
internal static class Uninterruptible
{
    /// <summary>Takes <paramref name="gate"/>, keeping an interrupt that arrives meanwhile pending.</summary>
    public static void Enter(Lock gate)
    {
        bool interrupted = false;
        while (true)
        {
            try
            {
                gate.Enter();
                break;
            }
            catch (ThreadInterruptedException)
            {
                interrupted = true; // the interrupt is consumed by the exception: wait again, give it back below
            }
        }
        if (interrupted) Thread.CurrentThread.Interrupt();
    }

    /// <summary>Takes <paramref name="gate"/> as <see cref="Enter"/> does, for a <c>using</c>.</summary>
    public static Scope EnterScope(Lock gate)
    {
        Enter(gate);
        return new Scope(gate);
    }

    /// <summary>Releases the lock when disposed.</summary>
    public readonly ref struct Scope(Lock gate)
    {
        public void Dispose() => gate.Exit();
    }
}
