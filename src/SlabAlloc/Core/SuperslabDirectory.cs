using System.Runtime.CompilerServices;
using SlabAlloc.Platform;

namespace SlabAlloc.Core;

/// <summary>
/// The metadata directory: one <see cref="SuperslabEntry"/> per superslab index, grown without a
/// lock and without ever moving or freeing an entry.
/// </summary>
/// <remarks>
/// <para>Entries sit in segments of <see cref="EntriesPerSegment"/>, mapped on demand; the table of
/// segment pointers is reserved once, whole, at start-up (128 KiB of address space, touched a page at
/// a time). Growth is "claim the next index with a CAS on the count, after making sure its segment
/// exists": a segment is installed by CAS into an empty cell, and a thread that loses that race
/// returns its own segment, so no lock and no realloc is ever needed and no reader can see an entry
/// move.</para>
/// <para>Indices of retired superslabs go on a <see cref="TaggedIndexStack"/> and are reused
/// before the count grows, so the directory is bounded by the peak number of live superslabs.</para>
/// </remarks>
internal static unsafe class SuperslabDirectory
{
    public const int SegmentShift = 6;
    public const int EntriesPerSegment = 1 << SegmentShift;
    public const int MaxSegments = 16384;
    public const uint MaxEntries = (uint)MaxSegments * EntriesPerSegment;

    private static readonly nuint SegmentBytes = OsMemory.RoundUpToPages((nuint)(EntriesPerSegment * sizeof(SuperslabEntry)));
    private static readonly SuperslabEntry** s_segments = ReserveSegmentTable();

    private static int s_count;
    private static int s_segmentCount;
    private static TaggedIndexStack s_freeIndices;

    private struct FreeIndexLinks : IIndexLinks
    {
        public int* LinkOf(uint index) => &Entry(index)->FreeIndexLink;
    }

    /// <summary>Number of indices ever handed out; entries [0, Count) exist.</summary>
    public static int Count => Volatile.Read(ref s_count);

    /// <summary>Bytes of directory segments mapped.</summary>
    public static long MappedBytes => (long)Volatile.Read(ref s_segmentCount) * (long)SegmentBytes;

    /// <summary>The entry at <paramref name="index"/>, which must be below <see cref="Count"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static SuperslabEntry* Entry(uint index) =>
        (SuperslabEntry*)Volatile.Read(ref *(nint*)&s_segments[index >> SegmentShift]) + (index & (EntriesPerSegment - 1));

    /// <summary>Hands out an entry index, reusing a retired one first. False when out of memory.</summary>
    public static bool TryAllocateIndex(out uint index)
    {
        int failures = 0;
        return TryAllocateIndex(out index, ref failures);
    }

    /// <summary>Hands out an entry index, adding failed CAS attempts to <paramref name="failures"/>.</summary>
    public static bool TryAllocateIndex(out uint index, ref int failures)
    {
        if (s_freeIndices.TryPop(out index, default(FreeIndexLinks), ref failures)) return true;
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

    /// <summary>Returns the index of a retired superslab for reuse.</summary>
    public static void FreeIndex(uint index) => s_freeIndices.Push(index, default(FreeIndexLinks));

    private static bool EnsureSegment(int segment)
    {
        if (Volatile.Read(ref *(nint*)&s_segments[segment]) != 0) return true;
        var fresh = (SuperslabEntry*)OsMemory.Reserve(SegmentBytes, OsMemory.PageBytes);
        if (fresh == null) return false;
        // Publishes the zeroed segment; a zero FreeMask means nothing in it can be claimed yet.
        if (Interlocked.CompareExchange(ref *(nint*)&s_segments[segment], (nint)fresh, 0) != 0)
            OsMemory.Release(fresh, SegmentBytes); // another thread installed it first
        else
            Interlocked.Increment(ref s_segmentCount);
        return true;
    }

    private static SuperslabEntry** ReserveSegmentTable()
    {
        void* table = OsMemory.Reserve(OsMemory.RoundUpToPages((nuint)(MaxSegments * sizeof(nint))), OsMemory.PageBytes);
        if (table == null) throw new OutOfMemoryException("SlabAlloc could not reserve its superslab directory.");
        return (SuperslabEntry**)table;
    }
}
