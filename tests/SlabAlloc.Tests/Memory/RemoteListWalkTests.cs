using System.Runtime.Intrinsics.X86;
using SlabAlloc.Frontend;
using SlabAlloc.Memory;
using SlabAlloc.Platform;
using SlabAlloc.Runtime;
using SlabAlloc.Support;
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

    /// <summary>Fabricated slabs in a superslab-aligned region of its own: metadata, then chains of blocks. The next
    /// superslab's worth of addresses is reserved inaccessible, so that a read past the region faults.</summary>
    private sealed class Region : IDisposable
    {
        // Mapped directly, not through OsMemory: its count of mapped bytes is the allocator's, and the portable
        // setting has it allocate without mmap.
        private readonly byte* _reserved = (byte*)LibC.Mmap(null, 3 * RegionBytes, LibC.ProtNone,
            LibC.MapPrivate | LibC.MapAnonymous | LibC.MapNoReserve, -1, 0);
        public readonly byte* Base;
        private int _nextBlock = 1024; // the first 64 KiB hold the fabricated metadata

        public Region()
        {
            Assert.True(_reserved != LibC.MapFailed, "no address space for the fabricated region");
            Base = (byte*)(((nuint)_reserved + RegionBytes - 1) & ~(RegionBytes - 1));
            Assert.Equal(0, LibC.Mprotect(Base, RegionBytes, LibC.ProtRead | LibC.ProtWrite));
        }

        /// <summary>An address in the inaccessible superslab after the region: any read there faults.</summary>
        public byte* Beyond => Base + RegionBytes + 64;

        public SlabMeta* Slab(int index, int capacity)
        {
            var s = (SlabMeta*)(Base + index * sizeof(SlabMeta));
            *s = default;
            s->Capacity = capacity;
            s->Key = unchecked((nuint)0x5A5A_1234_9876_0000) + (nuint)index;
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

        public void Dispose() => LibC.Munmap(_reserved, 3 * RegionBytes);
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

    /// <summary>Links each chain (newest block first) and pushes it onto <paramref name="s"/> as a remote free does,
    /// the first chain first; returns the list's blocks in the order the walk from its head meets them.</summary>
    private static List<nint> PushChains(SlabMeta* s, List<List<nint>> chains)
    {
        s->ThreadFree = SlabMeta.StateOwned;
        foreach (List<nint> chain in chains)
        {
            for (int i = 0; i + 1 < chain.Count; i++) SlabMeta.SetNext(s, (void*)chain[i], (void*)chain[i + 1]);
            SlabMeta.PushRemote(s, (void*)chain[0], (void*)chain[^1]);
        }
        var order = new List<nint>();
        for (int c = chains.Count - 1; c >= 0; c--) order.AddRange(chains[c]);
        return order;
    }

    /// <summary>Chains of 1-40 blocks: runs of neighbouring blocks, newest first (the order a thread frees blocks
    /// another carved), and blocks from anywhere; more chains than are walked side by side.</summary>
    private static List<List<nint>> MixedChains(Region region, Random random, int chainCount)
    {
        var pool = new List<nint>();
        for (int i = 0; i < chainCount * 40; i++) pool.Add((nint)region.Block());
        var chains = new List<List<nint>>();
        int next = 0;
        var scattered = pool.Skip(chainCount * 20).OrderBy(_ => random.Next()).ToList();
        int scatteredNext = 0;
        for (int c = 0; c < chainCount; c++)
        {
            int length = random.Next(1, 21);
            var chain = new List<nint>();
            if (random.Next(2) == 0)
            {
                for (int i = 0; i < length; i++) chain.Add(pool[next++]);
                chain.Reverse();
            }
            else for (int i = 0; i < length; i++) chain.Add(scattered[scatteredNext++]);
            chains.Add(chain);
        }
        return chains;
    }

    private static List<nint> FreeListOf(SlabMeta* s)
    {
        var blocks = new List<nint>();
        for (void* p = s->Free; p != null && blocks.Count <= s->Capacity; p = SlabMeta.NextOf(s, p)) blocks.Add((nint)p);
        return blocks;
    }

    [Theory]
    [InlineData(1, 1)]
    [InlineData(RemoteListWalk.Width, 2)]
    [InlineData(RemoteListWalk.Width + 1, 3)]
    [InlineData(60, 4)]
    public void AListCountedByItsChains_HasTheLengthAndTheLastBlockOfTheWalkFromItsHead(int chainCount, int seed)
    {
        using var region = new Region();
        var random = new Random(seed);
        SlabMeta* s = region.Slab(0, 4000);
        s->BlockBytes = BlockBytes;
        List<nint> order = PushChains(s, MixedChains(region, random, chainCount));
        var head = (void*)(s->ThreadFree & ~SlabMeta.StateMask);

        if (Sse.IsSupported) // elsewhere the count leaves every list to the walk link by link
        {
            Assert.Equal(order.Count, RemoteListWalk.CountByChains(s, head, out void* tail));
            Assert.True(tail == (void*)order[^1], "the count ended on another block than the list's last");
        }

        // The collection takes the list onto Free, in front of what Free held, with Used counted down by its length.
        var held = (nint)region.Block();
        SlabMeta.SetNext(s, (void*)held, null);
        s->Free = (void*)held;
        s->Used = order.Count;
        Assert.Equal(order.Count, SlabMeta.CollectRemote(s, SlabMeta.StateOwned));
        Assert.Equal(order.Append(held), FreeListOf(s));
        Assert.Equal(0, s->Used);
        Assert.Equal(SlabMeta.StateOwned, s->ThreadFree);
    }

    public enum HintDamage { AnotherChainsBlock, ABlockOnNoList, OutOfTheSuperslab, Misaligned, Null }

    /// <summary>A hint overwritten after the push (a write after free): the chain count gives up without reading
    /// outside the superslab, and the collection walks link by link to the same exact result.</summary>
    [Theory]
    [InlineData(HintDamage.AnotherChainsBlock)]
    [InlineData(HintDamage.ABlockOnNoList)]
    [InlineData(HintDamage.OutOfTheSuperslab)]
    [InlineData(HintDamage.Misaligned)]
    [InlineData(HintDamage.Null)]
    public void AnOverwrittenHint_MakesTheChainCountGiveUp_AndTheCollectionIsExactAllTheSame(HintDamage damage)
    {
        using var region = new Region();
        var random = new Random(11);
        SlabMeta* s = region.Slab(0, 4000);
        s->BlockBytes = BlockBytes;
        List<List<nint>> chains = MixedChains(region, random, 30);
        List<nint> order = PushChains(s, chains);
        nint victim = chains[12][0];
        var stray = (nint)region.Block(); // a block on no list whose link reads null, as a live block's may
        SlabMeta.SetNext(s, (void*)stray, null);
        nuint hint = damage switch
        {
            HintDamage.AnotherChainsBlock => (nuint)chains[20][^1], // a chain the walk from chain 12 never reaches
            HintDamage.ABlockOnNoList => (nuint)stray,
            HintDamage.OutOfTheSuperslab => (nuint)region.Beyond, // a read there would fault
            HintDamage.Misaligned => (nuint)chains[12][^1] + 8,
            _ => 0,
        };
        ((nuint*)victim)[1] = hint ^ s->Key; // as the push encodes it when hardened
        if (!SlabOptions.Hardened) ((nuint*)victim)[1] = hint;
        var head = (void*)(s->ThreadFree & ~SlabMeta.StateMask);

        Assert.Equal(0, RemoteListWalk.CountByChains(s, head, out _));
        s->Used = order.Count;
        Assert.Equal(order.Count, SlabMeta.CollectRemote(s, SlabMeta.StateOwned));
        Assert.Equal(order, FreeListOf(s));
    }

    /// <summary>A double free makes a cycle: across two pushes (the oldest chain's last link leads back to the newest
    /// chain), or inside one chain (a link leads back into its own chain, whose last block is then never reached).
    /// The chain count gives up, and the collection reports the cycle instead of looping.</summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void ACycle_MakesTheChainCountGiveUp_AndTheCollectionReportsIt(bool insideOneChain)
    {
        using var region = new Region();
        SlabMeta* s = region.Slab(0, 4000);
        s->BlockBytes = BlockBytes;
        List<List<nint>> chains = MixedChains(region, new Random(5), 25);
        List<nint> inside = chains.First(c => c.Count >= 6);
        PushChains(s, chains);
        if (insideOneChain) SlabMeta.SetNext(s, (void*)inside[4], (void*)inside[1]);
        else SlabMeta.SetNext(s, (void*)chains[0][^1], (void*)chains[^1][0]);
        var head = (void*)(s->ThreadFree & ~SlabMeta.StateMask);

        Assert.Equal(0, RemoteListWalk.CountByChains(s, head, out _));
        var e = Assert.Throws<InvalidOperationException>(() => SlabMeta.CollectRemote(s, SlabMeta.StateOwned));
        Assert.Contains("longer than the slab", e.Message);
    }

    /// <summary>The bound is the slab's capacity, exactly as for the walk link by link: a list of exactly that many
    /// blocks is counted, one more is given up on (and reported by that walk).</summary>
    [Fact]
    public void AListOfTheSlabsCapacity_IsCounted_AndOneBlockMoreIsNot()
    {
        using var region = new Region();
        SlabMeta* s = region.Slab(0, 4000);
        s->BlockBytes = BlockBytes;
        List<nint> order = PushChains(s, MixedChains(region, new Random(8), 40));
        var head = (void*)(s->ThreadFree & ~SlabMeta.StateMask);
        s->Capacity = order.Count;
        Assert.Equal(Sse.IsSupported ? order.Count : 0, RemoteListWalk.CountByChains(s, head, out _));
        s->Capacity = order.Count - 1;
        Assert.Equal(0, RemoteListWalk.CountByChains(s, head, out _));
        var e = Assert.Throws<InvalidOperationException>(() => SlabMeta.CollectRemote(s, SlabMeta.StateOwned));
        Assert.Contains("longer than the slab", e.Message);
    }

    /// <summary>Threads push chains of their own blocks (every block once, stamped with its number) onto one slab while
    /// its holder collects in a loop: every block is collected exactly once, whole.</summary>
    [Fact]
    public void ChainsPushedWhileTheHolderCollects_AreEachCollectedOnce()
    {
        const int Pushers = 3, BlocksEach = 6000;
        using var region = new Region();
        SlabMeta* s = region.Slab(0, Pushers * BlocksEach);
        s->BlockBytes = BlockBytes;
        s->ThreadFree = SlabMeta.StateOwned;
        s->Used = Pushers * BlocksEach;
        var blocks = new nint[Pushers][];
        for (int p = 0; p < Pushers; p++)
        {
            blocks[p] = new nint[BlocksEach];
            for (int i = 0; i < BlocksEach; i++)
            {
                blocks[p][i] = (nint)region.Block();
                ((long*)blocks[p][i])[2] = p * BlocksEach + i; // a stamp past the two words the lists use
            }
        }
        var slab = (nint)s;
        using var go = new Barrier(Pushers + 1);
        var pushers = Enumerable.Range(0, Pushers).Select(p => new Thread(() =>
        {
            var random = new Random(100 + p);
            var sm = (SlabMeta*)slab;
            go.SignalAndWait();
            for (int i = 0; i < BlocksEach; )
            {
                int length = Math.Min(random.Next(1, 40), BlocksEach - i);
                for (int k = 0; k + 1 < length; k++) SlabMeta.SetNext(sm, (void*)blocks[p][i + k], (void*)blocks[p][i + k + 1]);
                SlabMeta.PushRemote(sm, (void*)blocks[p][i], (void*)blocks[p][i + length - 1]);
                i += length;
            }
        })).ToList();
        pushers.ForEach(t => t.Start());
        go.SignalAndWait();
        int collected = 0;
        while (pushers.Any(t => t.IsAlive) || collected < Pushers * BlocksEach)
        {
            collected += SlabMeta.CollectRemote(s, SlabMeta.StateOwned);
            Assert.True(collected <= Pushers * BlocksEach, "more blocks collected than were pushed");
        }
        pushers.ForEach(t => t.Join());

        Assert.Equal(0, s->Used);
        var seen = new bool[Pushers * BlocksEach];
        foreach (nint b in FreeListOf(s))
        {
            long stamp = ((long*)b)[2];
            Assert.False(seen[stamp], $"block {stamp} collected twice");
            seen[stamp] = true;
        }
        Assert.All(seen, Assert.True);
    }

    /// <summary>Another thread frees most of a thread's 64-byte blocks (pushed in batches, each chain's first block
    /// carrying its hint), then writes over the second word of every block it freed (a write after free): another
    /// block's address, a foreign one, a misaligned one, zero. The owner's next allocations take every freed block
    /// back, each once, with no report; the counts end exact.</summary>
    [Fact]
    public void RemoteFreesWhoseSecondWordIsWrittenAfterTheFree_AreAllTakenBackByTheirOwner()
    {
        const nuint Size = 64;
        const int Count = 600, Kept = 40, Capacity = 1024;
        SlabStatistics before = Quiescence.SettledStatistics();
        var blocks = new nint[Count];
        var freed = new HashSet<nint>();
        var taken = new List<nint>();
        using var allocated = new ManualResetEventSlim();
        using var go = new ManualResetEventSlim();
        Exception? failure = null;
        var owner = new Thread(() =>
        {
            for (int i = 0; i < Count; i++) blocks[i] = (nint)SlabMemory.Alloc(Size);
            allocated.Set();
            go.Wait();
            try
            {
                // The freed blocks come back first, unless the slab held older free blocks: at most a slab's worth more.
                var waiting = new HashSet<nint>(freed);
                for (int n = 0; waiting.Count > 0 && n < Count - Kept + Capacity; n++)
                {
                    var p = (nint)SlabMemory.Alloc(Size);
                    taken.Add(p);
                    waiting.Remove(p);
                }
            }
            catch (Exception e)
            {
                failure = e;
            }
        });
        owner.Start();
        allocated.Wait();
        for (int i = Kept; i < Count; i++)
        {
            SlabMemory.Free((void*)blocks[i]);
            freed.Add(blocks[i]);
        }
        SmallBlocks.FlushCurrentThreadRemoteBatch();
        for (int i = Kept; i < Count; i++)
        {
            ((nuint*)blocks[i])[1] = (i % 4) switch
            {
                0 => (nuint)blocks[Count - 1 - (i - Kept)],
                1 => unchecked((nuint)0x1234_5678_9ABC_DEF0),
                2 => (nuint)blocks[i] + 8,
                _ => 0,
            };
        }
        go.Set();
        owner.Join();

        Assert.Null(failure);
        Assert.Equal(taken.Count, taken.Distinct().Count());
        Assert.Subset(taken.ToHashSet(), freed);
        for (int i = 0; i < Kept; i++) Assert.DoesNotContain(blocks[i], taken);
        foreach (nint p in taken) SlabMemory.Free((void*)p);
        for (int i = 0; i < Kept; i++) SlabMemory.Free((void*)blocks[i]);
        SlabStatistics after = Quiescence.SettledStatistics();
        Assert.Equal(before.BlocksInUse, after.BlocksInUse);
        Assert.Equal(before.BytesInUse, after.BytesInUse);
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
        SlabMeta.SetNext(slabs[2], (void*)chains[2][3], region.Beyond);

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
