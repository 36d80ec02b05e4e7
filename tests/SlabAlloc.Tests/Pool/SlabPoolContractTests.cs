using System.Collections.Concurrent;
using SlabAlloc.Memory;
using SlabAlloc.Pool;
using SlabAlloc.Runtime;
using SlabAlloc.Support;

namespace SlabAlloc.Tests.Pool;

/// <summary>
/// The contract of <see cref="SlabPool"/>, run against the pool this process was started with:
/// <c>./build.sh test</c> runs the whole suite once with the lock-free pool and once with
/// <c>SLABALLOC_POOL=mutex</c>, so both implementations pass the same tests in one test run.
/// </summary>
[Collection("SlabAlloc global state")]
public sealed unsafe class SlabPoolContractTests
{
    private static readonly void* OwnerA = (void*)0x1000, OwnerB = (void*)0x2000;
    private static readonly int[] MixedClasses = [0, 10, 19, 40]; // 16 B, 224 B, 1 KiB, 40 KiB

    [Fact]
    public void ThePoolIsTheOneTheEnvironmentChose()
    {
        bool mutex = Environment.GetEnvironmentVariable("SLABALLOC_POOL") == "mutex";
        Assert.Equal(mutex, SlabPool.Shared.IsMutex);
        Assert.Equal(mutex ? SlabPoolKind.Mutex : SlabPoolKind.LockFree, SlabMemory.GetLockStatistics().Pool);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(16)]
    [InlineData(40)]
    public void AcquireReturnsAnOwnedSlabOfTheClassWithAFreeBlock(int sizeClass)
    {
        SlabMeta* s = SlabPool.Shared.Acquire(sizeClass, OwnerA);
        Assert.True(s != null);
        Assert.True(s->Owner == OwnerA);
        Assert.Equal(SlabLifecycle.Owned, s->Lifecycle);
        Assert.Equal(sizeClass, s->ClassIndex);
        Assert.Equal((uint)SizeClasses.BlockBytes(sizeClass), s->BlockBytes);
        Assert.True(s->Free != null || SlabMeta.HasFresh(s));
        Assert.Equal(0, s->Used);
        GiveBack(s);
    }

    [Fact]
    public void AnEmptySlabLetGoIsTheNextAcquisitionOfItsClass()
    {
        const int SizeClass = 7;
        Quiescence.Quiesce(); // no dead thread's cache handed back (by its finalizer) into the class's lists meanwhile
        SlabMeta* first = SlabPool.Shared.Acquire(SizeClass, OwnerA);
        GiveBack(first);
        Assert.Equal(SlabLifecycle.Empty, first->Lifecycle);
        long stage1 = SlabPool.Shared.Counters.Stage1, stage2 = SlabPool.Shared.Counters.Stage2, stage3 = SlabPool.Shared.Counters.Stage3;
        SlabMeta* second = AcquireUntil(SizeClass, OwnerB, first);
        Assert.True(second->Owner == OwnerB);
        Assert.True(SlabPool.Shared.Counters.Stage1 > stage1, "stage 1 reuses the slab on the class's empty list");
        Assert.Equal(stage2, SlabPool.Shared.Counters.Stage2);
        Assert.Equal(stage3, SlabPool.Shared.Counters.Stage3);
        GiveBack(second);
    }

    [Fact]
    public void APartialSlabIsAdoptedWithItsRemoteFrees()
    {
        const int SizeClass = 3;
        SlabMeta* s = SlabPool.Shared.Acquire(SizeClass, OwnerA);
        // The pool may hand over a partial slab that still has blocks of some earlier thread out.
        int outBefore = s->Used;
        // Owner A hands out every block, then lets the slab go: it becomes full and unlisted.
        var blocks = new List<nint>();
        while (s->Free != null || TakeLocalFrees(s) || SlabMeta.HasFresh(s)) blocks.Add((nint)TakeBlock(s));
        Assert.Equal(SizeClasses.Capacity(SizeClass) - outBefore, blocks.Count);
        Assert.Equal(SlabMeta.LetGoResult.Detached, SlabMeta.LetGo(s));
        // The first remote free publishes it to the partial list; the rest are plain remote frees.
        Assert.Equal(SlabMeta.PushOutcome.FirstOfDetached, SlabMeta.PushRemote(s, (void*)blocks[0]));
        SlabPool.Shared.PublishPartial(s);
        for (int i = 1; i < blocks.Count; i++) Assert.Equal(SlabMeta.PushOutcome.Added, SlabMeta.PushRemote(s, (void*)blocks[i]));

        SlabMeta* adopted = AcquireUntil(SizeClass, OwnerB, s);
        Assert.Equal(outBefore, adopted->Used); // every remote free collected on adoption
        HandBack(adopted);
    }

