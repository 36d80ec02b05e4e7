using System.Runtime.CompilerServices;

namespace SlabAlloc.Pool;

/// <summary>
/// A watch on the shared pool's traffic, for the periodic upkeep: it sleeps longer while the pool is
/// quiet and must wake when it is not. <see cref="Renew"/> sets the watch; the next acquisition or release
/// (<see cref="Note"/>, at the start of <see cref="SlabPool.Acquire"/>, <see cref="SlabPool.PublishPartial"/>
/// and <see cref="SlabPool.ReleaseEmpty"/>) clears it and calls the watcher back, once per watch.
/// </summary>
/// <remarks>
/// <para>Process-wide, with one watcher: each <see cref="Renew"/> replaces the callback (there is one
/// upkeep). A callback, not a call upward: the pool does not know who watches.</para>
/// <para>The callback runs on whichever thread acquires or releases first: an allocating or freeing
/// thread (outside the pool's lock), an attaching thread handing a dead thread's cache back, a thread in
/// <c>Trim</c>, or the upkeep's own thread while it reclaims a dead thread's cache. It must be quick and
/// must not throw.</para>
/// </remarks>
internal static class PoolTrafficWatch
{
    /// <summary>1 while a watch is set and has seen no acquisition or release, else 0.</summary>
    private static int s_watching;
    private static Action? s_onTraffic;

    /// <summary>Sets a watch and returns whether the previous one saw traffic (true when none was set).</summary>
    public static bool Renew(Action onTraffic)
    {
        Volatile.Write(ref s_onTraffic, onTraffic);
        return Interlocked.Exchange(ref s_watching, 1) == 0;
    }

    /// <summary>Called at the start of every acquisition and release: one read of a static while the watch
    /// is already cleared (nearly always), one exchange and the callback otherwise.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Note()
    {
        if (Volatile.Read(ref s_watching) != 0) End();
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void End()
    {
        // Several threads may find the watch set; the exchange lets one of them call back.
        if (Interlocked.Exchange(ref s_watching, 0) != 0) Volatile.Read(ref s_onTraffic)?.Invoke();
    }
}
