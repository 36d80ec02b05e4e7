namespace SlabAlloc.Memory;

/// <summary>Where a slab is in its life. Read by the statistics, and by a remote free's validation,
/// which rejects a free into a slab that is empty, reserved or unused (<see cref="SlabMeta.HasNoBlockOut"/>;
/// a format writes it last). The hand-over protocol itself runs on <see cref="SlabMeta.ThreadFree"/> and the
/// superslab's free-slot mask.</summary>
internal enum SlabLifecycle : byte
{
    /// <summary>The slot is not part of any slab (its bit is set in the superslab's free-slot mask).</summary>
    Unused = 0,
    /// <summary>A thread cache allocates from it.</summary>
    Owned = 1,
    /// <summary>All its blocks were handed out when its owner let it go; no thread owns it, it is in no list.</summary>
    Full = 2,
    /// <summary>In its class's partial list, waiting to be adopted; some blocks are free.</summary>
    Partial = 3,
    /// <summary>In its class's empty list: every block is free.</summary>
    Empty = 4,
    /// <summary>In the pool's shared reserve: every block is free, and any one-slot class may re-format it.
    /// Its class is the one it was last formatted for.</summary>
    Reserved = 5,
}