    /// <summary>Acquires slabs of the class until <paramref name="expected"/> comes back, handing the
    /// others back: a dead thread's cache being reclaimed (by a finalizer) may publish other slabs of
    /// the class to the pool's lists while the test runs.</summary>
    private static SlabMeta* AcquireUntil(int sizeClass, void* owner, SlabMeta* expected)
    {
        var others = new List<nint>();
        SlabMeta* s;
        while ((s = SlabPool.Shared.Acquire(sizeClass, owner)) != expected)
        {
            others.Add((nint)s);
            Assert.True(others.Count < 64, "the slab put in the list never came back from it");
        }
        foreach (nint other in others) HandBack((SlabMeta*)other);
        return s;
    }

    /// <summary>Moves the slab's local free list (blocks an earlier owner freed) to its allocation list.</summary>
    private static bool TakeLocalFrees(SlabMeta* s)
    {
        if (s->SetAside == null) return false;
        s->Free = s->SetAside;
        s->SetAside = null;
        return true;
    }

    /// <summary>Lets a slab that may have blocks out go, the way a thread cache does.</summary>
    private static void HandBack(SlabMeta* s)
    {
        switch (SlabMeta.LetGo(s))
        {
            case SlabMeta.LetGoResult.Empty: SlabPool.Shared.ReleaseEmpty(s); break;
            case SlabMeta.LetGoResult.Queued: SlabPool.Shared.PublishPartial(s); break;
            case SlabMeta.LetGoResult.Detached: break; // in no list until a remote free publishes it
        }
    }

    /// <summary>Hands out a block of a slab held here, the way a thread cache does: a freed one first, else
    /// one never handed out.</summary>
    private static void* TakeBlock(SlabMeta* s)
    {
        void* block = s->Free;
        if (block != null) s->Free = SlabMeta.NextOf(s, block);
        else block = SlabMeta.TakeFresh(s);
        s->Used++;
        return block;
    }

    /// <summary>Frees a block taken with <see cref="TakeBlock"/> back onto the slab's free list, as its owner.</summary>
    private static void ReturnBlock(SlabMeta* s, void* block)
    {
        SlabMeta.SetNext(s, block, s->Free);
        s->Free = block;
        s->Used--;
    }

    [Fact]
    public void ConcurrentAcquireAndReleaseNeverShareASlab()
    {
        // One-slot classes (which also trade slabs through the shared reserve of empty ones) and a medium one.
        const int Threads = 6, Iterations = 4000;
        var holders = new ConcurrentDictionary<nint, int>();
        long violations = 0;
        using var start = new Barrier(Threads);
        var threads = Enumerable.Range(0, Threads).Select(t => new Thread(() =>
        {
            var rng = new Random(77 + t);
            var mine = new List<nint>();
            void* owner = (void*)(0x10_000 + t * 0x100);
            start.SignalAndWait();
            for (int i = 0; i < Iterations; i++)
            {
                if (mine.Count < 3 && rng.Next(3) != 0)
                {
                    SlabMeta* s = SlabPool.Shared.Acquire(MixedClasses[rng.Next(MixedClasses.Length)], owner);
                    if (!holders.TryAdd((nint)s, t)) Interlocked.Increment(ref violations);
                    mine.Add((nint)s);
                }
                else if (mine.Count > 0)
                {
                    nint s = mine[^1];
                    mine.RemoveAt(mine.Count - 1);
                    if (!holders.TryRemove(s, out int holder) || holder != t) Interlocked.Increment(ref violations);
                    GiveBack((SlabMeta*)s);
                }
            }
            foreach (nint s in mine)
            {
                holders.TryRemove(s, out _);
                GiveBack((SlabMeta*)s);
            }
        })).ToArray();
        foreach (var t in threads) t.Start();
        foreach (var t in threads) t.Join();
        Assert.Equal(0, violations);
        Assert.Empty(holders);
    }

    [Theory]
    [InlineData(3)]      // 64-byte blocks: one-slot slabs, two kept
    [InlineData(40)]     // 40 KiB blocks: eight-slot slabs (512 KiB each), one kept
    public void ThePoolKeepsFewEmptySlabsOfAClassAndFewerOfTheLargeOnes(int sizeClass)
    {
        Quiescence.Quiesce();
        int limit = SizeClasses.SpanSlots(sizeClass) > 1 ? 1 : 2;
        Assert.Equal(2, SlabOptions.EmptySlabsPerClass);
        var slabs = new List<nint>();
        for (int i = 0; i < 4; i++) slabs.Add((nint)SlabPool.Shared.Acquire(sizeClass, OwnerA));
        foreach (nint s in slabs) GiveBack((SlabMeta*)s);
        Assert.Equal(limit, SlabPool.Shared.EmptySlabs(sizeClass));
        // The one-slot slabs beyond the limit wait, resident, in the shared reserve; the large ones are released.
        Assert.Equal(64, SlabOptions.SharedEmptySlabs);
        Assert.Equal(SizeClasses.SpanSlots(sizeClass) > 1 ? 0 : slabs.Count - limit, SlabPool.Shared.SharedEmptySlabs);
    }

