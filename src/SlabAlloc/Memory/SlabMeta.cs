using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using SlabAlloc.Support;

namespace SlabAlloc.Memory;

/// <summary>
/// The metadata of one slab: its free lists, its owner and its share of the cross-thread protocol.
/// Lives in the superslab directory (never unmapped), one per slot; only the first slot of a slab's
/// span is used.
/// </summary>
/// <remarks>
/// <para><b>Who writes what.</b> <see cref="Free"/>, <see cref="SetAside"/>, <see cref="Used"/>,
/// <see cref="Carved"/> and <see cref="Owner"/> belong to whoever holds the slab exclusively: its
/// owner thread cache, or the thread that popped it from a pool list, or the pool while the slab is
/// being formatted or released. <see cref="Start"/>, <see cref="BlockBytes"/>, <see cref="Reciprocal"/>,
/// <see cref="Capacity"/> and <see cref="ClassIndex"/> are set when the slab is formatted and do not
/// change until its slots are released. <see cref="ThreadFree"/> is written by any thread, by CAS.</para>
/// <para><b>Invariant</b> (while the slab is held exclusively, with every list counted):
/// <c>Used == (blocks handed out and not yet freed) + (blocks freed and held in other threads' remote
/// batches) + |ThreadFree list|</c> and <c>Carved == Used + |Free| + |SetAside| + (blocks in its owner's free
/// cache)</c>, <c>Carved &lt;= Capacity</c>; the last term is 0 whenever the slab changes hands (the thread caches
/// keep to that).
/// A slab is empty exactly when, after collecting the ThreadFree list, <c>Used == 0</c>: no block out and
/// none held in a batch. The free lists
/// hold only blocks that were handed out and freed; a slab hands out its never-used blocks (those from
/// <see cref="Carved"/> on) one at a time when its lists are empty (<see cref="TakeFresh"/>).</para>
/// <para><b>Remote frees arrive in chains.</b> Another thread pushes one block, or a chain of blocks it
/// freed one after the other, with one CAS (<see cref="PushRemote(SlabMeta*, void*, void*)"/>): the
/// chain's last block is linked to the list's head as it was, and the head becomes the chain's first
/// block. The holder walks the whole list when it takes it back (<see cref="CollectRemote"/>), so a cycle
/// anywhere in it, a chain's inside included, is found by the walk's bound. The push also leaves the chain's
/// last block in the second word of its first block, so that the holder can read the chains of a long list
/// side by side (<see cref="RemoteListWalk.CountByChains"/>).</para>
/// <para><b>The ThreadFree word</b> packs the head of the remote-free list (blocks are 16-byte aligned)
/// with a 2-bit state: <see cref="StateOwned"/> (a thread cache owns the slab), <see cref="StateDetached"/>
/// (no owner, no free block, in no list) and <see cref="StateQueued"/> (no owner, in a pool list).
/// Only the exclusive holder moves the state out of Owned or Queued; the only transition another
/// thread makes is Detached → Queued, by the remote free that gives a full slab its first free block,
/// which then publishes the slab to the pool. That CAS has one winner, so a slab is in at most one
/// list at a time.</para>
/// </remarks>
[StructLayout(LayoutKind.Explicit, Size = 128)]
internal unsafe struct SlabMeta
{
    public const nint StateOwned = 0;
    public const nint StateDetached = 1;
    public const nint StateQueued = 2;
    public const nint StateMask = 3;

