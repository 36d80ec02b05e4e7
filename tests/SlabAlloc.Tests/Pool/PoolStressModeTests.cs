namespace SlabAlloc.Tests.Pool;

/// <summary>
/// The pool-stress setting (<c>SLABALLOC_THREAD_CACHE_LIMIT</c>), read once at start-up, so run in a
/// child process: with 4-block thread caches every few allocations go through the shared pool, and the
/// allocator must still hand out distinct, intact blocks, with cross-thread frees, and exact accounting.
/// </summary>
public sealed class PoolStressModeTests
{
    [Theory]
    [InlineData("lockfree")]
    [InlineData("mutex")]
    public void FourBlockThreadCachesKeepEveryBlockAndExactAccounting(string pool)
    {
        var result = ProbeProcess.Run(new Dictionary<string, string>
        {
            ["SLABALLOC_THREAD_CACHE_LIMIT"] = "4",
            ["SLABALLOC_POOL"] = pool,
        }, "workout");
        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Equal("WORKOUT_OK: 80000", Assert.Single(result.Lines("WORKOUT_OK: ")));
        Assert.Single(result.Lines("PROBE_OK"));
    }
}
