using SlabAlloc.Frontend;

namespace SlabAlloc.Tests.Frontend;

/// <summary>
/// A thread cache is reserved in whole pages for every thread that ever attached at once, and its record is kept
/// for reuse: it must fit in one page, or every such thread reserves and touches two.
/// </summary>
public sealed unsafe class ThreadCacheLayoutTests
{
    [Fact]
    public void AThreadCacheFitsInOnePage()
    {
        Assert.True(sizeof(ThreadCache) <= 4096, $"a thread cache is {sizeof(ThreadCache)} bytes");
        Assert.True(sizeof(ThreadCache) <= Environment.SystemPageSize);
    }
}