    /// <summary>First byte of the first block.</summary>
    [FieldOffset(0)] public byte* Start;
    /// <summary>Blocks ready to hand out, the owner's frees pushed on top (owner only).</summary>
    [FieldOffset(8)] public void* Free;
    /// <summary>Blocks set aside, moved to <see cref="Free"/> when it runs dry (owner only): the pool-stress
    /// setting's blocks beyond its in-hand limit, and its owner frees.</summary>
    [FieldOffset(16)] public void* SetAside;
    /// <summary>The owning thread heap, or null. Written by the exclusive holder; other threads only compare it with their own heap.</summary>
    [FieldOffset(24)] public void* Owner;
    [FieldOffset(32)] public uint BlockBytes;
    /// <summary>ceil(2^32 / BlockBytes): turns a byte offset that is a multiple of the block size into its index without a division.</summary>
    [FieldOffset(36)] public uint Reciprocal;
    [FieldOffset(40)] public int Capacity;
    /// <summary>Blocks handed out at least once: blocks [0, Carved) were, the rest of the slab never was and
    /// is untouched (lazy carving). Raised by the owner, one block at a time, just before the block is handed
    /// out, so a block at or beyond it is one no allocation ever returned.</summary>
    [FieldOffset(44)] public int Carved;
    [FieldOffset(48)] public int Used;
    [FieldOffset(52)] public byte ClassIndex;
    /// <summary>Which of its owner's lists the slab is on (owner only): <see cref="NotListed"/> while it is
    /// a class's current slab or has no owner, else <see cref="RetainedFull"/> or <see cref="RetainedAvailable"/>.
    /// Nonzero sends the owner's free down its slow path.</summary>
    [FieldOffset(53)] public byte OwnerList;
    [FieldOffset(54)] public byte SpanSlots;
    [FieldOffset(55)] public SlabLifecycle Lifecycle;
    /// <summary>The secret every free-list link of this slab is XORed with (hardened mode), drawn when the
    /// slab is formatted: a heap overflow that overwrites a free block's link without knowing it produces
    /// a pointer that <see cref="NextOf"/> rejects.</summary>
    [FieldOffset(56)] public nuint Key;

    // Second cache line: ThreadFree, the only field other threads write without holding the slab's cache, kept away
    // from the owner's fields; then fields written only by the owner or a thread holding its cache.
    [FieldOffset(64)] public nint ThreadFree;
    /// <summary>Written by a thread taking slabs back from their live owner (<c>SmallBlocks.TakeBack</c>): the
    /// <see cref="ThreadFree"/> word and <see cref="Used"/> it saw when it last found a block of the slab live, so
    /// that it does not walk the same remote-free list again before either changes. A hint, reset by <see cref="Format"/>.</summary>
    [FieldOffset(72)] public nint LookedAtThreadFree;
    /// <summary>Links of the owner's circular list the slab is on (the owner's, and a thread holding its cache:
    /// see <c>OwnedSlabList</c>).</summary>
    [FieldOffset(80)] public SlabMeta* NextOwned;
    /// <inheritdoc cref="NextOwned"/>
    [FieldOffset(88)] public SlabMeta* PrevOwned;
    /// <summary>Directory index × 64 + first slot: the slab's name in the pool's lists.</summary>
    [FieldOffset(96)] public uint GlobalIndex;
    /// <inheritdoc cref="LookedAtThreadFree"/>
    [FieldOffset(100)] public int LookedAtUsed;

    /// <summary>Values of <see cref="OwnerList"/>.</summary>
    public const byte NotListed = 0, RetainedFull = 1, RetainedAvailable = 2;

    /// <summary>Prepares a claimed span to serve <paramref name="sizeClass"/>, held exclusively by the caller.</summary>
    public static void Format(SlabMeta* s, byte* start, int sizeClass, uint globalIndex)
    {
        uint block = (uint)SizeClasses.BlockBytes(sizeClass);
        s->Start = start;
        s->Free = null;
        s->SetAside = null;
        s->Owner = null;
        s->BlockBytes = block;
        s->Reciprocal = (uint)((((ulong)1 << 32) + block - 1) / block);
        s->Capacity = SizeClasses.Capacity(sizeClass);
        s->Carved = 0;
        s->Used = 0;
        s->ClassIndex = (byte)sizeClass;
        s->Key = SlabOptions.Hardened ? (nuint)Random.Shared.NextInt64() | 1 : 0;
        s->SpanSlots = (byte)SizeClasses.SpanSlots(sizeClass);
        s->GlobalIndex = globalIndex;
        s->OwnerList = NotListed;
        s->LookedAtUsed = -1;
        Volatile.Write(ref s->ThreadFree, StateOwned);
        SlabInvariants.Formatted(s, sizeClass);
    }

