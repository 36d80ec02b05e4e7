using SlabAlloc.Support;

namespace SlabAlloc.Memory;

/// <summary>Walks the remote-free lists of several slabs side by side, reading only, so that their blocks'
/// lines are in the cache when the holder collects the lists one by one.</summary>
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
}
