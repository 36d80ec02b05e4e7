using System.Diagnostics;
using SlabAlloc.Support;

namespace SlabAlloc.Memory;

/// <summary>
/// The invariants of <see cref="SlabMeta"/> (see its remarks), checked at each hand-over of a slab in
/// Debug builds (<see cref="Invariant"/>); every method here is removed from Release builds.
/// </summary>
internal static unsafe class SlabInvariants
{
    /// <summary>A freshly formatted slab: nothing handed out, no list, owned by its formatter.</summary>
    [Conditional("DEBUG")]
    public static void Formatted(SlabMeta* s, int sizeClass)
    {
        Invariant.Holds(s->Carved == 0 && s->Used == 0 && s->Free == null && s->SetAside == null, "a formatted slab has handed nothing out");
        Invariant.Holds(s->ClassIndex == sizeClass && s->Capacity == SizeClasses.Capacity(sizeClass), "a slab's geometry is its class's");
        Invariant.Holds(s->ThreadFree == SlabMeta.StateOwned && s->OwnerList == SlabMeta.NotListed, "a formatted slab is held, in no list");
    }

    /// <summary>The counts of a slab its caller holds exclusively, at a hand-over (none of its blocks in a free cache):
    /// <c>0 &lt;= Used &lt;= Carved &lt;= Capacity</c> and <c>Carved == Used + |Free| + |SetAside|</c>.</summary>
    [Conditional("DEBUG")]
    public static void Counts(SlabMeta* s)
    {
        Invariant.Holds(0 <= s->Used && s->Used <= s->Carved && s->Carved <= s->Capacity, "a slab's counts are ordered");
        int free = ListLength(s, s->Free), aside = ListLength(s, s->SetAside);
        if (free < 0 || aside < 0) return; // a damaged list: the caller's error, reported where it is followed
        if (s_blocksDropped) Invariant.Holds(s->Carved >= s->Used + free + aside, "no block is on a list twice");
        else Invariant.Holds(s->Carved == s->Used + free + aside, "every block handed out at least once is out or on a list");
    }

    /// <summary>Set once a thread cache dropped free blocks it found corruption among (a damaged link leaves
    /// the blocks after it unknown): they are free for their slabs but on no list, so from then on a slab's
    /// blocks add up to at most what it handed out.</summary>
    private static volatile bool s_blocksDropped;

    /// <summary>Records that free blocks were dropped after corruption was found (see <see cref="Counts"/>).</summary>
    [Conditional("DEBUG")]
    public static void BlocksDropped() => s_blocksDropped = true;

    /// <summary>A slab handed to a thread cache: owned by it, in no pool list, its counts whole.</summary>
    [Conditional("DEBUG")]
    public static void OwnedBy(SlabMeta* s, void* owner)
    {
        Invariant.Holds(s->Owner == owner && s->Lifecycle == SlabLifecycle.Owned, "a slab handed to a thread cache is owned by it");
        Invariant.Holds((s->ThreadFree & SlabMeta.StateMask) == SlabMeta.StateOwned, "an owned slab's state word says owned");
        Counts(s);
    }

    /// <summary>A slab going onto a pool list: no owner, queued, listed as <paramref name="lifecycle"/>.</summary>
    [Conditional("DEBUG")]
    public static void Listed(SlabMeta* s, SlabLifecycle lifecycle)
    {
        Invariant.Holds(s->Owner == null && s->OwnerList == SlabMeta.NotListed, "a slab in a pool list has no owner");
        Invariant.Holds((Volatile.Read(ref s->ThreadFree) & SlabMeta.StateMask) == SlabMeta.StateQueued, "a slab in a pool list is queued");
        Invariant.Holds(s->Lifecycle == lifecycle, "a slab's lifecycle names the list it is on");
        if (lifecycle != SlabLifecycle.Partial)
            Invariant.Holds(s->Used == 0, "an empty or reserved slab has no block out");
    }

    /// <summary>Length of a free list of <paramref name="s"/>, or -1 if the list is damaged (a link that is
    /// not a block of the slab handed out before, or more links than blocks).</summary>
    private static int ListLength(SlabMeta* s, void* head)
    {
        int n = 0;
        byte* end = s->Start + (nuint)s->Carved * s->BlockBytes;
        for (void* b = head; b != null; b = RawNext(s, b))
        {
            if ((byte*)b < s->Start || (byte*)b >= end || ((nuint)((byte*)b - s->Start)) % s->BlockBytes != 0) return -1;
            if (++n > s->Capacity) return -1;
        }
        return n;
    }

    /// <summary>A link decoded without the hardened check (which would throw): the walk above judges it.</summary>
    private static void* RawNext(SlabMeta* s, void* block)
    {
        nuint stored = *(nuint*)block;
        return (void*)(SlabOptions.Hardened ? stored ^ s->Key : stored);
    }
}