    [Fact]
    public void AnEmptySlabBeyondItsClassLimitIsReformattedForAnotherClass()
    {
        const int From = 3, To = 12; // 64 B and 320 B blocks, both one-slot slabs
        Quiescence.Quiesce(); // Trim releases the shared reserve too
        Assert.Equal(0, SlabPool.Shared.SharedEmptySlabs);
        var slabs = new List<nint>();
        for (int i = 0; i <= SlabOptions.EmptySlabsPerClass; i++) slabs.Add((nint)SlabPool.Shared.Acquire(From, OwnerA));
        foreach (nint s in slabs)
        {
            ReturnBlock((SlabMeta*)s, TakeBlock((SlabMeta*)s)); // a block handed out once, for the double free below
            GiveBack((SlabMeta*)s);
        }
        var spare = (SlabMeta*)slabs[^1]; // given back when its class already kept its limit
        Assert.Equal(1, SlabPool.Shared.SharedEmptySlabs);
        Assert.Equal(SlabLifecycle.Reserved, spare->Lifecycle);
        Assert.True(SlabMemory.GetStatistics().SlabsReserved >= 1);
        uint index = spare->GlobalIndex;

        // A block of a reserved slab freed (again) is a double free, and changes nothing.
        var stale = (nint)spare->Start;
        var error = Assert.Throws<ArgumentException>(() => SlabMemory.Free((void*)stale));
        Assert.Contains("double free", error.Message, StringComparison.OrdinalIgnoreCase);
        Assert.Equal(SlabLifecycle.Reserved, spare->Lifecycle);
        Assert.Equal(SlabMeta.StateQueued, Volatile.Read(ref spare->ThreadFree));
        Assert.Equal(1, SlabPool.Shared.SharedEmptySlabs);
        long stage2 = SlabPool.Shared.Counters.Stage2, stage3 = SlabPool.Shared.Counters.Stage3;

        SlabMeta* taken = AcquireUntil(To, OwnerB, spare);
        Assert.Equal(0, SlabPool.Shared.SharedEmptySlabs);
        Assert.Equal(stage2, SlabPool.Shared.Counters.Stage2);
        Assert.Equal(stage3, SlabPool.Shared.Counters.Stage3);
        Assert.True(taken->Owner == OwnerB);
        Assert.Equal(SlabLifecycle.Owned, taken->Lifecycle);
        Assert.Equal(index, taken->GlobalIndex);
        Assert.Equal(To, taken->ClassIndex);
        Assert.Equal((uint)SizeClasses.BlockBytes(To), taken->BlockBytes);
        Assert.Equal(SizeClasses.Capacity(To), taken->Capacity);
        Assert.Equal(0, taken->Used);
        Assert.Equal(0, taken->Carved);
        // Its blocks are handed out at the new size, and a pointer into them finds this slab.
        var first = (byte*)TakeBlock(taken);
        void* second = TakeBlock(taken);
        Assert.Equal(SizeClasses.BlockBytes(To), Math.Abs((int)((byte*)second - first)));
        Assert.True(SuperslabHeader.SlabOf(second) == taken);
        Assert.Equal(1, SlabMeta.BlockIndexOf(taken, taken->Start + SizeClasses.BlockBytes(To)));
        Assert.Equal(-1, SlabMeta.BlockIndexOf(taken, taken->Start + SizeClasses.BlockBytes(From)));
        Assert.Equal(-1, SlabMeta.BlockIndexOf(taken, taken->Start + 2 * SizeClasses.BlockBytes(To))); // never handed out
        ReturnBlock(taken, second);
        ReturnBlock(taken, first);

        // Empty again, it is kept (on its new class's list or in the reserve) until Trim decommits it.
        GiveBack(taken);
        Assert.Equal(SlabLifecycle.Empty, taken->Lifecycle);
        SlabMemory.Trim();
        Assert.Equal(0, SlabPool.Shared.SharedEmptySlabs);
        Assert.Equal(SlabLifecycle.Unused, taken->Lifecycle);
    }

