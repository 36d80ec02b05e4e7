using SlabAlloc.Platform;
using SlabAlloc.Runtime;

namespace SlabAlloc.Tests.Frontend;

/// <summary>
/// The stack map finds a thread's heap from its stack address. What must never happen: a thread that
/// runs on the stack of a thread that has exited gets that thread's heap (it would then use a heap
/// that is being reclaimed, or one that another thread has taken, without atomics). The portable platform
/// layer has no stack map: there the map must never vouch, and the thread-static finds every heap.
/// </summary>
[Collection("SlabAlloc global state")]
public sealed unsafe class StackCacheMapTests
{
    [Fact]
    public void AnAttachedThreadIsFoundThroughItsStack_OrInThePortableLayerThroughItsThreadStatic()
    {
        Assert.True(ThreadStacks.Supported == PlatformLayer.Linux,
            "stack ranges and exit latches should be available on Linux/glibc, and off in the portable layer");
        bool found = false, same = false, rangeKnown = true;
        nint viaThreadStatic = 0;
        var t = new Thread(() =>
        {
            SlabMemory.Free(SlabMemory.Alloc(64));
            nint viaMap = (nint)TestHooks.CacheVouchedByStackMap();
            viaThreadStatic = (nint)TestHooks.CacheOfCallingThread();
            found = viaMap != 0;
            same = viaMap == viaThreadStatic;
            rangeKnown = ThreadStacks.TryGetCurrent(out _, out _);
        });
        t.Start();
        t.Join();
        Assert.NotEqual(0, viaThreadStatic);
        Assert.Equal(PlatformLayer.Linux, found);
        Assert.Equal(PlatformLayer.Linux, same);
        Assert.Equal(PlatformLayer.Linux, rangeKnown);
    }

    [LinuxLayerFact("no stack ranges (the stack map is off)")]
    public void AThreadsStackRangeHoldsItsFramesAndLiesInOneMapping()
    {
        nuint low = 0, bytes = 0, frame = 0, mapStart = 0, mapEnd = 0;
        bool known = false, mapped = false;
        var t = new Thread(() =>
        {
            byte marker;
            frame = (nuint)(&marker);
            known = ThreadStacks.TryGetCurrent(out low, out bytes);
            mapped = ThreadStacks.TryFindMapping(frame, out mapStart, out mapEnd);
        }, maxStackSize: 512 * 1024);
        t.Start();
        t.Join();
        Assert.True(known && mapped);
        Assert.InRange(frame, low, low + bytes - 1);
        // The range never reaches beyond the mapping that holds the stack (no other thread's memory).
        Assert.InRange(low, mapStart, mapEnd - 1);
        Assert.InRange(low + bytes, mapStart + 1, mapEnd);
        Assert.InRange(bytes, (nuint)(256 * 1024), (nuint)(2 * 1024 * 1024));
    }

    [LinuxLayerFact("no stack map, so no heap to inherit through a stack")]
    public void AThreadOnAReusedStackNeverInheritsTheDeadThreadsHeap()
    {
        // Threads one after another with small stacks: the C library hands a joined thread's stack to the
        // next thread, so most threads run on memory the previous one registered in the map.
        const int Threads = 400;
        var stackLows = new HashSet<nuint>();
        int reused = 0, vouchedBeforeAttach = 0, notFoundAfterAttach = 0, wrongHeap = 0;
        for (int i = 0; i < Threads; i++)
        {
            nuint low = 0;
            bool before = false, after = false, right = false;
            var t = new Thread(() =>
            {
                ThreadStacks.TryGetCurrent(out low, out _);
                before = TestHooks.CacheVouchedByStackMap() != null;
                void* p = SlabMemory.Alloc((nuint)(16 + i % 500));
                *(int*)p = i;
                nint viaMap = (nint)TestHooks.CacheVouchedByStackMap();
                after = viaMap != 0;
                right = viaMap == (nint)TestHooks.CacheOfCallingThread();
                Assert.Equal(i, *(int*)p);
                SlabMemory.Free(p);
            }, maxStackSize: 256 * 1024);
            t.Start();
            t.Join();
            if (!stackLows.Add(low)) reused++;
            if (before) vouchedBeforeAttach++;
            if (!after) notFoundAfterAttach++;
            if (after && !right) wrongHeap++;
        }
        Assert.True(reused > Threads / 2, $"only {reused} of {Threads} threads ran on a reused stack: the test did not test reuse");
        Assert.Equal(0, vouchedBeforeAttach);
        Assert.Equal(0, wrongHeap);
        // A reused heap whose previous owner has not finished exiting is not registered; that is rare.
        Assert.InRange(notFoundAfterAttach, 0, Threads / 10);
    }
}
