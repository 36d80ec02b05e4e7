using SlabAlloc.Memory;
using SlabAlloc.Support;

namespace SlabAlloc.Tests.Frontend;

/// <summary>
/// A thread's remote frees into one slab are held back in its batch of their class and pushed together: counted as
/// freed at once, held up to <c>SLABALLOC_REMOTE_BATCH</c> blocks, pushed when a free of the class goes to another
/// slab, at the thread's next miss, at any thread's <c>Trim</c>, and when its cache is reclaimed after it ended; frees
/// of other classes in between do not push it; the same block freed twice in a row into a batch is rejected and
/// changes nothing.
/// </summary>
/// <remarks>In the non-parallel "SlabAlloc global state" collection: it reads process-wide counts, as
/// differences, while no other thread frees.</remarks>
[Collection("SlabAlloc global state")]
public sealed unsafe class RemoteFreeBatchTests
{
    private static int Limit => SlabOptions.RemoteBatch;

    private static (long InUse, long Batched) Counts()
    {
        SlabStatistics s = SlabMemory.GetStatistics();
        return (s.BlocksInUse, s.BlocksInRemoteBatches);
    }

    /// <summary>Runs <paramref name="action"/> on a thread of its own and waits for it (the thread ends).</summary>
    private static void OnThread(Action action)
    {
        Exception? failure = null;
        var t = new Thread(() => { try { action(); } catch (Exception e) { failure = e; } });
        t.Start();
        t.Join();
        if (failure != null) throw new Xunit.Sdk.XunitException($"the thread failed: {failure}");
    }

    [Fact]
    public void RemoteFreesAreHeldUntilTheBatchIsFullAnotherSlabOfTheClassIsFreedIntoAMissOrTrim()
    {
        if (Limit == 0) return; // the batch is off: nothing is held
        // Blocks of another thread's slabs, 64 B; a 64 KiB slot all of whose blocks it allocated is a slab
        // that holds no one else's block.
        int capacity = SizeClasses.Capacity(SizeClasses.ClassOf(64));
        nint[] blocks = [];
        nint other = 0, other2 = 0;
        OnThread(() =>
        {
            blocks = Enumerable.Range(0, 4 * capacity).Select(_ => (nint)SlabMemory.Alloc(64)).ToArray();
            other = (nint)SlabMemory.Alloc(1000);
            other2 = (nint)SlabMemory.Alloc(1000);
        });
        nint[] oneSlab = blocks.GroupBy(p => p >> 16).First(g => g.Count() == capacity).ToArray();
        nint[] rest = blocks.Except(oneSlab).ToArray();
        int held = oneSlab.Length - 2;

        OnThread(() =>
        {
            (long inUse0, long batched0) = Counts();
            for (int i = 0; i < held; i++) SlabMemory.Free((void*)oneSlab[i]);
            (long inUse, long batched) = Counts();
            Assert.Equal(inUse0 - held, inUse); // counted as freed at once
            Assert.Equal(batched0 + (held - 1) % Limit + 1, batched); // full batches pushed, the rest held

            // Hardened: the same block again, straight after, is rejected with nothing counted.
            if (SlabOptions.Hardened)
            {
                var e = Assert.Throws<ArgumentException>(() => SlabMemory.Free((void*)oneSlab[held - 1]));
                Assert.Contains("already free", e.Message);
                Assert.Equal((inUse, batched), Counts());
            }

            // A free of another class starts that class's batch; the first one stays held.
            SlabMemory.Free((void*)other);
            Assert.Equal((inUse - 1, batched + 1), Counts());

            // A free into another slab of the class pushes the class's batch and starts a new one.
            SlabMemory.Free((void*)rest[0]);
            Assert.Equal((inUse - 2, batched0 + 2), Counts());

            // The thread's next miss pushes every batch (a class it never allocated: its first allocation misses).
            void* mine = SlabMemory.Alloc(3000);
            Assert.Equal((inUse - 1, batched0), Counts());
            SlabMemory.Free(mine);

            // Trim pushes every batch too.
            SlabMemory.Free((void*)oneSlab[held]);
            SlabMemory.Free((void*)other2);
            Assert.Equal(batched0 + 2, Counts().Batched);
            SlabMemory.Trim();
            Assert.Equal(batched0, Counts().Batched);

            // Held when the thread ends: pushed when its cache is reclaimed.
            foreach (nint p in rest.Skip(1)) SlabMemory.Free((void*)p);
            SlabMemory.Free((void*)oneSlab[held + 1]);
            Assert.Equal(batched0 + 1, Counts().Batched);
        });
        SlabMemory.Trim(); // reclaims the ended threads' caches, the freer's batch pushed first
        // Every block of the slab came back, the last one from the batch the freer held when it ended: the
        // slab has no block out, so asking about one of its blocks is asking about a freed block.
        Assert.Throws<ArgumentException>(() => SlabMemory.UsableSize((void*)oneSlab[0]));
    }

