using SlabAlloc.Memory;

namespace SlabAlloc.Tests.Memory;

public unsafe class MetadataTableTests
{
    /// <summary>An entry type of the tests' own, so that its table (a separate set of statics) is not the
    /// allocator's directory or large-block records. 16 bytes, so that a segment holds a page of them.</summary>
    [System.Runtime.InteropServices.StructLayout(System.Runtime.InteropServices.LayoutKind.Sequential, Size = 16)]
    private struct TestEntry
    {
        public long Value;
    }

    [Fact]
    public void ConcurrentGrowthHandsOutDistinctStableEntriesAndReusesFreedOnes()
    {
        int threads = 4, perThread = MetadataTable<TestEntry>.EntriesPerSegment * 2 + 7; // crosses several segments
        var got = new uint[threads][];
        using var start = new Barrier(threads);
        var workers = Enumerable.Range(0, threads).Select(t => new Thread(() =>
        {
            got[t] = new uint[perThread];
            start.SignalAndWait();
            for (int i = 0; i < perThread; i++)
            {
                Assert.True(MetadataTable<TestEntry>.TryAllocateIndex(out got[t][i]));
                TestEntry* e = MetadataTable<TestEntry>.Entry(got[t][i]);
                Assert.Equal(0, e->Value); // a fresh entry is zeroed
                e->Value = got[t][i] + 1;   // stamped: a later check finds it unmoved and unshared
            }
        })).ToArray();
        foreach (var t in workers) t.Start();
        foreach (var t in workers) t.Join();

        uint[] all = got.SelectMany(g => g).ToArray();
        Assert.Equal(all.Length, all.Distinct().Count());
        Assert.Equal(all.Length, MetadataTable<TestEntry>.Count);
        var addresses = all.Select(i => (nint)MetadataTable<TestEntry>.Entry(i)).ToArray();
        Assert.Equal(all.Length, addresses.Distinct().Count());
        Assert.All(all, i => Assert.Equal(i + 1, MetadataTable<TestEntry>.Entry(i)->Value));

        foreach (uint i in all) MetadataTable<TestEntry>.FreeIndex(i);
        var again = new HashSet<uint>();
        for (int i = 0; i < all.Length; i++)
        {
            Assert.True(MetadataTable<TestEntry>.TryAllocateIndex(out uint index));
            again.Add(index);
        }
        Assert.Equal(all.Length, MetadataTable<TestEntry>.Count); // reuse, no growth
        Assert.True(again.SetEquals(all));
        Assert.Equal(addresses.OrderBy(a => a), all.Select(i => (nint)MetadataTable<TestEntry>.Entry(i)).OrderBy(a => a)); // entries never move
        Assert.All(all, i => Assert.Equal(i + 1, MetadataTable<TestEntry>.Entry(i)->Value)); // a reused entry keeps what it held
        foreach (uint i in again) MetadataTable<TestEntry>.FreeIndex(i);
    }

    [Fact]
    public void LinkCellsAreSeparateFromEntriesAndStayZeroUntilUsed()
    {
        Assert.True(MetadataTable<TestEntry>.TryAllocateIndex(out uint index));
        int* link = MetadataTable<TestEntry>.LinkOf(index);
        var entry = (byte*)MetadataTable<TestEntry>.Entry(index);
        Assert.True((byte*)link >= entry + sizeof(TestEntry) || (byte*)link + sizeof(int) <= entry, "a link cell overlaps its entry");
        MetadataTable<TestEntry>.FreeIndex(index);
    }
}
