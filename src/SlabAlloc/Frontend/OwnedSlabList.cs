using System.Runtime.CompilerServices;
using SlabAlloc.Memory;

namespace SlabAlloc.Frontend;

/// <summary>
/// A circular doubly-linked list of slabs a thread cache owns, threaded through
/// <see cref="SlabMeta.NextOwned"/>/<see cref="SlabMeta.PrevOwned"/>, its head a cell of the
/// <see cref="ThreadCache"/>. Owner only: no other thread reads or writes these links.
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