    /// <summary>Index of the block at <paramref name="p"/>, or -1 if p is not the start of a block of
    /// this slab that was ever handed out (a block at or beyond <see cref="Carved"/> never was).</summary>
    /// <remarks>Another thread may read <see cref="Carved"/> while the owner raises it; it sees at least
    /// the value from after the block was handed out, since handing a block to another thread
    /// synchronizes. A thread that races with the hand-out of the very block it names (it guessed the
    /// address) sees the block either not yet handed out, or handed out and live.</remarks>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int BlockIndexOf(SlabMeta* s, void* p)
    {
        nuint offset = (nuint)((byte*)p - s->Start);
        // Exact for every multiple of the block size below 2^32; a non-multiple never passes the check.
        uint index = (uint)(((ulong)offset * s->Reciprocal) >> 32);
        if ((nuint)index * s->BlockBytes != offset || index >= (uint)s->Carved) return -1;
        return (int)index;
    }


    /// <summary>The link stored in free block <paramref name="block"/>: the next free block, or null.</summary>
    /// <remarks>Hardened mode stores links XORed with <see cref="Key"/> and checks that a decoded link
    /// stays inside the block's own superslab, so an overwritten link is reported as corruption instead
    /// of sending the allocator to arbitrary memory. Cost: a load, two XORs and a branch per pop.</remarks>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void* NextOf(SlabMeta* s, void* block)
    {
        nuint stored = *(nuint*)block;
        if (!SlabOptions.Hardened) return (void*)stored;
        nuint next = stored ^ s->Key;
        if (((next ^ (nuint)block) >> Geometry.SuperslabShift) != 0 && next != 0) ThrowHelper.ThrowLinkOverwritten(block);
        return (void*)next;
    }

    /// <summary>As <see cref="NextOf"/>, for a reader that must not throw and must not be led outside the slab's
    /// memory: false when the decoded link leaves the block's superslab, in either mode, or is not 8-byte aligned
    /// (so that the next word read lies whole inside the superslab). A valid link never is either, and the
    /// superslab stays mapped while its slab has a block out.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool TryNextOf(SlabMeta* s, void* block, out void* next)
    {
        nuint stored = *(nuint*)block;
        nuint decoded = SlabOptions.Hardened ? stored ^ s->Key : stored;
        next = (void*)decoded;
        return decoded == 0 || (((decoded ^ (nuint)block) >> Geometry.SuperslabShift) == 0 && (decoded & 7) == 0);
    }

    /// <summary>The last block of the chain whose first block is <paramref name="head"/>, as the push of the chain
    /// left it (<see cref="PushRemote(SlabMeta*, void*, void*)"/>): false when <paramref name="head"/> or the hint is
    /// not 16-byte aligned (every block is) or the hint leaves the head's superslab. <paramref name="head"/> must be in
    /// the slab's superslab (the list's head, or a link <see cref="TryNextOf"/> accepted), so the word read lies inside
    /// it. A hint only: the walk that uses it (<see cref="RemoteListWalk.CountByChains"/>) checks that every chain
    /// ends where its hint says; what it reads at a hint lies inside the superslab, as for a link.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool TryChainEndOf(SlabMeta* s, void* head, out void* last)
    {
        last = null;
        if (((nuint)head & 15) != 0) return false;
        nuint stored = ((nuint*)head)[1];
        nuint decoded = SlabOptions.Hardened ? stored ^ s->Key : stored;
        last = (void*)decoded;
        return ((decoded ^ (nuint)head) >> Geometry.SuperslabShift) == 0 && (decoded & 15) == 0;
    }

    /// <summary>Stores the link to <paramref name="next"/> in free block <paramref name="block"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void SetNext(SlabMeta* s, void* block, void* next) =>
        *(nuint*)block = SlabOptions.Hardened ? (nuint)next ^ s->Key : (nuint)next;

    /// <summary>True if the slab has blocks that were never handed out. Holder only.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool HasFresh(SlabMeta* s) => s->Carved < s->Capacity;

