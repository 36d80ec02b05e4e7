using System.Runtime.InteropServices;
using SlabAlloc.Memory;

namespace SlabAlloc.Tests.Memory;

public unsafe class TaggedIndexStackTests
{
    /// <summary>Link cells in unmanaged memory that outlives every test (like the directory).</summary>
    private struct TestLinks(int* cells) : IIndexLinks
    {
        public int* LinkOf(uint index) => cells + index;
    }

    private static TestLinks NewLinks(int count) =>
        new((int*)NativeMemory.AllocZeroed((nuint)count, sizeof(int)));

    [Fact]
    public void PopsInLastInFirstOutOrderAndReportsEmpty()
    {
        var links = NewLinks(8);
        var stack = new TaggedIndexStack[1];
        Assert.True(stack[0].IsEmpty);
        Assert.False(stack[0].TryPop(out _, links));
        foreach (uint i in new uint[] { 0, 5, 7, 3 }) stack[0].Push(i, links);
        var popped = new List<uint>();
        while (stack[0].TryPop(out uint i, links)) popped.Add(i);
        Assert.Equal(new uint[] { 3, 7, 5, 0 }, popped);
        Assert.True(stack[0].IsEmpty);
    }

    [Fact]
    public void AStalledPopperCannotCompleteAfterPopPopPush()
    {
        // The ABA scenario: A reads head = X (next = Y) and stalls; B pops X, pops Y, pushes X back.
        // An unversioned CAS would now succeed and install Y, which B owns, as the head.
        var links = NewLinks(4);
        var stack = new TaggedIndexStack[1];
        const uint Y = 1, X = 2;
        stack[0].Push(Y, links);
        stack[0].Push(X, links);

        var stalled = stack[0].BeginPop(links);            // thread A
        var b = new Thread(() =>
        {
            Assert.True(stack[0].TryPop(out uint first, links)); Assert.Equal(X, first);
            Assert.True(stack[0].TryPop(out uint second, links)); Assert.Equal(Y, second);
            stack[0].Push(X, links);                          // Y stays with B
        });
        b.Start();
        b.Join();

        Assert.False(stack[0].TryCompletePop(stalled, out _)); // the version moved: A must retry
        Assert.True(stack[0].TryPop(out uint top, links));
        Assert.Equal(X, top);
        Assert.False(stack[0].TryPop(out _, links));         // Y was never put back
    }

    [Fact]
    public void ConcurrentPushAndPopNeverHandOutAnIndexTwice()
    {
        const int Indices = 64, Threads = 6, Operations = 200_000;
        var links = NewLinks(Indices);
        var stack = new TaggedIndexStack[1];
        for (uint i = 0; i < Indices; i++) stack[0].Push(i, links);
        var owned = new int[Indices];
        long violations = 0, pops = 0;
        using var start = new Barrier(Threads);
        var threads = Enumerable.Range(0, Threads).Select(t => new Thread(() =>
        {
            var rng = new Random(1234 + t);
            var mine = new List<uint>();
            start.SignalAndWait();
            for (int op = 0; op < Operations; op++)
            {
                if (mine.Count > 0 && (rng.Next(2) == 0 || mine.Count > 4))
                {
                    int k = rng.Next(mine.Count);
                    uint i = mine[k];
                    mine.RemoveAt(k);
                    if (Interlocked.Exchange(ref owned[i], 0) != 1) Interlocked.Increment(ref violations);
                    stack[0].Push(i, links);
                }
                else if (stack[0].TryPop(out uint i, links))
                {
                    Interlocked.Increment(ref pops);
                    if (Interlocked.Exchange(ref owned[i], 1) != 0) Interlocked.Increment(ref violations);
                    mine.Add(i);
                }
            }
            foreach (uint i in mine)
            {
                if (Interlocked.Exchange(ref owned[i], 0) != 1) Interlocked.Increment(ref violations);
                stack[0].Push(i, links);
            }
        })).ToArray();
        foreach (var t in threads) t.Start();
        foreach (var t in threads) t.Join();

        Assert.Equal(0, violations);
        Assert.True(pops > Operations, "the threads really contended");
        var remaining = new List<uint>();
        while (stack[0].TryPop(out uint i, links)) remaining.Add(i);
        Assert.Equal(Enumerable.Range(0, Indices).Select(i => (uint)i), remaining.OrderBy(i => i));
    }
}
