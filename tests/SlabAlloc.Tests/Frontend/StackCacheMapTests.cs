using SlabAlloc.Platform;
using SlabAlloc.Runtime;

namespace SlabAlloc.Tests.Frontend;

/// <summary>
/// The stack map finds a thread's heap from its stack address. What must never happen: a thread that
/// runs on the stack of a thread that has exited gets that thread's heap (it would then use a heap
/// that is being reclaimed, or one that another thread has taken, without atomics).
/// </summary>
[Collection("SlabAlloc global state")]
public sealed unsafe class StackCacheMapTests
{
    [Fact]
    public void AnAttachedThreadIsFoundThroughItsStack()
    {
        Assert.True(ThreadStacks.Supported, "stack ranges and exit latches should be available on Linux/glibc");
        bool found = false, same = false;
        var t = new Thread(() =>
        {
            SlabMemory.Free(SlabMemory.Alloc(64));
            nint viaMap = (nint)TestHooks.CacheVouchedByStackMap();
            found = viaMap != 0;
            same = viaMap == (nint)TestHooks.CacheOfCallingThread();
        });
        t.Start();
        t.Join();
        Assert.True(found);
        Assert.True(same);
    }

    [Fact]
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

    [Fact]
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