    /// <summary>Frees of three classes in turn, into slabs of another thread, each join their own class's batch: none
    /// pushes another's, so all of them are held while the freeing thread waits; another thread's <c>Trim</c> pushes
    /// every one of them, and every block comes back.</summary>
    [Fact]
    public void FreesOfSeveralClassesInTurnEachJoinTheirClasssBatch_AndAnotherThreadsTrimPushesThemAll()
    {
        if (Limit < 2) return;
        nuint[] sizes = [64, 256, 512];
        int perClass = Limit - 1;
        nint[][] blocks = new nint[sizes.Length][];
        OnThread(() =>
        {
            for (int k = 0; k < sizes.Length; k++)
            {
                // Twice a slab's worth, so that one slab had all its blocks handed out here.
                int capacity = SizeClasses.Capacity(SizeClasses.ClassOf(sizes[k]));
                nint[] all = Enumerable.Range(0, 2 * capacity).Select(_ => (nint)SlabMemory.Alloc(sizes[k])).ToArray();
                nint[] oneSlab = all.GroupBy(p => (nint)SuperslabHeader.SlabOf((void*)p)).First(g => g.Count() == capacity).ToArray();
                blocks[k] = oneSlab[..perClass];
                foreach (nint p in all.Except(blocks[k])) SlabMemory.Free((void*)p);
            }
        });
        (long inUse0, long batched0) = Counts();
        using var freed = new ManualResetEventSlim();
        using var release = new ManualResetEventSlim();
        Exception? failure = null;
        var freer = new Thread(() =>
        {
            try
            {
                for (int i = 0; i < perClass; i++)
                    for (int k = 0; k < sizes.Length; k++) SlabMemory.Free((void*)blocks[k][i]);
            }
            catch (Exception e) { failure = e; }
            freed.Set();
            release.Wait();
        });
        freer.Start();
        freed.Wait();
        try
        {
            Assert.Null(failure);
            Assert.Equal((inUse0 - sizes.Length * perClass, batched0 + sizes.Length * perClass), Counts());
            SlabMemory.Trim();
            Assert.Equal(batched0, Counts().Batched);
            // Every block of those slabs came back: asking about one of them is asking about a freed block.
            foreach (nint[] k in blocks) Assert.Throws<ArgumentException>(() => SlabMemory.UsableSize((void*)k[0]));
        }
        finally
        {
            release.Set();
            freer.Join();
        }
    }

    /// <summary>A live thread that freed into another thread's slab and then waits holds a batch; another
    /// thread's Trim pushes it (claiming it from the waiting owner), and the slab, every block of which is then
    /// back, is given up by that same Trim.</summary>
    [Fact]
    public void AnotherThreadsTrimPushesAWaitingThreadsBatch()
    {
        if (Limit == 0) return; // the batch is off: nothing is held
        int capacity = SizeClasses.Capacity(SizeClasses.ClassOf(64));
        nint[] blocks = [];
        OnThread(() => blocks = Enumerable.Range(0, 4 * capacity).Select(_ => (nint)SlabMemory.Alloc(64)).ToArray());
        nint[] oneSlab = blocks.GroupBy(p => p >> 16).First(g => g.Count() == capacity).ToArray();
        nint[] rest = blocks.Except(oneSlab).ToArray();
        long batched0 = Counts().Batched;

        using var freed = new ManualResetEventSlim();
        using var release = new ManualResetEventSlim();
        Exception? failure = null;
        var freer = new Thread(() =>
        {
            try
            {
                foreach (nint p in rest) SlabMemory.Free((void*)p);
                foreach (nint p in oneSlab) SlabMemory.Free((void*)p); // the last ones stay in this thread's batch
                freed.Set();
                release.Wait();
                // The batch was pushed under it: it starts a new one, as if nothing happened.
                void* again = SlabMemory.Alloc(64);
                SlabMemory.Free(again);
            }
            catch (Exception e) { failure = e; }
            finally { freed.Set(); }
        });
        freer.Start();
        try
        {
            freed.Wait();
            Assert.InRange(Counts().Batched - batched0, 1, Limit);
            SlabMemory.Trim();
            Assert.Equal(batched0, Counts().Batched);
            Assert.Throws<ArgumentException>(() => SlabMemory.UsableSize((void*)oneSlab[0]));
        }
        finally
        {
            release.Set();
            freer.Join();
        }
        Assert.Null(failure);
    }

