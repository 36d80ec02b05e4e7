namespace SlabAlloc.Tests.Reliability;

/// <summary>
/// The periodic upkeep (<c>SLABALLOC_DECAY_MS</c>): a process that goes quiet after a burst of short
/// threads gives back, without <c>Trim</c>, what the dead threads' caches and the pool kept: the caches
/// are reclaimed, slabs left in the partial lists by remote frees are found empty, the empty slabs decay
/// and the superslabs kept for reuse are unmapped. Run in fresh processes (the probe's <c>idle</c> mode:
/// 200 threads in waves of 4, each handing 4 blocks to the next wave, then only statistics reads).
/// </summary>
public sealed class HousekeepingTests
{
    private static long Figure(ProbeProcess.ProbeResult result, string name) =>
        long.Parse(Assert.Single(result.Lines(name + " ")).Split(' ')[1]);

    [Fact]
    public void AnIdleProcess_GivesBackWhatTheBurstKept_WithoutTrim()
    {
        // 100 ms intervals: the upkeep needs a few of them (reclaim, then decay what stayed idle, then
        // unmap the superslabs no claim needed); the probe waits up to 30 s, a guard, not a timing claim.
        // A young generation large enough for no garbage collection to run, so no finalizer hands the last
        // thread's cache back: only the upkeep's reclaim can.
        var result = ProbeProcess.Run(new Dictionary<string, string> { ["SLABALLOC_DECAY_MS"] = "100", ["DOTNET_GCgen0size"] = "0x10000000" }, "idle", "30");
        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Single(result.Lines("IDLE_RETURNED_MS"));
        long burst = Figure(result, "IDLE_MAPPED_BURST"), end = Figure(result, "IDLE_MAPPED_END");
        Assert.True(burst > 8L << 20, $"the burst mapped {burst} bytes: too little to show anything\n{result}");
        Assert.True(end <= 2L << 20, $"{end} bytes still mapped after going idle (metadata only expected)\n{result}");
        Assert.Single(result.Lines("PROBE_OK"));
    }

    [Fact]
    public void WithTheDecayOff_TheBurstsMemoryStays()
    {
        // The same burst with SLABALLOC_DECAY_MS=0: nothing returns by itself (Trim would return it), which
        // is what shows the test above is the upkeep's doing.
        var result = ProbeProcess.Run(new Dictionary<string, string> { ["SLABALLOC_DECAY_MS"] = "0" }, "idle", "2");
        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Single(result.Lines("IDLE_NOT_RETURNED"));
        Assert.True(Figure(result, "IDLE_MAPPED_END") > 8L << 20, result.ToString());
        Assert.Single(result.Lines("PROBE_OK"));
    }
}
