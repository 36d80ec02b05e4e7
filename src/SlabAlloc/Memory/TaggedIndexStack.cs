using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace SlabAlloc.Memory;

/// <summary>Where a <see cref="TaggedIndexStack"/> keeps the link of each index.</summary>
/// <remarks>The links must live in memory that is never unmapped (the superslab directory),
/// because a popper may read the link of an index that another thread popped a moment ago.</remarks>
internal interface IIndexLinks
{
    /// <summary>The link cell of <paramref name="index"/>: the next index plus one, 0 for none.</summary>
    unsafe int* LinkOf(uint index);
}

/// <summary>
/// A lock-free LIFO stack (Treiber stack) of 32-bit indices, ABA-safe without a 128-bit CAS.
/// </summary>
/// <remarks>
/// <para>The head is one 64-bit word: the low 32 bits hold the top index plus one (0 = empty),
/// the high 32 bits a version that every successful push and pop increments.</para>
/// <para><b>Why it is ABA-safe.</b> The classic failure: thread A reads head = X with X.next = Y and
/// is preempted; B pops X, pops Y, pushes X back; A's CAS(head: X → Y) would succeed and put the
/// popped Y back on top. Here B's three operations advance the version by three, so A's
/// compare-exchange of the full word fails and A retries with a fresh head. A false success
/// needs exactly 2^32 successful operations between A's read and A's CAS.</para>
/// <para><b>Why a stale link read is harmless.</b> A popper reads the link of the index it saw on
/// top; meanwhile the index may be popped and pushed elsewhere so the link changes. The read is
/// from directory memory that is never freed, so it cannot fault, and the value is used only if
/// the CAS proves the head (and so the version) did not move since it was read.</para>
/// <para><b>Ordering.</b> Interlocked operations are full fences: everything the pusher wrote to the
/// entry before <see cref="Push"/> is visible to the thread whose pop returns it.</para>
/// The struct is padded to a cache line so that neighbouring stacks in an array do not falsely share.
/// </remarks>
[StructLayout(LayoutKind.Explicit, Size = 64)]
internal struct TaggedIndexStack
{
    [FieldOffset(0)] private long _head;

    private const long IndexMask = 0xFFFF_FFFF;
    private const long VersionOne = 1L << 32;

    /// <summary>True when the stack was empty at the moment of the read.</summary>
    public readonly bool IsEmpty => (Volatile.Read(in _head) & IndexMask) == 0;

    /// <summary>Pushes <paramref name="index"/>; the caller owns it exclusively until then.</summary>
    /// <returns>How many CAS attempts failed (contention), for statistics.</returns>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public unsafe int Push<TLinks>(uint index, TLinks links) where TLinks : struct, IIndexLinks
    {
        int* link = links.LinkOf(index);
        for (int failures = 0; ; failures++)
        {
            long head = Volatile.Read(ref _head);
            *link = (int)(head & IndexMask);
            long next = ((head & ~IndexMask) + VersionOne) | (index + 1L);
            // Loses only to another push or pop that moved the head; retry from the new head.
            if (Interlocked.CompareExchange(ref _head, next, head) == head) return failures;
        }
    }

    /// <summary>Pushes a chain the caller owns exclusively: <paramref name="first"/> to <paramref name="last"/>,
    /// already linked through the links (each cell holding the next index plus one). Only the link of
    /// <paramref name="last"/> is written here.</summary>
    public unsafe void PushChain<TLinks>(uint first, uint last, TLinks links) where TLinks : struct, IIndexLinks
    {
        int* link = links.LinkOf(last);
        while (true)
        {
            long head = Volatile.Read(ref _head);
            *link = (int)(head & IndexMask);
            long next = ((head & ~IndexMask) + VersionOne) | (first + 1L);
            // Loses only to another push or pop that moved the head; retry from the new head.
            if (Interlocked.CompareExchange(ref _head, next, head) == head) return;
        }
    }

    /// <summary>Empties the stack in one step and returns its former top index plus one (0 when it was
    /// empty); the chain below it, still linked, is the caller's.</summary>
    public uint TakeAll()
    {
        while (true)
        {
            long head = Volatile.Read(ref _head);
            if ((head & IndexMask) == 0) return 0;
            // Bumping the version makes every pop that read the old head fail, so the chain is taken whole.
            if (Interlocked.CompareExchange(ref _head, (head & ~IndexMask) + VersionOne, head) == head)
                return (uint)(head & IndexMask);
        }
    }

    /// <summary>The top index plus one at the moment of the read (0 when empty), for a walk that only
    /// reads while no other thread can change the stack.</summary>
    public readonly uint PeekTopPlusOne() => (uint)(Volatile.Read(in _head) & IndexMask);

    /// <summary>Pops the top index, which the caller then owns exclusively.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryPop<TLinks>(out uint index, TLinks links) where TLinks : struct, IIndexLinks
    {
        int failures = 0;
        return TryPop(out index, links, ref failures);
    }

    /// <summary>Pops the top index, adding the number of failed CAS attempts to <paramref name="failures"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryPop<TLinks>(out uint index, TLinks links, ref int failures) where TLinks : struct, IIndexLinks
    {
        while (true)
        {
            PopAttempt attempt = BeginPop(links);
            if (attempt.IsEmpty) { index = 0; return false; }
            if (TryCompletePop(attempt, out index)) return true;
            failures++;
        }
    }

    /// <summary>The first half of a pop: reads the head and the link of the top index.
    /// Split from <see cref="TryCompletePop"/> so that tests can stall a popper between the two,
    /// exactly where the ABA race strikes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal unsafe PopAttempt BeginPop<TLinks>(TLinks links) where TLinks : struct, IIndexLinks
    {
        long head = Volatile.Read(ref _head);
        uint top = (uint)(head & IndexMask);
        if (top == 0) return new PopAttempt(head, 0);
        // May be stale (see remarks); used only if the CAS in TryCompletePop proves it is not.
        int nextPlusOne = Volatile.Read(ref *links.LinkOf(top - 1));
        return new PopAttempt(head, ((head & ~IndexMask) + VersionOne) | (uint)nextPlusOne);
    }

    /// <summary>The second half of a pop: succeeds only if the head has not changed since
    /// <see cref="BeginPop"/>, version included.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal bool TryCompletePop(PopAttempt attempt, out uint index)
    {
        // Loses to any push or pop since BeginPop (the version moved), which is what defeats ABA.
        if (Interlocked.CompareExchange(ref _head, attempt.Next, attempt.Head) == attempt.Head)
        {
            index = (uint)(attempt.Head & IndexMask) - 1;
            return true;
        }
        index = 0;
        return false;
    }

    /// <summary>A head and the head that popping it would leave.</summary>
    internal readonly record struct PopAttempt(long Head, long Next)
    {
        public bool IsEmpty => (Head & IndexMask) == 0;
    }
}