    /// <summary>Trim claims batches while their owners free into them: for a second and a half, rounds of blocks
    /// allocated by a thread that then ends are freed by two other threads (batch after batch, into slabs that
    /// are no longer theirs), while a third thread trims in a loop. Nothing is pushed twice or lost: every
    /// block comes back exactly, and the blocks allocated afterwards are all distinct.</summary>
    [Fact]
    public void TrimsRacingWithOwnersFreeingIntoTheirBatchesLoseAndDuplicateNothing()
    {
        if (Limit == 0) return;
        long inUse0 = Counts().InUse;
        const int perFreer = 4096;
        using var stop = new CancellationTokenSource();
        Exception? failure = null;
        long trims = 0;
        var trimmer = new Thread(() =>
        {
            try
            {
                while (!stop.IsCancellationRequested)
                {
                    SlabMemory.Trim();
                    trims++;
                }
            }
            catch (Exception e) { failure = e; }
        });
        trimmer.Start();
        var random = new Random(5);
        long deadline = Environment.TickCount64 + 1500;
        int rounds = 0;
        while (Environment.TickCount64 < deadline && failure == null)
        {
            nint[][] blocks = new nint[2][];
            OnThread(() =>
            {
                for (int f = 0; f < 2; f++) blocks[f] = Enumerable.Range(0, perFreer).Select(_ => (nint)SlabMemory.Alloc((nuint)random.Next(8, 200))).ToArray();
            });
            var freers = Enumerable.Range(0, 2).Select(f => new Thread(() =>
            {
                try { foreach (nint p in blocks[f]) SlabMemory.Free((void*)p); }
                catch (Exception e) { failure = e; }
            })).ToList();
            freers.ForEach(t => t.Start());
            freers.ForEach(t => t.Join());
            rounds++;
        }
        stop.Cancel();
        trimmer.Join();
        Assert.Null(failure);
        Assert.True(trims > 0 && rounds > 0);
        SlabMemory.Trim();
        Assert.Equal(inUse0, Counts().InUse);
        // A block pushed twice would be handed out twice.
        var again = new HashSet<nint>();
        OnThread(() =>
        {
            for (int i = 0; i < 4 * perFreer; i++) Assert.True(again.Add((nint)SlabMemory.Alloc(64)));
            foreach (nint p in again) SlabMemory.Free((void*)p);
        });
        SlabMemory.Trim();
        Assert.Equal(inUse0, Counts().InUse);
    }

    [Fact]
    public void EveryBlockFreedThroughBatchesFromManyThreadsComesBackExactly()
    {
        const int Owners = 3, Freers = 4, PerOwner = 20_000;
        long before = SlabMemory.GetStatistics().BlocksInUse;
        var random = new Random(20261206);
        var all = new List<nint>();
        for (int o = 0; o < Owners; o++)
        {
            var sizes = Enumerable.Range(0, PerOwner).Select(_ => (nuint)random.Next(1, 2000)).ToArray();
            var mine = new nint[PerOwner];
            OnThread(() =>
            {
                for (int i = 0; i < PerOwner; i++)
                {
                    mine[i] = (nint)SlabMemory.Alloc(sizes[i]);
                    *(long*)mine[i] = mine[i] ^ 0x5A5A;
                }
            });
            all.AddRange(mine);
        }
        // Freers take runs of consecutive blocks (mostly one slab each, so batches fill), in random order.
        nint[][] runs = all.Chunk(50).OrderBy(_ => random.Next()).ToArray();
        int next = -1;
        var freers = Enumerable.Range(0, Freers).Select(_ => new Thread(() =>
        {
            for (int r; (r = Interlocked.Increment(ref next)) < runs.Length; )
            {
                foreach (nint p in runs[r])
                {
                    if (*(long*)p != (p ^ 0x5A5A)) throw new InvalidOperationException($"block 0x{p:x} overwritten");
                    SlabMemory.Free((void*)p);
                }
                // New blocks now and then, so the freers' own misses push their batches too.
                if (r % 7 == 0) SlabMemory.Free(SlabMemory.Alloc((nuint)(r % 3000 + 1)));
            }
        })).ToList();
        freers.ForEach(t => t.Start());
        freers.ForEach(t => t.Join());
        SlabMemory.Trim();
        Assert.Equal(before, SlabMemory.GetStatistics().BlocksInUse);
    }
}
