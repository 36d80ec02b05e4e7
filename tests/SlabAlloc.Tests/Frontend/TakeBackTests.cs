using SlabAlloc.Frontend;
using SlabAlloc.Memory;

namespace SlabAlloc.Tests.Frontend;

/// <summary>
/// Slabs taken back from a live thread: a thread allocates blocks, hands them to another thread that frees
/// them all, and waits. <c>Trim</c> takes every slab of it whose blocks were all freed back to the pool, except
/// its current one, and no slab that still has a live block; the thread then allocates and frees as before,
/// and every count comes out exact. (Owners freeing into their slabs while they are taken: RacingGuaranteeTests,
/// take-back.)
/// </summary>
/// <remarks>In the non-parallel "SlabAlloc global state" collection: it trims, and reads process-wide statistics.</remarks>
[Collection("SlabAlloc global state")]
public sealed unsafe class TakeBackTests
{
    private const nuint Size = 200;
    private const int Count = 3000;

    [Fact]
    public void AnIdleThreadsSlabs_WhoseBlocksOthersFreed_GoBackOnTrim_AndTheThreadGoesOn()
    {
        SlabStatistics before = Quiescence.SettledStatistics();
        using var owner = new IdleOwner();
        nint[] blocks = owner.Allocated;
        HashSet<nint> slabs = SlabsOf(blocks);
        Assert.True(slabs.Count >= 5, $"the blocks fill only {slabs.Count} slabs: the test proves little");
        for (int i = 0; i < blocks.Length; i++)
        {
            Assert.True(Stamped((byte*)blocks[i], i), $"block {i} lost its stamp before it was freed");
            SlabMemory.Free((void*)blocks[i]);
        }
        long takenBefore = SlabMemory.GetStatistics().SlabsTakenBack;
        SlabMemory.Trim();
        long taken = SlabMemory.GetStatistics().SlabsTakenBack - takenBefore;

        // Every slab of the owner's but its current one is gone from it; the current one stays.
        int stillOwned = slabs.Count(s => ((SlabMeta*)s)->Owner == owner.Heap);
        Assert.Equal(1, stillOwned);
        Assert.True(taken >= slabs.Count - 1, $"{taken} slabs taken back, the owner had {slabs.Count - 1} to give");

        owner.AllocateAndFreeAgain();
        SlabStatistics after = Quiescence.SettledStatistics();
        Assert.Equal(before.BlocksInUse, after.BlocksInUse);
        Assert.Equal(before.BytesInUse, after.BytesInUse);
    }

    [Fact]
    public void ASlabWithOneLiveBlock_StaysWithItsOwner()
    {
        Quiescence.SettledStatistics();
        using var owner = new IdleOwner();
        nint[] blocks = owner.Allocated;
        HashSet<nint> slabs = SlabsOf(blocks);
        // One block of every slab stays live (the first found in each); all the others are freed by this thread.
        var kept = new Dictionary<nint, nint>();
        foreach (nint p in blocks) kept.TryAdd((nint)SuperslabHeader.SlabOf((void*)p), p);
        foreach (nint p in blocks)
            if (!kept.ContainsValue(p)) SlabMemory.Free((void*)p);
        SlabMemory.Trim();
        Assert.All(slabs, s => Assert.True(((SlabMeta*)s)->Owner == owner.Heap, "a slab with a live block was taken from its owner"));
        int i = 0;
        foreach (nint p in blocks)
        {
            if (kept.ContainsValue(p)) Assert.True(Stamped((byte*)p, i), $"live block {i} lost its stamp");
            i++;
        }
        foreach (nint p in kept.Values) SlabMemory.Free((void*)p);
        owner.AllocateAndFreeAgain();
    }

    private static HashSet<nint> SlabsOf(nint[] blocks) => blocks.Select(p => (nint)SuperslabHeader.SlabOf((void*)p)).ToHashSet();

    private static void Stamp(byte* p, int seed)
    {
        for (nuint k = 0; k < Size; k++) p[k] = (byte)(seed * 31 + (int)k);
    }

    private static bool Stamped(byte* p, int seed)
    {
        for (nuint k = 0; k < Size; k++)
            if (p[k] != (byte)(seed * 31 + (int)k)) return false;
        return true;
    }

    /// <summary>A thread that allocates and stamps <see cref="Count"/> blocks, then waits, alive and idle, until it is
    /// told to allocate, check and free as many again itself (or to end).</summary>
    private sealed class IdleOwner : IDisposable
    {
        private readonly Thread _thread;
        private readonly ManualResetEventSlim _allocated = new(), _go = new(), _done = new();
        private Exception? _failure;
        private bool _again;

        public nint[] Allocated { get; } = new nint[Count];
        public ThreadCache* Heap { get; private set; }

        public IdleOwner()
        {
            _thread = new Thread(Body);
            _thread.Start();
            _allocated.Wait();
            if (_failure != null) throw new InvalidOperationException("the owner failed", _failure);
        }

        private void Body()
        {
            try
            {
                for (int i = 0; i < Count; i++)
                {
                    Allocated[i] = (nint)SlabMemory.Alloc(Size);
                    Stamp((byte*)Allocated[i], i);
                }
                Heap = SmallBlocks.HeapOfCallingThread();
                _allocated.Set();
                _go.Wait();
                if (!_again) return;
                var again = new nint[Count];
                for (int i = 0; i < Count; i++)
                {
                    again[i] = (nint)SlabMemory.Alloc(Size);
                    Stamp((byte*)again[i], i + 7);
                }
                for (int i = 0; i < Count; i++)
                {
                    if (!Stamped((byte*)again[i], i + 7)) throw new InvalidOperationException($"block {i} of the second batch lost its stamp");
                    SlabMemory.Free((void*)again[i]);
                }
            }
            catch (Exception e)
            {
                _failure = e;
            }
            finally
            {
                _allocated.Set();
                _done.Set();
            }
        }

        /// <summary>Wakes the owner to allocate, check and free a second batch, and waits for it.</summary>
        public void AllocateAndFreeAgain()
        {
            _again = true;
            _go.Set();
            _done.Wait();
            if (_failure != null) throw new InvalidOperationException("the owner failed", _failure);
        }

        public void Dispose()
        {
            _go.Set();
            _thread.Join();
            _allocated.Dispose();
            _go.Dispose();
            _done.Dispose();
        }
    }
}
