using System.Runtime.InteropServices;
using SlabAlloc.Frontend;
using SlabAlloc.Memory;
using SlabAlloc.Platform;
using SlabAlloc.Runtime;
using SlabAlloc.Testing;

namespace SlabAlloc.Tests.Memory;

/// <summary>
/// The side-by-side read of remote-free lists before a dead thread's slabs are collected: it writes nothing,
/// ends on a cycle, on a list longer than its slab and on a link that leaves the superslab (without following
/// it), and a dead thread's cache with more lists than are read at once comes back with every count exact.
/// </summary>
/// <remarks>In the non-parallel "SlabAlloc global state" collection: one test trims and reads process-wide statistics.</remarks>
[Collection("SlabAlloc global state")]
public sealed unsafe class RemoteListWalkTests
{
    private const nuint RegionBytes = 1 << Geometry.SuperslabShift;
    private const int BlockBytes = 64;

    /// <summary>Fabricated slabs in a superslab-aligned region of its own: metadata, then chains of blocks.</summary>
    private sealed class Region : IDisposable
    {
        public readonly byte* Base = (byte*)NativeMemory.AlignedAlloc(RegionBytes, RegionBytes);
        private int _nextBlock = 1024; // the first 64 KiB hold the fabricated metadata

        public SlabMeta* Slab(int index, int capacity)
        {
            var s = (SlabMeta*)(Base + index * sizeof(SlabMeta));
            *s = default;
            s->Capacity = capacity;
            s->Key = (nuint)0x5A5A_1234_9876_0000 + (nuint)index;
            return s;
        }

        public void* Block() => Base + (nuint)(_nextBlock++ * BlockBytes);

        /// <summary>A remote-free list of <paramref name="length"/> fresh blocks on <paramref name="s"/>.</summary>
        public List<nint> Chain(SlabMeta* s, int length)
        {
            var blocks = new List<nint>();
            for (int i = 0; i < length; i++) blocks.Add((nint)Block());
            for (int i = 0; i < length; i++) SlabMeta.SetNext(s, (void*)blocks[i], i + 1 < length ? (void*)blocks[i + 1] : null);
            s->ThreadFree = length == 0 ? SlabMeta.StateOwned : blocks[0] | SlabMeta.StateOwned;
            return blocks;
        }

        public void Dispose() => NativeMemory.AlignedFree(Base);
    }

    private static ulong[] Snapshot(SlabMeta** slabs, int count, List<nint>[] chains)
    {
        var words = new List<ulong>();
        for (int i = 0; i < count; i++)
        {
            words.Add((ulong)slabs[i]->ThreadFree);
            foreach (nint b in chains[i]) words.Add(*(ulong*)b);
        }
        return words.ToArray();
    }

    [Theory]
    [InlineData(RemoteListWalk.Width, 42)]
    [InlineData(3, 7)]
    public void ListsOfManyLengths_AreReadToTheirEnds_AndNothingChanges(int count, int seed)
    {
        using var region = new Region();
        var random = new Random(seed);
        SlabMeta** slabs = stackalloc SlabMeta*[RemoteListWalk.Width];
        var chains = new List<nint>[count];
        for (int i = 0; i < count; i++)
        {
            slabs[i] = region.Slab(i, 500);
            chains[i] = region.Chain(slabs[i], i == 0 ? 0 : random.Next(1, 500)); // one list empty
        }
        ulong[] before = Snapshot(slabs, count, chains);
        RemoteListWalk.Touch(slabs, count);
        Assert.Equal(before, Snapshot(slabs, count, chains));
    }

    [Fact]
    public void ACycle_AListLongerThanItsSlab_AndALinkOutOfTheSuperslab_EndTheWalk_AndNothingChanges()
    {
        using var region = new Region();
        SlabMeta** slabs = stackalloc SlabMeta*[RemoteListWalk.Width];
        var chains = new List<nint>[4];

        slabs[0] = region.Slab(0, 100); // a cycle: the last block links back to the first (a double free)
        chains[0] = region.Chain(slabs[0], 10);
        SlabMeta.SetNext(slabs[0], (void*)chains[0][9], (void*)chains[0][0]);

        slabs[1] = region.Slab(1, 5); // 50 links on a slab of 5 blocks
        chains[1] = region.Chain(slabs[1], 50);

        slabs[2] = region.Slab(2, 100); // the 4th link overwritten with an address outside the region
        chains[2] = region.Chain(slabs[2], 8);
        SlabMeta.SetNext(slabs[2], (void*)chains[2][3], region.Base + RegionBytes + 4096);

        slabs[3] = region.Slab(3, 100); // a sound list beside them
        chains[3] = region.Chain(slabs[3], 30);

        ulong[] before = Snapshot(slabs, 4, chains);
        RemoteListWalk.Touch(slabs, 4); // returns; a link followed out of the region could fault
        Assert.Equal(before, Snapshot(slabs, 4, chains));
    }

