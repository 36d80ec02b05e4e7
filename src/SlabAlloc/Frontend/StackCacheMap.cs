using System.Runtime.CompilerServices;
using SlabAlloc.Platform;

namespace SlabAlloc.Frontend;

/// <summary>
/// Finds the calling thread's heap from the address of its stack, without a thread-static access.
/// </summary>
/// <remarks>
/// <para><b>Why.</b> On linux-x64 a [ThreadStatic] read is a call into the C library's
/// <c>__tls_get_addr</c>; the call also clobbers the caller-saved registers, so the loop around it
/// spills. In a loop the JIT cannot hoist them from, the two thread-static reads of an alloc+free pair
/// cost about as much as the rest of the pair (docs/design-measurements.md, "Stack map"). A stack address is free: it is the
/// address of a local.</para>
/// <para><b>The map.</b> A table indexed by stack address in 64 KiB granules, modulo its size; each
/// entry names a heap (as an offset from the shared empty heap, so a zeroed entry names the empty
/// heap, which never vouches). An entry is only a candidate: several stacks can share an entry
/// (aliasing, or two stacks meeting inside one granule), and a stale entry can name the heap of a
/// dead thread. Entries are plain aligned words, written by the thread whose stack they cover and
/// read by anyone; any value read is some heap, and the check below decides.</para>
/// <para><b>The check.</b> Candidate heap <c>h</c> is the caller's heap iff its exit latch is armed
/// and the caller's stack address lies in <c>[h.StackLow, h.StackLow + h.StackBytes)</c>. Argument:
/// an armed latch means the thread T that armed it has not finished exiting, so T's stack is still
/// T's (the C library releases a stack only after the thread's key destructors ran, and the exit
/// latch is released by one of them). The stacks of threads that exist at the same time are
/// disjoint, so a caller whose stack address lies in T's stack is T.</para>
/// <para><b>Which range.</b> A heap's range is zeroed (<c>StackBytes = 0</c>) when the heap is
/// reclaimed. A new owner arms the latch first and only then writes its range, start before size
/// (release writes); a reader reads the latch, then the size (acquire), then the start. So a reader
/// that sees a non-zero size sees the start written with it, and while a previous owner that is still
/// exiting holds the latch, the new owner writes nothing (its trylock fails) and the size stays zero.
/// A reader never combines one owner's start with another's size.</para>
/// <para>The main thread's reported stack can take in other mappings (see
/// <see cref="ThreadStacks.TryGetCurrent"/>), so it is cut to the mapping that holds it. Threads
/// that would break the argument, and how each is handled: a second latch armed by one thread
/// (refused), a thread arming during the C library's last destructor round, and fork without exec
/// (both documented on <see cref="ThreadStacks"/>).</para>
/// <para><b>Misses</b> (an unregistered thread, an entry taken by another stack, a platform without
/// latches) fall back to the thread-static, which is always right, and re-point the entry at the
/// caller's heap.</para>
/// </remarks>
internal static unsafe class StackCacheMap
{
    private const int GranuleShift = 16;
    private const int EntryCount = 1 << 15; // 2 GiB of address space before entries alias
    private const nuint EntryMask = EntryCount - 1;

    /// <summary>The mask of the table index: 0 where the platform has no exit latches, so that every
    /// lookup reads the one entry there is (which names the empty heap and never vouches).</summary>
    private static readonly nuint s_entryMask = ThreadStacks.Supported ? EntryMask : 0;

    /// <summary>Entries: heap address minus the empty heap's address.</summary>
    private static readonly nint* s_entries = Reserve();

    /// <summary>The entry for stack address <paramref name="stackAddress"/>: a candidate, not an answer.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ThreadCache* Candidate(ThreadCache* emptyHeap, nuint stackAddress) =>
        (ThreadCache*)((nint)emptyHeap + s_entries[(stackAddress >> GranuleShift) & s_entryMask]);

    /// <summary>True if <paramref name="h"/> is the heap of the thread whose stack holds <paramref name="stackAddress"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool Vouches(ThreadCache* h, nuint stackAddress) =>
        // Latch, then size, then start: see remarks.
        ThreadStacks.IsArmed(&h->Latch) && Below(stackAddress, h);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool Below(nuint stackAddress, ThreadCache* h)
    {
        nuint bytes = Volatile.Read(ref h->StackBytes);
        return stackAddress - h->StackLow < bytes;
    }

    /// <summary>
    /// Registers the calling thread's heap <paramref name="h"/>: records the thread's stack range, arms
    /// the exit latch and points the entries of the stack at the heap. False when the latch is still
    /// held by the heap's previous owner (still exiting) or the platform has no stack ranges.
    /// </summary>
    public static bool TryRegister(ThreadCache* h, ThreadCache* emptyHeap)
    {
        if (!ThreadStacks.TryGetCurrent(out nuint low, out nuint bytes)) return false;
        // The range is written only once the latch is ours (a previous owner still exiting keeps it, and
        // its readers must not see a mix of its range and ours), start before size (see remarks).
        if (!ThreadStacks.TryArmExitLatch(&h->Latch)) return false;
        Volatile.Write(ref h->StackLow, low);
        Volatile.Write(ref h->StackBytes, bytes);
        // The top of the stack first: that is where frames are. A stack larger than the table covers it
        // all anyway, entries aliasing.
        nuint first = low >> GranuleShift, last = (low + bytes - 1) >> GranuleShift;
        if (last - first >= EntryCount) first = last - EntryCount + 1;
        for (nuint g = last; ; g--)
        {
            s_entries[g & s_entryMask] = (nint)h - (nint)emptyHeap;
            if (g == first) break;
        }
        return true;
    }

    /// <summary>After a miss by the owner of <paramref name="h"/>: points the entry of
    /// <paramref name="stackAddress"/> back at it if it is registered (another stack took the entry).</summary>
    public static void Repoint(ThreadCache* h, ThreadCache* emptyHeap, nuint stackAddress)
    {
        if (Vouches(h, stackAddress))
            s_entries[(stackAddress >> GranuleShift) & s_entryMask] = (nint)h - (nint)emptyHeap;
    }

    /// <summary>Makes <paramref name="h"/> vouch for no stack (its thread is gone; called when it is reclaimed).</summary>
    public static void Unregister(ThreadCache* h) => Volatile.Write(ref h->StackBytes, 0);

    private static nint* Reserve()
    {
        // Untouched pages of the mapping read as zero without taking memory. Where nothing can register,
        // one page holds the single entry the zero mask reads.
        nuint bytes = s_entryMask == 0 ? OsMemory.PageBytes : (nuint)EntryCount * (nuint)sizeof(nint);
        var entries = (nint*)OsMemory.Reserve(bytes, OsMemory.PageBytes);
        if (entries == null) throw new OutOfMemoryException("SlabAlloc could not start.");
        return entries;
    }
}
