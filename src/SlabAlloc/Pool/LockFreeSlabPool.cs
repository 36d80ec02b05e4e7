using SlabAlloc.Core;

namespace SlabAlloc.Pool;

/// <summary>
/// The lock-free shared slab pool: per-class partial and empty lists are <see cref="TaggedIndexStack"/>s
/// of slab indices, slot claiming is a CAS on a superslab's free mask, and the directory grows by CAS.
/// No operation here takes a lock or waits for another thread.
/// </summary>
/// <remarks>
/// <para>A slab popped from a list is held exclusively by the popper (the stack hands each push to
/// exactly one pop). The stacks' links live in the directory (never unmapped), so a pop that reads the
/// link of a slab another thread just popped and released reads valid memory; its CAS then fails on
/// the version. See <see cref="TaggedIndexStack"/> for the ABA argument.</para>
/// <para>The empty-list counts are approximate (incremented before a push, decremented after a pop);
/// they bound the hysteresis, they are not an invariant.</para>
/// </remarks>
internal sealed unsafe class LockFreeSlabPool : SlabPool
{
    private readonly TaggedIndexStack[] _partial = new TaggedIndexStack[SizeClasses.Count];
    private readonly TaggedIndexStack[] _empty = new TaggedIndexStack[SizeClasses.Count];
    private readonly int[] _emptyCount = new int[SizeClasses.Count];
    private readonly int[] _partialCount = new int[SizeClasses.Count];
    private int _scanHint;

    private struct SlabLinks : IIndexLinks
    {
        public int* LinkOf(uint globalIndex) =>
            &SuperslabDirectory.Entry(globalIndex / Geometry.SlotsPerSuperslab)->SlotLinks[(int)(globalIndex % Geometry.SlotsPerSuperslab)];
    }

    public override SlabMeta* Acquire(int sizeClass, void* owner)
    {
        // Stage 1: a slab of this class that no thread owns, partial ones first (their memory is already touched).
        if (_partial[sizeClass].TryPop(out uint g, default(SlabLinks)))
        {
            Interlocked.Decrement(ref _partialCount[sizeClass]);
            return AdoptListed(g, owner);
        }
        if (_empty[sizeClass].TryPop(out g, default(SlabLinks)))
        {
            Interlocked.Decrement(ref _emptyCount[sizeClass]);
            return AdoptListed(g, owner);
        }

        // Stage 2: free slots in a mapped superslab, scanning from where the last claim succeeded.
        int span = SizeClasses.SpanSlots(sizeClass);
        int count = SuperslabDirectory.Count;
        int start = Volatile.Read(ref _scanHint);
        for (int k = 0; k < count; k++)
        {
            uint i = (uint)((start + k) % count);
            SuperslabEntry* e = SuperslabDirectory.Entry(i);
            int slot = Superslabs.TryClaim(e, span, out _);
            if (slot < 0) continue;
            Volatile.Write(ref _scanHint, (int)i);
            Counters.Add(ref Counters.Stage2);
            return Own(Superslabs.Format(e, i, slot, sizeClass), owner);
        }

        // Stage 3: a new superslab, published with our span already claimed.
        SuperslabEntry* fresh = Superslabs.MapNew(span, out uint index, out int first);
        if (fresh == null)
        {
            Counters.Add(ref Counters.Failed);
            return null;
        }
        Counters.Add(ref Counters.Stage3);
        return Own(Superslabs.Format(fresh, index, first, sizeClass), owner);
    }

    private SlabMeta* AdoptListed(uint globalIndex, void* owner)
    {
        SlabMeta* s = Superslabs.SlabByIndex(globalIndex);
        SlabMeta.Adopt(s, owner);
        s->Lifecycle = SlabLifecycle.Owned;
        Counters.Add(ref Counters.Stage1);
        return s;
    }

    private static SlabMeta* Own(SlabMeta* s, void* owner)
    {
        s->Owner = owner;
        return s;
    }

    public override void PublishPartial(SlabMeta* s)
    {
        s->Lifecycle = SlabLifecycle.Partial;
        Interlocked.Increment(ref _partialCount[s->ClassIndex]);
        Counters.Add(ref Counters.PublishedPartial);
        _partial[s->ClassIndex].Push(s->GlobalIndex, default(SlabLinks));
    }

    public override void ReleaseEmpty(SlabMeta* s)
    {
        int c = s->ClassIndex;
        if (Interlocked.Increment(ref _emptyCount[c]) <= SlabOptions.EmptySlabsPerClass)
        {
            s->Lifecycle = SlabLifecycle.Empty;
            Counters.Add(ref Counters.ReleasedToEmptyList);
            _empty[c].Push(s->GlobalIndex, default(SlabLinks));
            return;
        }
        Interlocked.Decrement(ref _emptyCount[c]);
        Counters.Add(ref Counters.ReleasedToUnused);
        Superslabs.ReleaseSlab(s);
    }

    public override void Trim()
    {
        for (int c = 0; c < SizeClasses.Count; c++)
        {
            // Empty slabs: release them all.
            while (_empty[c].TryPop(out uint g, default(SlabLinks)))
            {
                Interlocked.Decrement(ref _emptyCount[c]);
                Counters.Add(ref Counters.ReleasedToUnused);
                Superslabs.ReleaseSlab(Superslabs.SlabByIndex(g));
            }

            // Partial slabs: take the list, release those that became empty, put the rest back.
            uint keptHead = uint.MaxValue;
            while (_partial[c].TryPop(out uint g, default(SlabLinks)))
            {
                Interlocked.Decrement(ref _partialCount[c]);
                SlabMeta* s = Superslabs.SlabByIndex(g);
                SlabMeta.CollectRemote(s, SlabMeta.StateQueued);
                if (s->Used == 0)
                {
                    Counters.Add(ref Counters.ReleasedToUnused);
                    Superslabs.ReleaseSlab(s);
                    continue;
                }
                // Keep it aside on a private chain through the same link cells, pushed back below.
                *default(SlabLinks).LinkOf(g) = (int)(keptHead + 1);
                keptHead = g;
            }
            while (keptHead != uint.MaxValue)
            {
                uint next = (uint)(*default(SlabLinks).LinkOf(keptHead)) - 1;
                SlabMeta* s = Superslabs.SlabByIndex(keptHead);
                PublishPartialUncounted(s);
                keptHead = next;
            }
        }
        Superslabs.RetireEmpty(0);
    }

    private void PublishPartialUncounted(SlabMeta* s)
    {
        Interlocked.Increment(ref _partialCount[s->ClassIndex]);
        _partial[s->ClassIndex].Push(s->GlobalIndex, default(SlabLinks));
    }

    public override (int Partial, int Empty) ListedSlabs(int sizeClass) =>
        (Math.Max(0, Volatile.Read(ref _partialCount[sizeClass])), Math.Max(0, Volatile.Read(ref _emptyCount[sizeClass])));
}