    /// <summary>The next block that was never handed out, counted as handed out from now on (the caller hands
    /// it out). The slab must have one (<see cref="HasFresh"/>). Holder only.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void* TakeFresh(SlabMeta* s)
    {
        int index = s->Carved;
        // Raised before the block leaves this thread, so that a free of it from anywhere validates.
        Volatile.Write(ref s->Carved, index + 1);
        return s->Start + (nuint)index * s->BlockBytes;
    }

    /// <summary>True if other threads' frees wait in the slab's remote-free list (a moment-old answer).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool HasRemoteFrees(SlabMeta* s) => (Volatile.Read(ref s->ThreadFree) & ~StateMask) != 0;

    /// <summary>True if the slab has no block out: every block it handed out came back and was taken back
    /// by its holder, or it is an empty slab waiting in the pool, or no slab at all. A free of one of its
    /// blocks is then a double free. Any thread may ask; the answer is about the moment of the read.</summary>
    /// <remarks><see cref="Used"/> counts a block from its hand-out until its holder collects its free, so a
    /// block freed by another thread and not collected yet still counts as out.</remarks>
    public static bool HasNoBlockOut(SlabMeta* s)
    {
        // Acquire: a slab re-formatted since the caller validated the pointer is read with its new geometry
        // (Format releases Lifecycle last).
        var lifecycle = (SlabLifecycle)Volatile.Read(ref Unsafe.As<SlabLifecycle, byte>(ref s->Lifecycle));
        return lifecycle is SlabLifecycle.Empty or SlabLifecycle.Reserved or SlabLifecycle.Unused || Volatile.Read(ref s->Used) == 0;
    }

    /// <summary>
    /// Moves the remote-free list onto <see cref="Free"/> and leaves the state word at
    /// <paramref name="newState"/>; returns how many blocks came back. Holder only.
    /// </summary>
    /// <remarks>Exchange needs no CAS loop: only the holder leaves the state it holds, and remote
    /// pushers preserve the state bits, so whatever list is there now is taken whole. Popping a whole
    /// list by exchange has no ABA problem. The list is counted chain by chain, side by side
    /// (<see cref="RemoteListWalk.CountByChains"/>), so that the misses on blocks another core wrote last
    /// overlap; when its hints do not hold up, link by link. Either walk is bounded by the capacity, so a
    /// corrupted (cyclic) list is reported instead of looping.</remarks>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static int CollectRemote(SlabMeta* s, nint newState)
    {
        if (Volatile.Read(ref s->ThreadFree) == newState) return 0; // nothing to take, no state to change
        nint word = Interlocked.Exchange(ref s->ThreadFree, newState);
        void* head = (void*)(word & ~StateMask);
        if (head == null) return 0;
        int count = RemoteListWalk.CountByChains(s, head, out void* tail);
        if (count == 0) count = CountLinkByLink(s, head, out tail);
        SetNext(s, tail, s->Free);
        s->Free = head;
        s->Used -= count;
        return count;
    }

    /// <summary>Walks a remote-free list taken by the holder from its head, one link after the other: its length,
    /// its last block in <paramref name="tail"/>.</summary>
    /// <exception cref="InvalidOperationException">A link leaves the superslab (hardened), or the list is longer
    /// than the slab (a cycle or a double free).</exception>
    private static int CountLinkByLink(SlabMeta* s, void* head, out void* tail)
    {
        int count = 1;
        tail = head;
        for (void* next; (next = NextOf(s, tail)) != null; )
        {
            tail = next;
            if (++count > s->Capacity) ThrowHelper.ThrowCorruption("a slab's remote-free list is longer than the slab (a cycle or a double free)");
        }
        return count;
    }

    /// <summary>What a remote push found in the slab's remote-free list.</summary>
    public enum PushOutcome
    {
        /// <summary>Other frees were waiting already, or the slab is in a pool list.</summary>
        Added,
        /// <summary>The first free waiting in a slab a thread owns: its owner may want to know.</summary>
        FirstOfOwned,
        /// <summary>The first free block of a detached (full, unlisted) slab: the caller must publish the
        /// slab to the pool's partial list.</summary>
        FirstOfDetached,
    }

