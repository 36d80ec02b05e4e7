namespace SlabAlloc.Tests.Frontend;

/// <summary>
/// A remote double free into a batch is reported, even of the batch's oldest block: the push checks the
/// batch's chain and refuses one that a double free re-linked, instead of cutting blocks off it (which
/// would lose a block for good and leave the double free unreported). In a child process, since the
/// reclaim that meets it leaves that cache out of use.
/// </summary>
public sealed class RemoteFreeBatchDoubleFreeTests
{
    /// <summary>Runs the probe's <c>batch-double-free</c> with the batch on, and checks that it exited normally.</summary>
    private static ProbeProcess.ProbeResult RunProbe(bool checkedMode, params string[] args)
    {
        var settings = new Dictionary<string, string> { ["SLABALLOC_REMOTE_BATCH"] = "32" };
        if (checkedMode) settings["SLABALLOC_CHECKED"] = "1";
        var result = ProbeProcess.Run(settings, ["batch-double-free", .. args]);
        Assert.True(result.ExitCode == 0, result.ToString());
        return result;
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void ARemoteDoubleFreeOfABatchsOldestBlockIsReported(bool checkedMode)
    {
        var result = RunProbe(checkedMode);
        if (checkedMode) Assert.Single(result.Lines("DOUBLE_FREE_REJECTED"));
        else Assert.Contains("freed twice while held in a thread's remote-free batch", Assert.Single(result.Lines("DOUBLE_FREE_REPORTED")));
        Assert.Single(result.Lines("PROBE_OK"));
    }

    /// <summary>Two batches of one thread (64 B and 128 B blocks, freed in turn) damaged alike: the reclaim pushes
    /// neither, throws for the first and logs the other as well; in checked mode both double frees are rejected.</summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void DoubleFreesInTwoClassesBatchesAreBothReported(bool checkedMode)
    {
        var result = RunProbe(checkedMode, "two-classes");
        if (checkedMode)
        {
            Assert.Equal(2, result.Lines("DOUBLE_FREE_REJECTED").Length);
            Assert.Empty(result.Lines("DOUBLE_FREE_REPORTED"));
        }
        else
        {
            Assert.Contains("freed twice while held in a thread's remote-free batch", Assert.Single(result.Lines("DOUBLE_FREE_REPORTED")));
            Assert.Single(result.Lines("LOGGED_ERROR"), l => l.Contains("1 remote-free batches of one thread were damaged besides the one reported next"));
        }
        Assert.Single(result.Lines("PROBE_OK"));
    }
}
