using System.Runtime.CompilerServices;

namespace SlabAlloc.Memory;

/// <summary>
/// The metadata directory: one <see cref="SuperslabEntry"/> per superslab index, in a
/// <see cref="MetadataTable{T}"/>, so an entry is never moved or unmapped and any thread may read it at
/// any time, even one whose superslab was just returned to the system.
/// </summary>
/// <remarks>An index stays with its superslab's address range for good: a returned superslab's range is
/// kept, empty, for the next superslab (see <see cref="Superslabs"/>), so the directory only grows, to the
/// peak number of superslabs mapped at once.</remarks>
internal static unsafe class SuperslabDirectory
{
    /// <summary>Number of indices ever handed out; entries [0, Count) exist.</summary>
    public static int Count => MetadataTable<SuperslabEntry>.Count;

    /// <summary>Bytes of directory segments mapped.</summary>
    public static long MappedBytes => MetadataTable<SuperslabEntry>.MappedBytes;

    /// <summary>The entry at <paramref name="index"/>, which must be below <see cref="Count"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static SuperslabEntry* Entry(uint index) => MetadataTable<SuperslabEntry>.Entry(index);

    /// <summary>A new entry index, adding failed CAS attempts to <paramref name="failures"/>. False when out of memory.</summary>
    public static bool TryAddIndex(out uint index, ref int failures) => MetadataTable<SuperslabEntry>.TryAllocateIndex(out index, ref failures);
}