    /// <summary>Pushes one block freed by a thread that does not own the slab.</summary>
    public static PushOutcome PushRemote(SlabMeta* s, void* block) => PushRemote(s, block, block);

    /// <summary>Pushes a chain of blocks freed by threads that do not own the slab, linked from
    /// <paramref name="head"/> to <paramref name="tail"/> (the same block for one), with one CAS.</summary>
    public static PushOutcome PushRemote(SlabMeta* s, void* head, void* tail)
    {
        // The chain's last block, in the second word of its first (every block has two): what lets the holder
        // read a long list's chains side by side (TryChainEndOf). Encoded as the links are. Written once, before
        // the CAS that publishes the chain (a full fence), and read only by the holder after its exchange took the
        // list: no thread writes it while the chain is on the list, since the chain's blocks are nobody else's
        // (a double free racing the holder is the caller's error, for the hint as for the links).
        ((nuint*)head)[1] = SlabOptions.Hardened ? (nuint)tail ^ s->Key : (nuint)tail;
        while (true)
        {
            nint word = Volatile.Read(ref s->ThreadFree);
            nint state = word & StateMask;
            SetNext(s, tail, (void*)(word & ~StateMask));
            nint next = (nint)head | (state == StateDetached ? StateQueued : state);
            // Loses to another push or to the holder's exchange; both leave a consistent word to retry on.
            // ABA on the head is harmless: a push depends only on the current head value.
            if (Interlocked.CompareExchange(ref s->ThreadFree, next, word) == word)
            {
                if (state == StateDetached) return PushOutcome.FirstOfDetached;
                return state == StateOwned && (word & ~StateMask) == 0 ? PushOutcome.FirstOfOwned : PushOutcome.Added;
            }
        }
    }

    /// <summary>How the holder let a slab go.</summary>
    public enum LetGoResult { Detached, Queued, Empty }

    /// <summary>
    /// Called by the holder to give the slab up. Collects every free block first; then an empty
    /// slab is reported <see cref="LetGoResult.Empty"/> (state Queued: the caller puts it on the
    /// empty list or releases it), a slab with free blocks <see cref="LetGoResult.Queued"/> (the caller
    /// publishes it to the partial list), and a full slab becomes Detached, in no list, until a remote
    /// free publishes it.
    /// </summary>
    public static LetGoResult LetGo(SlabMeta* s)
    {
        Volatile.Write(ref *(nint*)&s->Owner, 0);
        while (true)
        {
            CollectRemote(s, StateOwned);
            if (s->Used == 0)
            {
                // No block is out, so no remote push can arrive: a plain write is enough.
                Volatile.Write(ref s->ThreadFree, StateQueued);
                SlabInvariants.Counts(s);
                return LetGoResult.Empty;
            }
            if (s->Free != null || s->SetAside != null || s->Carved < s->Capacity)
            {
                SetStatePreservingList(s, StateQueued);
                SlabInvariants.Counts(s);
                return LetGoResult.Queued;
            }
            // Full: detach only if no remote free slipped in since the collection above. The lifecycle is
            // written first: once detached, the next remote free publishes the slab and another thread may
            // take it, so a write after the CAS could land on a slab that is no longer ours. If the CAS
            // fails, the caller's next step (publish or release) writes the lifecycle again.
            s->Lifecycle = SlabLifecycle.Full;
            if (Interlocked.CompareExchange(ref s->ThreadFree, StateDetached, StateOwned) == StateOwned)
                return LetGoResult.Detached;
        }
    }

    /// <summary>Takes exclusive ownership of a slab popped from a pool list (state Queued).</summary>
    public static void Adopt(SlabMeta* s, void* owner)
    {
        CollectRemote(s, StateOwned);
        s->Owner = owner;
    }

    private static void SetStatePreservingList(SlabMeta* s, nint state)
    {
        while (true)
        {
            nint word = Volatile.Read(ref s->ThreadFree);
            // Loses only to a remote push, which changed the head; retry keeps the new head.
            if (Interlocked.CompareExchange(ref s->ThreadFree, (word & ~StateMask) | state, word) == word) return;
        }
    }
}
