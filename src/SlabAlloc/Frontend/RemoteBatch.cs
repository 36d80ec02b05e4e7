using System.Runtime.CompilerServices;
using SlabAlloc.Memory;

namespace SlabAlloc.Frontend;

/// <summary>
/// Remote frees a thread holds back: blocks of one slab (<see cref="Slab"/>, 0 when there are none), linked
/// through their first word, newest first at <see cref="Head"/>, the oldest at <see cref="TailOffset"/>. A thread
/// keeps one such batch per size class (<see cref="ThreadCache.RemoteBatches"/>), so that frees of several
/// classes in turn each join their own class's batch instead of pushing one another's.
/// </summary>
/// <remarks>Written by its thread inside the batch handshake, or by a thread that claimed the thread's batches
/// (<c>SmallBlocks.EnterRemoteBatch</c>, <c>SmallBlocks.TryClaimRemoteBatch</c>). Its blocks count as freed for
/// the statistics and as out for their slab until the batch is pushed (<c>SmallBlocks.TryPushRemoteBatches</c>),
/// so the slab cannot be emptied, released or formatted again while it holds them.</remarks>
internal struct RemoteBatch
{
    /// <summary>The slab every block of the batch belongs to; 0 for an empty batch.</summary>
    public nint Slab;
    /// <summary>The newest block.</summary>
    public nint Head;
    /// <summary>The oldest block, whose link is null, as its offset from the slab's first block (the slab keeps its
    /// geometry while the batch holds blocks of it); an offset rather than a pointer keeps a thread cache within a page.</summary>
    public uint TailOffset;
    /// <summary>Blocks in the batch; read by the statistics.</summary>
    public int Count;
}

/// <summary>One <see cref="RemoteBatch"/> per size class.</summary>
[InlineArray(SizeClasses.Count)]
internal struct ClassRemoteBatches { private RemoteBatch _first; }
