namespace SlabAlloc.Tests.Reliability;

/// <summary>
/// Free-list hardening (<c>SLABALLOC_HARDENED</c>, on by default): a heap overflow that overwrites a free
/// block's link is reported as corruption instead of making the allocator hand out the address the
/// attacker wrote, and the same block freed twice in a row is rejected. Each scenario corrupts a slab,
/// so it runs in a child process.
/// </summary>
public sealed class HardeningTests
{
    [Fact]
    public void AnOverwrittenFreeListLinkIsReportedNotFollowed()
    {
        var result = ProbeProcess.Run(new Dictionary<string, string>(), "overflow");
        Assert.True(result.ExitCode == 0, result.ToString());
        string line = Assert.Single(result.Lines("CORRUPTION_DETECTED: "));
        Assert.Contains("heap corruption", line);
        Assert.Contains("overwritten", line);
    }

    [Theory]
    [InlineData("1")]
    [InlineData("0")]
    public void AnOverwrittenLinkInTheFreeCacheIsReportedNotFollowed_AndTheSizeWorksAgain(string hardened)
    {
        // A 4,000-byte block goes to the thread's free cache, whose blocks are checked before they are
        // handed out in both modes: the foreign address is never handed out. The damaged cache is dropped
        // when the damage is found, so the size allocates again and Trim finds nothing more to report.
        var result = ProbeProcess.Run(new Dictionary<string, string> { ["SLABALLOC_HARDENED"] = hardened }, "overflow", "4000");
        Assert.True(result.ExitCode == 0, result.ToString());
        // The overwritten link is the cache's last: it is found where the chain should have ended.
        string line = Assert.Single(result.Lines("CORRUPTION_DETECTED: "));
        Assert.Contains("heap corruption", line);
        Assert.Contains("free cache", line);
        Assert.Contains("overwritten", line);
        Assert.Single(result.Lines("ALLOCATOR_WORKS"));
        Assert.Single(result.Lines("SIZE_ALLOCATES_AGAIN"));
        Assert.Single(result.Lines("TRIM_RETURNS"));
    }

    [Fact]
    public void WithoutHardeningTheSameOverflowHandsOutForeignMemory()
    {
        // The control: what the hardened run prevents.
        var result = ProbeProcess.Run(new Dictionary<string, string> { ["SLABALLOC_HARDENED"] = "0" }, "overflow");
        Assert.True(result.ExitCode == 3, result.ToString());
        Assert.Single(result.Lines("FOREIGN_HANDED_OUT"));
    }

    [Theory]
    [InlineData("trim")]
    [InlineData("attach")]
    [InlineData("upkeep")]
    public void CorruptionFoundWhileReclaimingADeadThreadsHeapIsLoggedAndLeavesTheAllocatorWorking(string foundBy)
    {
        // A remote double free makes a dead thread's slab list a cycle; handing the heap back finds it.
        // Only in checked mode is the second free itself rejected, before any corruption.
        // Remote frees pushed one at a time: batched, the second free of the block in a row is rejected
        // at once (RemoteFreeBatchTests), and the list never becomes the cycle this test is about.
        var settings = new Dictionary<string, string> { ["SLABALLOC_REMOTE_BATCH"] = "0" };
        if (foundBy == "upkeep") settings["SLABALLOC_DECAY_MS"] = "20";
        var result = ProbeProcess.Run(settings, "reclaim-corruption", foundBy);
        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Single(result.Lines("TRIM_RETURNS"));
        if (foundBy == "attach") Assert.Single(result.Lines("NEW_THREAD_ALLOCATES"));
        if (foundBy == "upkeep") Assert.Single(result.Lines("UPKEEP_REPORTED"));
        Assert.Single(result.Lines("PROBE_OK"));
        // Reported by Trim, or met first by a pass of the upkeep; logged either way.
        foreach (string line in result.Lines("RECLAIM_CORRUPTION_REPORTED: ")) Assert.Contains("heap corruption", line);
        Assert.Contains(result.Lines("LOGGED_ERROR: "), line => line.Contains("heap corruption") && line.Contains("cycle"));
    }

    [Theory]
    [InlineData("trim")]
    [InlineData("attach")]
    [InlineData("upkeep")]
    public void ALoggerThatWaitsForAnotherThreadsTrim_IsCalledOnceNothingIsHeld(string foundBy)
    {
        // The same corruption, met by Trim (which holds the upkeep off), by a new thread's reclaim (whose record
        // Trim waits for) or by a pass of the upkeep (which holds Trim off). The logger, at the error, runs Trim
        // on a thread of its own and waits for it: the error must reach it once the finder has let go.
        // The upkeep off where it is not the finder, so that the case meets the corruption where it means to.
        var result = ProbeProcess.Run(new Dictionary<string, string> { ["SLABALLOC_REMOTE_BATCH"] = "0", ["SLABALLOC_DECAY_MS"] = foundBy == "upkeep" ? "20" : "0" },
            "reclaim-corruption", foundBy, "waiting-logger");
        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Single(result.Lines("LOGGER_TRIM_RETURNED"));
        Assert.Contains(result.Lines("LOGGED_ERROR: "), line => line.Contains("heap corruption") && line.Contains("cycle"));
        Assert.Single(result.Lines("TRIM_RETURNS"));
        Assert.Single(result.Lines("PROBE_OK"));
    }

