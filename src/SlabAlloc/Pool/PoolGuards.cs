using System.Runtime.CompilerServices;

namespace SlabAlloc.Pool;

/// <summary>The two code paths of the shared pool that a guard protects (and the lock statistics count separately).</summary>
internal enum PoolPath
{
    /// <summary>Getting a slab for a thread cache (stages 1-3).</summary>
    AcquireSlab = 0,
    /// <summary>Taking a slab back: publishing a partial slab, keeping or releasing an empty one, trimming.</summary>
    ReleaseSlab = 1,
}

/// <summary>
/// How <see cref="SharedSlabPool{TGuard}"/> synchronizes: a struct type parameter, so the JIT compiles
/// one copy of the pool per guard and the no-lock guard costs nothing at all.
/// </summary>
internal interface IPoolGuard
{
    void Enter(PoolPath path);
    void Exit();
}

/// <summary>The lock-free pool's guard: no lock; every shared structure is updated by CAS.</summary>
internal readonly struct NoLock : IPoolGuard
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public void Enter(PoolPath path) { }
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public void Exit() { }
}

/// <summary>The baseline's guard: one coarse adaptive mutex around every pool operation.</summary>
internal readonly struct CoarseLock(AdaptiveMutex mutex) : IPoolGuard
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public void Enter(PoolPath path) => mutex.Enter(path);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public void Exit() => mutex.Exit();
}
