namespace SlabAlloc;

/// <summary>
/// A block of a <see cref="SharedHeap"/>: its offset from the start of the shared region, which is the same in
/// every process that opens the heap, and the length of the message or data it carries.
/// </summary>
/// <param name="Offset">Bytes from the start of the region; what another process needs to find the block.</param>
/// <param name="Length">The bytes in use, at most the block's capacity.</param>
public readonly record struct SharedBlock(long Offset, int Length);
