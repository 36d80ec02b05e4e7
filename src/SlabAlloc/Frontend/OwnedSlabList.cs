using System.Runtime.CompilerServices;
using SlabAlloc.Memory;

namespace SlabAlloc.Frontend;

/// <summary>
/// A circular doubly-linked list of slabs a thread cache owns, threaded through
/// <see cref="SlabMeta.NextOwned"/>/<see cref="SlabMeta.PrevOwned"/>, its head a cell of the
/// <see cref="ThreadCache"/>. The owner's: another thread reads or writes these links only while it holds
/// the cache, a dead thread's as its reclaim, or a live thread's lists of the classes without a free cache
/// through the handshake of <c>SmallBlocks.TakeBack</c> (the lists of classes with one, which the free cache's
/// flush changes outside it, are never taken from).
/// </summary>
internal static unsafe class OwnedSlabList
{
    /// <summary>Appends <paramref name="s"/> at the tail and marks which list it is on.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Add(ref nint head, SlabMeta* s, byte list)
    {
        var first = (SlabMeta*)head;
        if (first == null)
        {
            s->NextOwned = s->PrevOwned = s;
            head = (nint)s;
        }
        else
        {
            SlabMeta* last = first->PrevOwned;
            s->NextOwned = first;
            s->PrevOwned = last;
            last->NextOwned = s;
            first->PrevOwned = s;
        }
        s->OwnerList = list;
    }

    /// <summary>Unlinks <paramref name="s"/> from the list whose head is <paramref name="head"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Remove(ref nint head, SlabMeta* s)
    {
        if (s->NextOwned == s) head = 0;
        else
        {
            s->PrevOwned->NextOwned = s->NextOwned;
            s->NextOwned->PrevOwned = s->PrevOwned;
            if ((SlabMeta*)head == s) head = (nint)s->NextOwned;
        }
        s->NextOwned = s->PrevOwned = null;
        s->OwnerList = SlabMeta.NotListed;
    }
}
