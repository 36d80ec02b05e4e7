using System.Numerics;
using System.Runtime.CompilerServices;
using SlabAlloc.Platform;

namespace SlabAlloc.Memory;

/// <summary>
/// A table of metadata entries of type <typeparamref name="T"/>, one per 32-bit index, grown without a
/// lock and never moved, shrunk or unmapped: any thread may read any entry whose index it ever saw, at
/// any time, even one freed and reused since. This is what lets validation and the lock-free lists read
/// metadata that another thread may be releasing at the same moment. The superslab directory and the
/// large-block records are the two tables.
/// </summary>
/// <remarks>
/// <para>Entries sit in segments of <see cref="EntriesPerSegment"/>, mapped on demand, each followed by one
/// link cell per entry for the <see cref="TaggedIndexStack"/>s that hold indices of the table (an index is
/// on at most one such stack at a time). The table of segment pointers is reserved once, whole, at start-up
/// and touched a page at a time. Growth is "claim the next index with a CAS on the count, after making
/// sure its segment exists": a segment is installed by CAS into an empty cell, and a thread that loses
/// that race returns its own segment, so no lock and no realloc is ever needed and no reader can see an
/// entry move.</para>
/// <para>Freed indices go on a <see cref="TaggedIndexStack"/> and are handed out again before the count
/// grows, so a table is bounded by the peak number of entries in use at once. A fresh entry is zeroed; a
/// reused one keeps what its last user left.</para>
/// </remarks>
internal static unsafe class MetadataTable<T> where T : unmanaged
{
    /// <summary>Segments the table can have; the table of their pointers is reserved at start-up.</summary>
    public const int MaxSegments = 16384;

    /// <summary>log2 of the entries per segment: 64 entries, or a page's worth of small ones.</summary>
    private static readonly int SegmentShift = BitOperations.Log2((uint)Math.Max(64, 4096 / sizeof(T)));

    /// <summary>Entries per segment.</summary>
    public static readonly int EntriesPerSegment = 1 << SegmentShift;

    /// <summary>Indices the table can hand out.</summary>
    public static readonly uint MaxEntries = (uint)MaxSegments << SegmentShift;

    private static readonly nuint LinksOffset = (nuint)(EntriesPerSegment * sizeof(T));
    private static readonly nuint SegmentBytes = OsMemory.RoundUpToPages(LinksOffset + (nuint)(EntriesPerSegment * sizeof(int)));
    /// <summary>The table of segment pointers: reserved by the first <see cref="TryAllocateIndex(out uint, ref int)"/>
    /// (so that refusing it is an out-of-memory like any other), installed by CAS, then never changed.</summary>
    private static nint s_segments;

    private static int s_count;
    private static int s_segmentCount;
    private static TaggedIndexStack s_freeIndices;

    /// <summary>The link cells of the table's indices, for a <see cref="TaggedIndexStack"/> of them.</summary>
    public readonly struct Links : IIndexLinks
    {
        public int* LinkOf(uint index) => MetadataTable<T>.LinkOf(index);
    }

    /// <summary>Number of indices ever handed out; entries [0, Count) exist.</summary>
    public static int Count => Volatile.Read(ref s_count);

    /// <summary>Bytes of segments mapped.</summary>
    public static long MappedBytes => (long)Volatile.Read(ref s_segmentCount) * (long)SegmentBytes;

    /// <summary>The entry at <paramref name="index"/>, which must be below <see cref="Count"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static T* Entry(uint index) => (T*)Segment(index) + (index & (uint)(EntriesPerSegment - 1));

    /// <summary>The link cell of <paramref name="index"/> (see <see cref="Links"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int* LinkOf(uint index) => (int*)(Segment(index) + LinksOffset) + (index & (uint)(EntriesPerSegment - 1));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static byte* Segment(uint index) => (byte*)Volatile.Read(ref *(nint*)&((byte**)Volatile.Read(ref s_segments))[index >> SegmentShift]);

    /// <summary>Hands out an index, a freed one first, adding failed CAS attempts to
    /// <paramref name="failures"/>. False when out of memory or out of indices.</summary>
    public static bool TryAllocateIndex(out uint index, ref int failures)
    {
        if (s_freeIndices.TryPop(out index, default(Links), ref failures)) return true;
        if (!EnsureSegmentTable()) { index = 0; return false; }
        for (; ; failures++)
        {
            int candidate = Volatile.Read(ref s_count);
            if ((uint)candidate >= MaxEntries || !EnsureSegment(candidate >> SegmentShift)) { index = 0; return false; }
            // Loses to another grower that took this index; retry with the next one.
            if (Interlocked.CompareExchange(ref s_count, candidate + 1, candidate) == candidate)
            {
                index = (uint)candidate;
                return true;
            }
        }
    }

    /// <inheritdoc cref="TryAllocateIndex(out uint, ref int)"/>
    public static bool TryAllocateIndex(out uint index)
    {
        int failures = 0;
        return TryAllocateIndex(out index, ref failures);
    }

    /// <summary>Returns an index for reuse; the caller no longer uses it.</summary>
    public static void FreeIndex(uint index) => s_freeIndices.Push(index, default(Links));

    private static bool EnsureSegment(int segment)
    {
        var segments = (byte**)Volatile.Read(ref s_segments);
        if (Volatile.Read(ref *(nint*)&segments[segment]) != 0) return true;
        var fresh = (byte*)OsMemory.Reserve(SegmentBytes, OsMemory.PageBytes);
        if (fresh == null) return false;
        // Publishes the zeroed segment. Loses to another grower installing the same segment; the cell goes
        // from null to a segment once and never back, so there is no ABA.
        if (Interlocked.CompareExchange(ref *(nint*)&segments[segment], (nint)fresh, 0) != 0)
            OsMemory.Release(fresh, SegmentBytes);
        else
            Interlocked.Increment(ref s_segmentCount);
        return true;
    }

    private static bool EnsureSegmentTable()
    {
        if (Volatile.Read(ref s_segments) != 0) return true;
        nuint bytes = OsMemory.RoundUpToPages((nuint)(MaxSegments * sizeof(nint)));
        void* table = OsMemory.Reserve(bytes, OsMemory.PageBytes);
        if (table == null) return false;
        // Loses to another thread installing the table first; the field goes from null to a table once.
        if (Interlocked.CompareExchange(ref s_segments, (nint)table, 0) != 0) OsMemory.Release(table, bytes);
        return true;
    }
}