    [Fact]
    public void TheCheckedLink_IsRejectedOutOfTheSuperslabOrMisaligned_AndAcceptedOtherwise()
    {
        using var region = new Region();
        SlabMeta* s = region.Slab(0, 100);
        var block = region.Block();
        void Link(void* target) => SlabMeta.SetNext(s, block, target);
        void* next;
        Link(region.Base + RegionBytes - 4); // inside the superslab, but an 8-byte read there would leave it
        Assert.False(SlabMeta.TryNextOf(s, block, out next));
        Link(region.Base + RegionBytes + 64);
        Assert.False(SlabMeta.TryNextOf(s, block, out next));
        Link(region.Base + RegionBytes - 64);
        Assert.True(SlabMeta.TryNextOf(s, block, out next));
        Assert.True(next == region.Base + RegionBytes - 64);
        Link(null);
        Assert.True(SlabMeta.TryNextOf(s, block, out next));
        Assert.True(next == null);
    }

    /// <summary>A thread allocates stamped blocks over more slabs than are read side by side and waits; this thread
    /// frees all but one block of each slab, so every slab carries a long remote-free list, and then the owner ends.
    /// When its cache is handed back every slab is let go with its one live block, whose stamp survives; once those
    /// are freed too, the blocks in use are what they were.</summary>
    [Fact]
    public void ADeadThreadsManyLongLists_AreCollectedExactly()
    {
        const nuint Size = 200;
        const int Count = 8000; // 224-byte blocks: about 290 to a 64 KiB slab, so 27 or more slabs
        SlabStatistics before = Quiescence.SettledStatistics();
        var blocks = new nint[Count];
        nint cache = 0;
        using var allocated = new ManualResetEventSlim();
        using var end = new ManualResetEventSlim();
        var t = new Thread(() =>
        {
            for (int i = 0; i < Count; i++)
            {
                void* p = SlabMemory.Alloc(Size);
                BlockStamp.Write(p, Size, BlockStamp.BaseAlignmentLog, 1000 + i);
                blocks[i] = (nint)p;
            }
            cache = (nint)TestHooks.CacheOfCallingThread();
            allocated.Set();
            end.Wait();
        });
        t.Start();
        allocated.Wait();
        var h = (ThreadCache*)cache;
        var keep = new Dictionary<nint, int>();
        for (int i = 0; i < Count; i++) keep.TryAdd((nint)SuperslabHeader.SlabOf((void*)blocks[i]), i);
        Assert.True(keep.Count > RemoteListWalk.Width, $"the blocks fill only {keep.Count} slabs: one group of lists");
        var kept = new HashSet<int>(keep.Values);
        for (int i = 0; i < Count; i++)
            if (!kept.Contains(i)) SlabMemory.Free((void*)blocks[i]);
        SmallBlocks.FlushCurrentThreadRemoteBatch();
        end.Set();
        t.Join();
        Assert.True(SpinWait.SpinUntil(() => !ThreadStacks.IsArmed(&h->Latch), TimeSpan.FromMinutes(1)),
            "the ended thread's exit latch was never disarmed");
        SlabMemory.Trim(); // hands the dead cache back, every slab with its long list (unless the upkeep got there first)
        Assert.All(keep.Keys, s => Assert.True(((SlabMeta*)s)->Owner != h, "a slab stayed with its dead owner"));

        foreach (int i in kept)
        {
            Assert.Equal(1000 + i, BlockStamp.Verify((void*)blocks[i]).Id);
            SlabMemory.Free((void*)blocks[i]);
        }
        SlabStatistics after = Quiescence.SettledStatistics();
        Assert.Equal(before.BlocksInUse, after.BlocksInUse);
        Assert.Equal(before.BytesInUse, after.BytesInUse);
    }
}
