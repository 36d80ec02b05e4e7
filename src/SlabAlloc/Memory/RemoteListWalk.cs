using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics.X86;
using SlabAlloc.Support;

namespace SlabAlloc.Memory;

/// <summary>Walks remote-free lists side by side, reading only, so that the misses on their blocks overlap: the lists
/// of several slabs, read so that their lines are in the cache when the holder collects them one by one
/// (<see cref="Touch"/>), or the chains of one slab's list, counted as the holder collects it (<see cref="CountByChains"/>).</summary>
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
/// block's link), and the chains are then walked side by side, each up to the block its hint names. A hint is
/// checked as a link is (inside the superslab, aligned), so a wrong one (a block overwritten after its free) is
/// never read outside the superslab. Either it names a block further down the list, and the count is still exact
/// (the chains still cover every link from the head, in order), or a chain misses its end, and the count gives up
/// (0) for the collection's walk link by link, which reports what is wrong.</para>
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

    /// <summary>Counts the remote-free list that starts at <paramref name="head"/>, already taken by the caller from slab
    /// <paramref name="s"/>, which it holds, walking up to <see cref="Width"/> of its chains side by side; its last
    /// block in <paramref name="tail"/>. Returns 0 when the list is not what its chains' hints say (a hint or a link
    /// overwritten, a cycle) or is longer than the slab, and on a processor without a prefetch instruction .NET exposes
    /// (x86's): the caller then walks it link by link, which reports.</summary>
    /// <remarks>Follows exactly the links the walk from the head does, in pieces: every chain is walked from its
    /// first block until it reaches the last block its hint names, and that block's link is the next chain's first
    /// block, or null at the list's end. So a count returned is the list's length, bounded by the slab's capacity as
    /// that walk's is, and a list that walk would reject (a link out of the superslab, a cycle, too long) gives 0.</remarks>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static int CountByChains(SlabMeta* s, void* head, out void* tail)
    {
        tail = null;
        // Without the prefetch of each chain's run, walking chains in turn would break the constant stride the
        // processor's own prefetcher follows in a walk link by link, and lose to it: leave the list to that walk.
        if (!Sse.IsSupported) return 0;
        // A list of one block: nothing to overlap, and the walk link by link is one read.
        if (!SlabMeta.TryNextOf(s, head, out void* second) || second == null) return 0;
        void** cursor = stackalloc void*[Width];
        void** last = stackalloc void*[Width];
        int capacity = s->Capacity, count = 0;
        void* next = head;
        while (next != null)
        {
            int chains = 0;
            while (next != null && chains < Width)
            {
                if (++count > capacity || !SlabMeta.TryChainEndOf(s, next, out void* end) || !SlabMeta.TryNextOf(s, end, out void* after)) return 0;
                cursor[chains] = next;
                last[chains++] = end;
                tail = end;
                if (end != next) PrefetchRun(s, next, end);
                next = after;
            }
            for (int walking = chains; walking > 0; )
            {
                walking = 0;
                for (int i = 0; i < chains; i++)
                {
                    void* block = cursor[i];
                    if (block == last[i]) continue;
                    if (!SlabMeta.TryNextOf(s, block, out void* link) || link == null || ++count > capacity) return 0;
                    cursor[i] = link;
                    if (link != last[i]) walking++;
                }
            }
        }
        return count;
    }

    /// <summary>The most blocks between a chain's first and last block that <see cref="PrefetchRun"/> asks for.</summary>
    private const int MaxPrefetchBlocks = 64;

    /// <summary>The processor's cache line: one prefetch per line.</summary>
    private const uint CacheLineBytes = 64;

    /// <summary>Asks the processor for the blocks between a chain's first and last block, when they are few: a chain is
    /// usually a run of neighbouring blocks (a thread frees blocks in the order another carved them), whose lines are
    /// then on their way before the walk reaches them. A hardware prefetcher finds such a run by itself when one load
    /// walks it alone, not when the walk goes from chain to chain.</summary>
    private static void PrefetchRun(SlabMeta* s, void* first, void* end)
    {
        byte* low = (byte*)Math.Min((nuint)first, (nuint)end), high = (byte*)Math.Max((nuint)first, (nuint)end);
        uint blockBytes = s->BlockBytes;
        if ((nuint)(high - low) > MaxPrefetchBlocks * (nuint)blockBytes) return;
        // One request per line: blocks smaller than a line share it.
        nuint step = Math.Max(blockBytes, CacheLineBytes);
        for (byte* p = low; p <= high; p += step) Sse.Prefetch0(p);
    }
}
