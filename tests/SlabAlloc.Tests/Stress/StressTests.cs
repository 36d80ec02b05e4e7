using Xunit.Abstractions;

namespace SlabAlloc.Tests.Stress;

[Collection("SlabAlloc global state")]
public sealed class StressTests(ITestOutputHelper output)
{
    [Fact]
    public void ManyThreadsSwappingBlocksLoseNothingAndHandOutNothingTwice() =>
        RunAndAccount(threads: 8, rounds: 6, operationsPerThread: 20_000, seed: 20261126);

    /// <summary>The long version: <c>dotnet test --filter Category=Stress</c>.</summary>
    [Fact, Trait("Category", "Stress")]
    public void LongStress()
    {
        for (int run = 0; run < 10; run++)
            RunAndAccount(threads: 16, rounds: 20, operationsPerThread: 50_000, seed: 42 + run);
    }

    private void RunAndAccount(int threads, int rounds, int operationsPerThread, int seed)
    {
        SlabStatistics before = SlabMemory.GetStatistics();
        var workload = new StressWorkload(threads, rounds, operationsPerThread, seed);
        workload.Run();

        SlabStatistics after = SlabMemory.GetStatistics();
        output.WriteLine($"{workload.Allocations} allocations, {workload.Frees} frees, {workload.Swaps} swaps; " +
                         $"remote frees {after.RemoteFrees - before.RemoteFrees}, thread caches reclaimed {after.ThreadCachesReclaimed - before.ThreadCachesReclaimed}, " +
                         $"stages {after.AcquiredStage1 - before.AcquiredStage1}/{after.AcquiredStage2 - before.AcquiredStage2}/{after.AcquiredStage3 - before.AcquiredStage3}, " +
                         $"mapped {after.BytesMapped >> 20} MiB");

        Assert.Equal(0, workload.LiveBlocks);
        Assert.Equal(workload.Allocations, workload.Frees);
        Assert.Equal(before.BlocksInUse, after.BlocksInUse);
        Assert.Equal(before.BytesInUse, after.BytesInUse);
        Assert.Equal(before.LargeBlocks, after.LargeBlocks);
        Assert.True(after.RemoteFrees - before.RemoteFrees > workload.Frees / 4, "most frees should cross threads");

        SlabMemory.Trim();
        SlabStatistics trimmed = SlabMemory.GetStatistics();
        output.WriteLine(trimmed.ToString());
        // Every slab not owned by a live thread is back to UNUSED: nothing full, partial, listed empty or reserved.
        Assert.Equal(0, trimmed.SlabsFull);
        Assert.Equal(0, trimmed.SlabsPartial);
        Assert.Equal(0, trimmed.SlabsEmpty);
        Assert.Equal(0, trimmed.SlabsReserved);
        Assert.Equal(0, trimmed.LargeCachedBytes);
        Assert.Equal(before.BlocksInUse, trimmed.BlocksInUse);
        Assert.True(trimmed.SlabsOwned <= before.SlabsOwned + SlabCountOfLiveCaches(trimmed),
            "only live threads' caches may still own slabs");
    }

    /// <summary>Every slab a live thread cache could own: one per size class per live cache.</summary>
    private static int SlabCountOfLiveCaches(SlabStatistics s) => s.ThreadCaches * s.Classes.Count;
}
