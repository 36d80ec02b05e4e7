using SlabAlloc.Support;

namespace SlabAlloc.Memory;

/// <summary>Walks remote-free lists side by side, reading only, so that their blocks' lines are in the cache when
/// the holder collects the lists one by one: the lists of several slabs (<see cref="Touch"/>), or the chains of one
/// slab's list (<see cref="TouchChains"/>).</summary>
/// <remarks>
/// <para>Collecting a remote-free list is a chase of dependent loads over blocks that other threads wrote last:
/// one cache miss after another, none of them overlapping. A holder about to collect many lists at once (a
/// dead thread's cache handed back) walks them first in step, one link of each list per turn, so that the
/// misses of different lists overlap; the collection that follows (<see cref="SlabMeta.CollectRemote"/>, which
/// counts, checks and splices) then reads lines already in the cache.</para>
/// <para><b>Why reading is safe.</b> The caller holds every slab (their owner, or the reclaimer of their dead
/// owner), so no block on a remote-free list is handed out, and the slab's superslab stays mapped, until the
/// caller collects it. Other threads only prepend to a list: a push writes the link of its own new tail and
/// then swings the head, so the chain from a head once read never changes under the walk. A damaged link is
/// never followed out of its superslab (<see cref="SlabMeta.TryNextOf"/>) and no walk goes past the slab's
/// capacity: this walk changes nothing and reports nothing; finding damage is the collection's job.</para>
/// <para><b>One long list.</b> A list is made of chains, one per push (a remote-free batch, or one block), and a
/// push leaves its chain's last block in its first block (<see cref="SlabMeta.TryChainEndOf"/>). From the list's
/// head, the first blocks of up to <see cref="Width"/> chains are found two reads per chain (the hint, then the last
/// block's link), and the chains are then walked side by side. A hint is only trusted to be a block of the slab:
/// a wrong one (a block overwritten after its free) makes this walk stop early or read blocks twice, never
/// read outside the slab; the collection's own walk, link by link from the head, is what counts and checks.</para>
/// </remarks>
internal static unsafe class RemoteListWalk
{
    /// <summary>How many lists are walked side by side: enough misses in flight at once for a core's
    /// load buffers, few enough that the blocks walked stay in the cache until they are collected.</summary>
    public const int Width = 16;

    /// <summary>Reads the remote-free lists of <paramref name="count"/> (at most <see cref="Width"/>) slabs,
    /// all held by the caller, one link of each per turn.</summary>
    public static void Touch(SlabMeta** slabs, int count)
    {
        Invariant.Holds(count <= Width, "at most Width lists are walked side by side");
        void** cursor = stackalloc void*[Width];
        int* budget = stackalloc int[Width];
        int walking = 0;
        for (int i = 0; i < count; i++)
        {
            cursor[i] = (void*)(Volatile.Read(ref slabs[i]->ThreadFree) & ~SlabMeta.StateMask);
            budget[i] = slabs[i]->Capacity;
            if (cursor[i] != null) walking++;
        }
        while (walking > 0)
        {
            walking = 0;
            for (int i = 0; i < count; i++)
            {
                void* block = cursor[i];
                if (block == null) continue;
                if (--budget[i] < 0 || !SlabMeta.TryNextOf(slabs[i], block, out void* next)) next = null;
                cursor[i] = next;
                if (next != null) walking++;
            }
        }
    }

    /// <summary>Reads the remote-free list that starts at <paramref name="head"/>, already taken by the caller
    /// from slab <paramref name="s"/>, which it holds, up to <see cref="Width"/> of its chains side by side.</summary>
    public static void TouchChains(SlabMeta* s, void* head)
    {
        void** cursor = stackalloc void*[Width];
        void** last = stackalloc void*[Width];
        int budget = s->Capacity; // reads in all, the collection's own bound
        void* next = head;
        while (next != null)
        {
            int chains = 0;
            while (next != null && chains < Width)
            {
                if (--budget < 0 || !SlabMeta.TryChainEndOf(s, next, out void* end) || !SlabMeta.TryNextOf(s, end, out void* after)) return;
                cursor[chains] = next;
                last[chains++] = end;
                next = after;
            }
            if (chains == 1) continue; // one chain: nothing to overlap (its last block was just read)
            for (int walking = chains; walking > 0; )
            {
                walking = 0;
                for (int i = 0; i < chains; i++)
                {
                    void* block = cursor[i];
                    if (block == last[i]) continue;
                    if (--budget < 0 || !SlabMeta.TryNextOf(s, block, out void* link) || link == null) return;
                    cursor[i] = link;
                    if (link != last[i]) walking++;
                }
            }
        }
    }
}
