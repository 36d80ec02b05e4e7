namespace SlabAlloc.Platform;

/// <summary>
/// Test-only hook that makes the platform layer refuse reservations, so that every caller's
/// out-of-memory handling can be exercised. Disarmed (one predictable branch) unless a test arms it.
/// </summary>
internal static class FaultInjector
{
    private static long s_countdown = long.MaxValue;
    private static long s_failures;

    /// <summary>Makes the <paramref name="n"/>-th reservation from now (1 = the next) and every
    /// one after it fail, until <see cref="Disarm"/>.</summary>
    public static void FailFrom(long n) => Volatile.Write(ref s_countdown, n);

    /// <summary>Stops failing reservations.</summary>
    public static void Disarm() => Volatile.Write(ref s_countdown, long.MaxValue);

    /// <summary>How many reservations were refused since start-up.</summary>
    public static long Failures => Volatile.Read(ref s_failures);

    internal static bool ShouldFail()
    {
        if (Volatile.Read(ref s_countdown) == long.MaxValue) return false;
        if (Interlocked.Decrement(ref s_countdown) > 0) return false;
        Interlocked.Exchange(ref s_countdown, 0); // stay failing, do not wrap
        Interlocked.Increment(ref s_failures);
        return true;
    }
}
