using SlabAlloc.Platform;
using SlabAlloc.Runtime;

namespace SlabAlloc.Tests.Runtime;

/// <summary>
/// The periodic upkeep (<c>SLABALLOC_DECAY_MS</c>): a process that goes quiet after a burst of short
/// threads gives back, without <c>Trim</c>, what the dead threads' caches and the pool kept: the caches
/// are reclaimed, slabs left in the partial lists by remote frees are found empty, the empty slabs decay
/// and the superslabs kept for reuse are unmapped. Run in fresh processes (the probe's <c>idle</c> mode:
/// 200 threads in waves of 4, each handing 4 blocks to the next wave, then only statistics reads).
/// </summary>
public sealed class UpkeepTests
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
        // Every superslab was returned (IDLE_RETURNED_MS). The Linux layer gives its memory back to the system;
        // the portable one cannot without giving up the range, so the memory stays allocated, and counted, for
        // the next superslabs: nothing goes back, and nothing more is taken.
        if (OsMemory.UsesMmap) Assert.True(end <= 2L << 20, $"{end} bytes still mapped after going idle (metadata only expected)\n{result}");
        else Assert.True(end == burst, $"{end} bytes mapped after going idle, {burst} after the burst: the portable layer gives nothing back\n{result}");
        // Rounds that still hand memory back are not quiet: no backing off until everything is back.
        Assert.Equal(100, Figure(result, "IDLE_LONGEST_DELAY_WHILE_RETURNING"));
        Assert.Single(result.Lines("PROBE_OK"));
    }

    [Fact]
    public void SlotsReleasedWithTheirPagesResident_AreDecommittedByTheUpkeep_OnceTheProcessIsQuiet()
    {
        // No empty slab kept by the pool, so every slab the ended thread's cache hands back is released to its
        // superslab, pages resident; 100 ms intervals: noted at one decay, decommitted at the next. The
        // superslab stays mapped (the probe keeps a block in it), so the slots stay unused, not resident.
        var settings = new Dictionary<string, string>
        {
            ["SLABALLOC_DECAY_MS"] = "100", ["SLABALLOC_EMPTY_SLABS_PER_CLASS"] = "0", ["SLABALLOC_SHARED_EMPTY_SLABS"] = "0",
            ["DOTNET_GCgen0size"] = "0x10000000",
        };
        var result = ProbeProcess.Run(settings, "resident-idle", "30");
        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.True(Figure(result, "RESIDENT_SEEN") >= 2, $"too few slots were ever resident to show anything\n{result}");
        Assert.Single(result.Lines("RESIDENT_PURGED_MS"));
        Assert.True(Figure(result, "UNUSED_SLOTS_END") >= Figure(result, "RESIDENT_SEEN"), result.ToString());
        Assert.Single(result.Lines("PROBE_OK"));
    }

    [Theory]
    [InlineData(1000, 0, 1000)]
    [InlineData(1000, 1, 1000)] // one quiet round: the decay's low-water mark may still need a round
    [InlineData(1000, 2, 2000)]
    [InlineData(1000, 3, 4000)]
    [InlineData(1000, 6, 32000)]
    [InlineData(1000, 7, 32000)] // at most 32 intervals
    [InlineData(1000, int.MaxValue, 32000)]
    [InlineData(5000, 6, 60000)] // at most a minute
    [InlineData(90000, 6, 90000)] // never less than the interval
    [InlineData(1, 6, 32)]
    [InlineData(0, 0, 1000)] // the interval set to 0 at run time: the timer keeps looking once a second
    [InlineData(0, 6, 1000)]
    public void TheDelay_DoublesWhileQuiet_WithinItsBounds(int period, int quietTicks, int expected) =>
        Assert.Equal(expected, Upkeep.DelayAfter(period, quietTicks));

    [Fact]
    public void AQuietProcess_IsWokenLessOften_AndTrafficWakesTheUpkeepAtOnce()
    {
        // 100 ms intervals: once the decay has handed back the empty slabs a first thread left (32 a round),
        // the delay grows 100, 200, ... 3,200 ms while nothing happens (about 3.5 s).
        // Then a thread allocates right after the timer was armed with 3,200 ms: without the wake-up the
        // next two rounds would take 3.3 s or more; with it, about 0.2 s. The delay shown is the one the
        // timer was last armed with. No garbage collection, so no
        // finalizer releases anything in the quiet spell.
        var result = ProbeProcess.Run(new Dictionary<string, string>
        {
            ["SLABALLOC_DECAY_MS"] = "100", ["SLABALLOC_EMPTY_SLABS_PER_CLASS"] = "64", ["DOTNET_GCgen0size"] = "0x10000000",
        }, "upkeep-backoff", "100");
        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Single(result.Lines("BACKOFF_REACHED_MS"));
        // Rounds in which only the upkeep itself hands memory back are not quiet either.
        Assert.True(Figure(result, "BACKOFF_KEPT_AT_START") >= 96, result.ToString());
        Assert.Equal(100, Figure(result, "BACKOFF_LONGEST_WHILE_DECAYING"));
        int[] delays = Assert.Single(result.Lines("BACKOFF_DELAYS ")).Split(' ')[1..].Select(int.Parse).ToArray();
        // Only ever longer while quiet (each delay seen is the one before doubled, or later), ending at 32 intervals.
        Assert.True(delays.Zip(delays.Skip(1)).All(p => p.Second > p.First), result.ToString());
        Assert.Equal(3200, delays[^1]);
        Assert.Equal(100, Figure(result, "WAKE_DELAY"));
        long wake = Figure(result, "WAKE_TICKS_MS");
        Assert.True(wake < 2500, $"two rounds took {wake} ms after traffic: the timer kept its long delay\n{result}");
        Assert.Single(result.Lines("PROBE_OK"));
    }

    [Fact]
    public void RoundsWhoseSweepStopsOnItsBudget_AreNotQuiet()
    {
        // 900 partial slabs with remote frees waiting that do not empty them sit above 100 that they do
        // empty; a sweep walks at most 256 remote lists, so three rounds hand nothing back before one
        // reaches the empty slabs. Those rounds still have work left: the delay must stay one interval.
        var result = ProbeProcess.Run(new Dictionary<string, string> { ["SLABALLOC_DECAY_MS"] = "100", ["DOTNET_GCgen0size"] = "0x10000000" }, "upkeep-sweep");
        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Equal(1000, Figure(result, "SWEEP_SLABS"));
        Assert.Single(result.Lines("SWEEP_DONE_MS"));
        Assert.Equal(100, Figure(result, "SWEEP_LONGEST_DELAY"));
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