    [Fact]
    public void ADecayReleasesTheEmptySlabsNoAcquisitionNeededSinceTheLastOne()
    {
        const int From = 3, To = 12; // 64 B and 320 B blocks, both one-slot slabs
        WithDecay(0, () => // decays only when the test asks
        {
            Quiescence.Quiesce(); // Trim: the lists empty, their low-water marks 0
            var slabs = new List<nint>();
            for (int i = 0; i < SlabOptions.EmptySlabsPerClass + 3; i++) slabs.Add((nint)SlabPool.Shared.Acquire(From, OwnerA));
            foreach (nint s in slabs) GiveBack((SlabMeta*)s);
            Assert.Equal(SlabOptions.EmptySlabsPerClass, SlabPool.Shared.EmptySlabs(From));
            Assert.Equal(3, SlabPool.Shared.SharedEmptySlabs);
            // All of them arrived during this interval: none was idle for a whole one.
            Assert.Equal(0, SlabPool.Shared.Decay());
            Assert.Equal(SlabOptions.EmptySlabsPerClass, SlabPool.Shared.EmptySlabs(From));
            Assert.Equal(3, SlabPool.Shared.SharedEmptySlabs);

            // One reserved slab is needed (the reserve is a stack: the last one given back comes first); the
            // other two, and the class's own empty slabs, are not.
            var needed = (SlabMeta*)slabs[^1];
            SlabMeta* taken = AcquireUntil(To, OwnerB, needed);
            // At least these (a dead thread's finalizer may have put a slab of another class on its list since).
            Assert.InRange(SlabPool.Shared.Decay(), 2 + SlabOptions.EmptySlabsPerClass, int.MaxValue);
            Assert.Equal(0, SlabPool.Shared.SharedEmptySlabs);
            Assert.Equal(0, SlabPool.Shared.EmptySlabs(From));
            foreach (nint s in slabs.SkipLast(1)) Assert.Equal(SlabLifecycle.Unused, ((SlabMeta*)s)->Lifecycle);
            Assert.Equal(SlabLifecycle.Owned, taken->Lifecycle);
            GiveBack(taken);
        });
        SlabMemory.Trim();
    }

    [Fact]
    public void ReleasesDecayTheReserveByThemselvesOnceTheIntervalHasPassed()
    {
        const int From = 3;
        WithDecay(1, () =>
        {
            Quiescence.Quiesce();
            var slabs = new List<nint>();
            for (int i = 0; i < SlabOptions.EmptySlabsPerClass + 4; i++) slabs.Add((nint)SlabPool.Shared.Acquire(From, OwnerA));
            foreach (nint s in slabs) GiveBack((SlabMeta*)s);
            // Then releases that leave the reserve alone (a slab of the class's own empty list, taken and
            // given back), 10 ms apart: each finds the interval passed and decays; no acquisition needs
            // the reserve meanwhile, so by the second decay after the fill it is empty.
            for (int i = 0; i < 4; i++)
            {
                Thread.Sleep(10);
                GiveBack(SlabPool.Shared.Acquire(From, OwnerA));
            }
            Assert.Equal(0, SlabPool.Shared.SharedEmptySlabs); // without decay: 4
            foreach (nint s in slabs.Skip(SlabOptions.EmptySlabsPerClass))
                Assert.Equal(SlabLifecycle.Unused, ((SlabMeta*)s)->Lifecycle);
        });
        SlabMemory.Trim();
    }

    [Fact]
    public void AnAutomaticDecayReleasesAtMostItsBudgetAndTheNextOneTheRest()
    {
        const int From = 3, Reserved = 40; // more than one decay's budget of 32
        // The fill runs with a long interval: with 1 ms, a fill that a preemption stretches past two
        // intervals would decay some of the slabs itself.
        WithDecay(60_000, () =>
        {
            Quiescence.Quiesce();
            var slabs = new List<nint>();
            for (int i = 0; i < SlabOptions.EmptySlabsPerClass + Reserved; i++) slabs.Add((nint)SlabPool.Shared.Acquire(From, OwnerA));
            foreach (nint s in slabs) GiveBack((SlabMeta*)s);
            Assert.Equal(Reserved, SlabPool.Shared.SharedEmptySlabs);
            SlabPool.Shared.Decay(); // marks all 40 idle from here on, and starts the interval
            TestHooks.DecayMs = 1;
            Thread.Sleep(10);
            GiveBack(SlabPool.Shared.Acquire(From, OwnerA)); // one release: one automatic decay
            Assert.Equal(Reserved - 32, SlabPool.Shared.SharedEmptySlabs);
            Thread.Sleep(10);
            GiveBack(SlabPool.Shared.Acquire(From, OwnerA));
            Assert.Equal(0, SlabPool.Shared.SharedEmptySlabs);
        });
        SlabMemory.Trim();
    }

    private static void WithDecay(int milliseconds, Action test)
    {
        int before = TestHooks.DecayMs;
        TestHooks.DecayMs = milliseconds;
        try { test(); }
        finally { TestHooks.DecayMs = before; }
    }

    /// <summary>Lets a slab with no block out go, the way a thread cache does.</summary>
    private static void GiveBack(SlabMeta* s)
    {
        Assert.Equal(SlabMeta.LetGoResult.Empty, SlabMeta.LetGo(s));
        SlabPool.Shared.ReleaseEmpty(s);
    }
}
