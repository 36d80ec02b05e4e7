using System.Runtime.InteropServices;
using SlabAlloc.Memory;

namespace SlabAlloc.Large;

/// <summary>The record of one large block, in a <see cref="MetadataTable{T}"/> (never unmapped).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct LargeRecord
{
    /// <summary>The live block, which is also the start of its mapping; 0 while the record is free, its block
    /// is being allocated or being freed. Written by the allocating thread last, once the block's granules are
    /// registered, and taken back to 0 by the one CAS that frees the block.</summary>
    public nint Block;
    /// <summary>Bytes mapped for the block, a whole number of pages; valid while <see cref="Block"/> is set.</summary>
    public nuint MappedBytes;
}
