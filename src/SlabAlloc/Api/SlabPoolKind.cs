namespace SlabAlloc;

/// <summary>Which shared slab pool serves thread-cache misses (<c>SLABALLOC_POOL</c>).</summary>
public enum SlabPoolKind
{
    /// <summary>The lock-free pool: CAS stacks per size class, CAS slot claiming, lock-free directory growth.</summary>
    LockFree,
    /// <summary>The baseline: the same three stages and release path under one coarse adaptive mutex.</summary>
    Mutex,
}
