using SlabAlloc.Platform;
using SlabAlloc.Runtime;

namespace SlabAlloc.Tests.Platform;

/// <summary>The mapping limit (<c>SLABALLOC_MAX_MAPPED_MB</c>): past it allocation throws, the process
/// keeps running, and memory freed afterwards can be allocated again.</summary>
[Collection("SlabAlloc global state")]
public sealed unsafe class MemoryLimitTests
{
    [Fact]
    public void PastTheLimitAllocationThrowsAndFreedMemoryCanBeAllocatedAgain()
    {
        const long Headroom = 48L << 20;
        // Dead threads' caches handed back now (their finalizers), not while the limit is being counted.
        GC.Collect();
        GC.WaitForPendingFinalizers();
        SlabMemory.Trim();
        SlabStatistics before = SlabMemory.GetStatistics();
        long previousLimit = TestHooks.MappingLimitBytes;
        TestHooks.MappingLimitBytes = OsMemory.MappedBytes + Headroom;
        var blocks = new List<nint>();
        try
        {
            // 1 MiB large blocks, then small ones, until the limit says no.
            OutOfMemoryException? refused = null;
            try
            {
                for (int i = 0; i < 1000; i++)
                {
                    blocks.Add((nint)SlabMemory.Alloc(1024 * 1024));
                    *(byte*)blocks[^1] = 1;
                }
            }
            catch (OutOfMemoryException e) { refused = e; }
            Assert.NotNull(refused);
            Assert.InRange(blocks.Count, 30, 48);
            Assert.True(OsMemory.MappedBytes <= TestHooks.MappingLimitBytes);
            Assert.True(OsMemory.RefusedByLimit > 0);

            int large = blocks.Count;
            Assert.Throws<OutOfMemoryException>(() => { for (int i = 0; i < 100_000; i++) blocks.Add((nint)SlabMemory.Alloc(48 * 1024)); });

            // Free the large blocks (unmapped beyond the large cache: empty it), and allocation works again.
            for (int i = 0; i < large; i++) SlabMemory.Free((void*)blocks[i]);
            blocks.RemoveRange(0, large);
            SlabMemory.Trim();
            for (int i = 0; i < 8; i++) blocks.Add((nint)SlabMemory.Alloc(1024 * 1024));
        }
        finally
        {
            foreach (nint p in blocks) SlabMemory.Free((void*)p);
            TestHooks.MappingLimitBytes = previousLimit;
            SlabMemory.Trim();
        }
        SlabStatistics after = SlabMemory.GetStatistics();
        Assert.Equal(before.BlocksInUse, after.BlocksInUse);
        Assert.Equal(before.BytesInUse, after.BytesInUse);
    }
}
