using System.Runtime.InteropServices;

namespace SlabAlloc.Support;

/// <summary>
/// A bounded, lock-free, multi-producer multi-consumer FIFO queue of references that allocates
/// nothing after construction: a ring of cells, each stamped with a sequence number.
/// </summary>
/// <remarks>
/// <para><b>The protocol.</b> <c>_tail</c> and <c>_head</c> count every enqueue and dequeue ever
/// claimed (64-bit, never wrapping in practice: 2^63 operations). Cell <c>i</c> of the ring serves the
/// positions <c>p</c> with <c>p &amp; mask == i</c>, one lap at a time; its <c>Sequence</c> says which
/// operation it is waiting for: <c>p</c> (free, waiting for the enqueue of position <c>p</c>) or
/// <c>p + 1</c> (holding the item of position <c>p</c>, waiting for its dequeue). A producer claims
/// position <c>p</c> by CAS on <c>_tail</c> only after it saw the cell at <c>Sequence == p</c>, writes
/// the item, and publishes it with a release store of <c>p + 1</c>; a consumer claims position
/// <c>p</c> by CAS on <c>_head</c> only after it saw <c>Sequence == p + 1</c> (acquire, so the item
/// is visible), takes the item, and frees the cell for the next lap with a release store of
/// <c>p + capacity</c>.</para>
/// <para><b>Why ABA cannot happen.</b> Both CASes compare 64-bit counters that only grow, so a
/// counter never returns to a value a stalled thread read; a cell's sequence only grows too, and a
/// thread acts on a cell only when the sequence equals the one value that belongs to the position it
/// claims. A thread delayed between reading a sequence and its CAS either wins the CAS (no one else
/// took that position, and the cell can have moved on to no other lap because that lap's position
/// is beyond the counter) or loses it and reads again.</para>
/// <para><b>Full and empty.</b> <see cref="TryEnqueue"/> returns false when the producer would lap a
/// cell whose item has not been dequeued yet, <see cref="TryDequeue(out T)"/> when the cell of the next
/// position holds nothing yet. Neither waits; <see cref="Count"/> is a moment-old estimate.</para>
/// </remarks>
internal sealed class BoundedQueue<T> where T : class
{
    private struct Cell
    {
        public long Sequence;
        public T? Item;
    }

    private readonly Cell[] _cells;
    private readonly long _mask;
    private BoundedQueueCounters _counters;

    /// <param name="capacity">The most items held at once, a power of two of at least 2.</param>
    public BoundedQueue(int capacity)
    {
        if (capacity < 2 || (capacity & (capacity - 1)) != 0)
            throw new ArgumentOutOfRangeException(nameof(capacity), capacity, "The capacity must be a power of two of at least 2.");
        _cells = new Cell[capacity];
        for (int i = 0; i < capacity; i++) _cells[i].Sequence = i;
        _mask = capacity - 1;
    }

    /// <summary>The most items the queue holds.</summary>
    public int Capacity => _cells.Length;

    /// <summary>Items enqueued and not yet dequeued, at about the moment of the call (never negative).</summary>
    public int Count => (int)Math.Clamp(Volatile.Read(ref _counters.Tail) - Volatile.Read(ref _counters.Head), 0, _cells.Length);

    /// <summary>Adds <paramref name="item"/> at the tail; false when the queue is full.</summary>
    public bool TryEnqueue(T item)
    {
        long position = Volatile.Read(ref _counters.Tail);
        while (true)
        {
            ref Cell cell = ref _cells[position & _mask];
            // Acquire: pairs with the consumer's release of this cell for this lap.
            long difference = Volatile.Read(ref cell.Sequence) - position;
            if (difference == 0)
            {
                // Claims the position; loses only to another producer, which took it.
                long seen = Interlocked.CompareExchange(ref _counters.Tail, position + 1, position);
                if (seen == position)
                {
                    cell.Item = item;
                    Volatile.Write(ref cell.Sequence, position + 1); // release: the item before the stamp
                    return true;
                }
                position = seen;
            }
            else if (difference < 0) return false; // the cell still holds the previous lap's item: full
            else position = Volatile.Read(ref _counters.Tail); // another producer went past: catch up
        }
    }

    /// <summary>Takes the item at the head; false when the queue is empty.</summary>
    public bool TryDequeue(out T? item) => TryDequeue(out item, keepBehind: 0);

    /// <summary>Takes the item at the head only if at least <paramref name="keepBehind"/> enqueues were
    /// claimed after it; false otherwise or when the queue is empty.</summary>
    /// <remarks>The condition is checked for the very position about to be claimed, before the CAS that
    /// claims it. The tail only grows, so it still holds when the CAS succeeds: however many consumers
    /// race, none takes an item with fewer than <paramref name="keepBehind"/> enqueued after it.</remarks>
    public bool TryDequeue(out T? item, long keepBehind)
    {
        long position = Volatile.Read(ref _counters.Head);
        while (true)
        {
            if (Volatile.Read(ref _counters.Tail) - position <= keepBehind)
            {
                item = null; // fewer than keepBehind claimed behind this position (or nothing at all)
                return false;
            }
            ref Cell cell = ref _cells[position & _mask];
            // Acquire: pairs with the producer's release, so the item it wrote is visible.
            long difference = Volatile.Read(ref cell.Sequence) - (position + 1);
            if (difference == 0)
            {
                // Claims the position; loses only to another consumer, which took it.
                long seen = Interlocked.CompareExchange(ref _counters.Head, position + 1, position);
                if (seen == position)
                {
                    item = cell.Item;
                    cell.Item = null; // the queue keeps no reference to what it gave out
                    Volatile.Write(ref cell.Sequence, position + _mask + 1); // release: the cell, free for the next lap
                    return true;
                }
                position = seen;
            }
            else if (difference < 0)
            {
                item = null; // nothing published at this position yet: empty
                return false;
            }
            else position = Volatile.Read(ref _counters.Head); // another consumer went past: catch up
        }
    }
}

/// <summary>The two counters of a <see cref="BoundedQueue{T}"/>, each on a cache line of its own (producers
/// and consumers are usually different threads). Outside the queue because a generic type cannot have an
/// explicit layout.</summary>
[StructLayout(LayoutKind.Explicit, Size = 192)]
internal struct BoundedQueueCounters
{
    [FieldOffset(64)] public long Tail;
    [FieldOffset(128)] public long Head;
}
