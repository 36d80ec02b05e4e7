using SlabAlloc.Core;

namespace SlabAlloc.Tests.Core;

[Collection("SlabAlloc global state")]
public unsafe class SuperslabDirectoryTests
{
    [Fact]
    public void ConcurrentGrowthHandsOutDistinctStableEntriesAndReusesFreedOnes()
    {
        const int Threads = 4, PerThread = 100; // crosses several 64-entry segments
        var got = new uint[Threads][];
        using var start = new Barrier(Threads);
        var threads = Enumerable.Range(0, Threads).Select(t => new Thread(() =>
        {
            got[t] = new uint[PerThread];
            start.SignalAndWait();
            for (int i = 0; i < PerThread; i++)
            {
                Assert.True(SuperslabDirectory.TryAllocateIndex(out got[t][i]));
                SuperslabEntry* e = SuperslabDirectory.Entry(got[t][i]);
                Assert.Equal(0, e->Live);      // fresh or retired entries are never live
                Assert.Equal(0, e->FreeMask);  // and offer nothing to claim
            }
        })).ToArray();
        foreach (var t in threads) t.Start();
        foreach (var t in threads) t.Join();

        uint[] all = got.SelectMany(g => g).ToArray();
        Assert.Equal(all.Length, all.Distinct().Count());
        Assert.True(SuperslabDirectory.Count >= all.Length);
        var addresses = all.Select(i => (nint)SuperslabDirectory.Entry(i)).ToArray();
        Assert.Equal(all.Length, addresses.Distinct().Count());

        foreach (uint i in all) SuperslabDirectory.FreeIndex(i);
        int countBefore = SuperslabDirectory.Count;
        var again = new HashSet<uint>();
        for (int i = 0; i < all.Length; i++)
        {
            Assert.True(SuperslabDirectory.TryAllocateIndex(out uint index));
            again.Add(index);
        }
        Assert.Equal(countBefore, SuperslabDirectory.Count); // reuse, no growth
        Assert.True(again.SetEquals(all));
        Assert.Equal(addresses.OrderBy(a => a), all.Select(i => (nint)SuperslabDirectory.Entry(i)).OrderBy(a => a)); // entries never move
        foreach (uint i in again) SuperslabDirectory.FreeIndex(i);
    }
}
