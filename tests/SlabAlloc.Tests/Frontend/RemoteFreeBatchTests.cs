using SlabAlloc.Memory;
using SlabAlloc.Support;

namespace SlabAlloc.Tests.Frontend;

/// <summary>
/// A thread's remote frees into one slab are held back in its batch and pushed together: counted as freed
/// at once, held up to <c>SLABALLOC_REMOTE_BATCH</c> blocks, pushed when a free goes to another slab, at the
/// thread's next miss, at <c>Trim</c>, and when its cache is reclaimed after it ended; the same block freed
/// twice in a row into a batch is rejected and changes nothing.
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
    public void RemoteFreesAreHeldUntilTheBatchIsFullAnotherSlabIsFreedIntoAMissOrTrim()
    {
        if (Limit == 0) return; // the batch is off (the default): tests/run-all.sh runs this with it on
        // Blocks of another thread's slabs, 64 B; a 64 KiB slot all of whose blocks it allocated is a slab
        // that holds no one else's block.
        int capacity = SizeClasses.Capacity(SizeClasses.ClassOf(64));
        nint[] blocks = [];
        nint other = 0;
        OnThread(() =>
        {
            blocks = Enumerable.Range(0, 4 * capacity).Select(_ => (nint)SlabMemory.Alloc(64)).ToArray();
            other = (nint)SlabMemory.Alloc(1000);
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

            // A free into another slab pushes the batch and starts a new one.
            SlabMemory.Free((void*)other);
            Assert.Equal((inUse - 1, batched0 + 1), Counts());

            // The thread's next miss pushes it (a class it never allocated: its first allocation misses).
            void* mine = SlabMemory.Alloc(3000);
            Assert.Equal((inUse, batched0), Counts());
            SlabMemory.Free(mine);

            // Trim pushes it too.
            SlabMemory.Free((void*)oneSlab[held]);
            Assert.Equal(batched0 + 1, Counts().Batched);
            SlabMemory.Trim();
            Assert.Equal(batched0, Counts().Batched);

            // Held when the thread ends: pushed when its cache is reclaimed.
            foreach (nint p in rest) SlabMemory.Free((void*)p);
            SlabMemory.Free((void*)oneSlab[held + 1]);
            Assert.Equal(batched0 + 1, Counts().Batched);
        });
        SlabMemory.Trim(); // reclaims the ended threads' caches, the freer's batch pushed first
        // Every block of the slab came back, the last one from the batch the freer held when it ended: the
        // slab has no block out, so asking about one of its blocks is asking about a freed block.
        Assert.Throws<ArgumentException>(() => SlabMemory.UsableSize((void*)oneSlab[0]));
    }

    /// <summary>A live thread that freed into another thread's slab and then waits keeps its batch (at most
    /// the limit, of one slab) through other threads' Trim calls; its own Trim pushes it, and the slab, every
    /// block of which is then back, is given up.</summary>
    [Fact]
    public void AWaitingThreadKeepsAtMostOneBatchUntilItsOwnTrim()
    {
        if (Limit == 0) return; // the batch is off (the default): tests/run-all.sh runs this with it on
        int capacity = SizeClasses.Capacity(SizeClasses.ClassOf(64));
        nint[] blocks = [];
        OnThread(() => blocks = Enumerable.Range(0, 4 * capacity).Select(_ => (nint)SlabMemory.Alloc(64)).ToArray());
        nint[] oneSlab = blocks.GroupBy(p => p >> 16).First(g => g.Count() == capacity).ToArray();
        nint[] rest = blocks.Except(oneSlab).ToArray();
        long batched0 = Counts().Batched;

        using var freed = new ManualResetEventSlim();
        using var trim = new ManualResetEventSlim();
        using var trimmed = new ManualResetEventSlim();
        Exception? failure = null;
        var freer = new Thread(() =>
        {
            try
            {
                foreach (nint p in rest) SlabMemory.Free((void*)p);
                foreach (nint p in oneSlab) SlabMemory.Free((void*)p); // the last ones stay in this thread's batch
                freed.Set();
                trim.Wait();
                SlabMemory.Trim();
            }
            catch (Exception e) { failure = e; }
            finally { freed.Set(); trimmed.Set(); }
        });
        freer.Start();
        try
        {
            freed.Wait();
            SlabMemory.Trim();
            long held = Counts().Batched - batched0;
            Assert.InRange(held, 1, Limit);
            // Still out for its slab, which the default mode's UsableSize reports (checked mode reads the
            // block's own bit, freed already).
            if (!SlabOptions.Checked) SlabMemory.UsableSize((void*)oneSlab[0]);
            trim.Set();
            trimmed.Wait();
            Assert.Null(failure);
            Assert.Equal(batched0, Counts().Batched);
            SlabMemory.Trim();
            Assert.Throws<ArgumentException>(() => SlabMemory.UsableSize((void*)oneSlab[0]));
        }
        finally
        {
            trim.Set();
            freer.Join();
        }
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