    [Theory]
    [InlineData("lockfree")]
    [InlineData("mutex")]
    public void CorruptionMetByAnAllocationInAPoolSlab_ReachesALoggerThatWaitsForAnotherThreadsTrim(string pool)
    {
        // A thread's allocation pops the slab with the cycle from the pool: the allocation reports it, and the
        // logger, which runs Trim on a thread of its own and waits for it, is called once the pool (with the mutex
        // pool, its lock) is let go.
        var result = ProbeProcess.Run(new Dictionary<string, string> { ["SLABALLOC_REMOTE_BATCH"] = "0", ["SLABALLOC_POOL"] = pool },
            "pool-corruption", "acquire");
        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Contains("heap corruption", Assert.Single(result.Lines("ACQUIRE_REPORTED: ")));
        Assert.Single(result.Lines("LOGGER_TRIM_RETURNED"));
        Assert.Single(result.Lines("TRIM_RETURNS"));
        Assert.Single(result.Lines("PROBE_OK"));
    }

    [Fact]
    public void CorruptionFoundInAPoolSlabByTrimIsLoggedAndTheRestIsTrimmedAndKept()
    {
        // Remote frees pushed one at a time, as above.
        var result = ProbeProcess.Run(new Dictionary<string, string> { ["SLABALLOC_REMOTE_BATCH"] = "0" }, "pool-corruption");
        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Contains("heap corruption", Assert.Single(result.Lines("RECLAIM_CORRUPTION_REPORTED: ")));
        Assert.Contains(result.Lines("LOGGED_ERROR: "), line => line.Contains("heap corruption") && line.Contains("cycle"));
        Assert.Single(result.Lines("LARGE_CACHE_FLUSHED"));
        Assert.Single(result.Lines("KEPT_SLAB_REUSED"));
        Assert.Single(result.Lines("TRIM_RETURNS"));
        Assert.Single(result.Lines("PROBE_OK"));
    }

    [Theory]
    [InlineData("trim", "0")]
    [InlineData("free", "0")]
    [InlineData("free", "1")]
    public void DamageInTheMiddleOfTheFreeCache_FoundByAFlush_IsReportedAndChangesNothingElse(string foundBy, string isChecked)
    {
        // Found by Trim's flush, or by the flush a free makes room with: reported, the blocks before the damage
        // given back to their slabs and their empty slabs let go (the Debug pass checks every slab let go), the
        // reporting free left undone (in checked mode too: its block still marked handed out), the size working
        // again and the counts exact.
        var result = ProbeProcess.Run(new Dictionary<string, string> { ["SLABALLOC_CHECKED"] = isChecked }, "cache-damage", foundBy);
        Assert.True(result.ExitCode == 0, result.ToString());
        string report = foundBy == "trim" ? "TRIM_REPORTS: " : "FREE_REPORTS: ";
        Assert.Contains("free cache was overwritten", Assert.Single(result.Lines(report)));
        if (foundBy == "free") Assert.Single(result.Lines("FREE_AGAIN_SUCCEEDS"));
        Assert.Single(result.Lines("SIZE_ALLOCATES_AGAIN"));
        Assert.Single(result.Lines("PROBE_OK"));
    }

    [Theory]
    [InlineData("0", "1")]
    [InlineData("1", "1")]
    [InlineData("0", "0")]
    public void DamageInARemoteFreeBatch_FoundByTheFreeThatPushesIt_IsReportedAndLeavesThatFreeUndone(string isChecked, string hardened)
    {
        // A write after free over a block held in the thread's remote-free batch, met by the push that a free
        // into another slab makes first: reported, and that free left undone (in checked mode too: its block
        // still marked handed out), so its one later free succeeds and the counts come back exact. With hardening
        // off the overwritten link is stored as it is, and the push must still not follow it out of the heap.
        var result = ProbeProcess.Run(new Dictionary<string, string> { ["SLABALLOC_CHECKED"] = isChecked, ["SLABALLOC_HARDENED"] = hardened }, "batch-damage");
        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Contains("heap corruption", Assert.Single(result.Lines("FREE_REPORTS: ")));
        Assert.Single(result.Lines("FREE_AGAIN_SUCCEEDS"));
        Assert.Single(result.Lines("PROBE_OK"));
    }

    [Theory]
    [InlineData("64")]
    [InlineData("4000")] // into the free cache
    public void TheSameBlockFreedTwiceInARowIsRejectedByDefault(string size)
    {
        var result = ProbeProcess.Run(new Dictionary<string, string>(), "double-free-immediate", size);
        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Contains("double free", Assert.Single(result.Lines("DOUBLE_FREE_DETECTED: ")));
        Assert.Single(result.Lines("PROBE_OK"));
    }
}
