using SlabAlloc.Runtime;

namespace SlabAlloc.Tests.Runtime;

/// <summary>
/// The start-up warm-up (<c>SLABALLOC_WARMUP</c>, on by default): when the assembly loads, a background
/// thread allocates and frees a few blocks so the JIT compiles the allocation paths before the program's
/// own first allocation. Run in fresh processes (the probe waits for the start-up thread to finish).
/// </summary>
public sealed class WarmUpTests
{
    private static Dictionary<string, long> Figures(ProbeProcess.ProbeResult result)
    {
        var figures = new Dictionary<string, long>();
        foreach (string name in new[] { "WARMUP_ALLOCATIONS", "WARMUP_FREES", "BLOCKS_IN_USE", "SLABS_OWNED", "THREAD_CACHE_RECORDS", "FIRST_PAIR_JIT_METHODS" })
            figures[name] = long.Parse(Assert.Single(result.Lines(name + " ")).Split(' ')[1]);
        return figures;
    }

    [Fact]
    public void WarmUp_LeavesNothingInUse_AndHandsItsSlabsBack()
    {
        var result = ProbeProcess.Run(new Dictionary<string, string> { ["SLABALLOC_WARMUP"] = "1" }, "warmup");
        Assert.True(result.ExitCode == 0, result.ToString());
        Dictionary<string, long> f = Figures(result);
        // Every block it allocated freed; its thread's cache made and its slabs given back to the pool
        // before the thread ended (the probe's own thread has not allocated yet).
        Assert.True(f["WARMUP_ALLOCATIONS"] == WarmUp.Allocations, result.ToString());
        Assert.True(f["WARMUP_FREES"] == WarmUp.Allocations, result.ToString());
        Assert.True(f["BLOCKS_IN_USE"] == 0, result.ToString());
        Assert.True(f["SLABS_OWNED"] == 0, result.ToString());
        Assert.True(f["THREAD_CACHE_RECORDS"] == 1, result.ToString());
        Assert.Single(result.Lines("PROBE_OK"));
    }

    [Fact]
    public void WarmUp_LeavesTheFirstAllocationLittleToCompile()
    {
        // Measured: 11 methods with the warm-up (the main thread's own stack lookup), 79 without.
        var warm = ProbeProcess.Run(new Dictionary<string, string> { ["SLABALLOC_WARMUP"] = "1" }, "warmup");
        var cold = ProbeProcess.Run(new Dictionary<string, string> { ["SLABALLOC_WARMUP"] = "0" }, "warmup");
        Assert.True(warm.ExitCode == 0, warm.ToString());
        Assert.True(cold.ExitCode == 0, cold.ToString());
        long warmMethods = Figures(warm)["FIRST_PAIR_JIT_METHODS"], coldMethods = Figures(cold)["FIRST_PAIR_JIT_METHODS"];
        Assert.True(warmMethods <= 25, $"{warmMethods} methods compiled for the first pair after the warm-up\n{warm}");
        Assert.True(coldMethods >= 40, $"{coldMethods} methods compiled for the first pair without the warm-up\n{cold}");
    }

    [Fact]
    public void WarmUpOff_AllocatesNothing()
    {
        var result = ProbeProcess.Run(new Dictionary<string, string> { ["SLABALLOC_WARMUP"] = "0" }, "warmup");
        Assert.True(result.ExitCode == 0, result.ToString());
        Dictionary<string, long> f = Figures(result);
        Assert.True(f["WARMUP_ALLOCATIONS"] == 0 && f["THREAD_CACHE_RECORDS"] == 0, result.ToString());
        Assert.Single(result.Lines("PROBE_OK"));
    }

    [Fact]
    public void InvalidWarmUpSetting_FailsAtStartUp_NamingTheVariable()
    {
        var result = ProbeProcess.Run(new Dictionary<string, string> { ["SLABALLOC_WARMUP"] = "sometimes" }, "warmup");
        Assert.True(result.ExitCode != 0, result.ToString());
        Assert.Contains("SLABALLOC_WARMUP", result.Stderr);
        Assert.DoesNotContain("PROBE_OK", result.Stdout);
    }
}
