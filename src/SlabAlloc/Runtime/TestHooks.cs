using SlabAlloc.Frontend;
using SlabAlloc.Memory;
using SlabAlloc.Platform;
using SlabAlloc.Pool;
using SlabAlloc.Support;
using SlabAlloc.Telemetry;

namespace SlabAlloc.Runtime;

/// <summary>
/// Every hook the test suite and its probe host use to steer or observe the allocator, in one place.
/// Nothing in the product calls these; the state behind them lives in the layer it belongs to, and
/// each hook says what it touches. The tests reach the allocator's internals otherwise only to read
/// (the statistics, a slab's metadata) or to drive one structure on its own (a stack, a table).
/// </summary>
internal static unsafe class TestHooks
{
    /// <summary>Waits until the start-up thread (warm-up, meter, upkeep) has finished: for tests that
    /// count blocks exactly from a quiet start.</summary>
    internal static void WaitForStartUp() => StartUp.WaitUntilDone();

    /// <summary>Stops the upkeep's passes until <see cref="ResumeUpkeep"/> (nested); a pass in flight
    /// finishes first. For tests that count the pool's lists or the thread-cache records exactly.</summary>
    internal static void SuspendUpkeep() => UpkeepPass.Suspend();

    /// <inheritdoc cref="SuspendUpkeep"/>
    internal static void ResumeUpkeep() => UpkeepPass.Resume();

    /// <summary>The pool's decay interval and the upkeep's period, in ms (<see cref="AdjustableSettings.DecayMs"/>).</summary>
    internal static int DecayMs
    {
        get => Volatile.Read(ref AdjustableSettings.DecayMs);
        set => Volatile.Write(ref AdjustableSettings.DecayMs, value);
    }

    /// <summary>The most bytes mapped from the system, 0 for no limit (<see cref="AdjustableSettings.MappingLimitBytes"/>).</summary>
    internal static long MappingLimitBytes
    {
        get => Volatile.Read(ref AdjustableSettings.MappingLimitBytes);
        set => Volatile.Write(ref AdjustableSettings.MappingLimitBytes, value);
    }

    /// <summary>Makes the <paramref name="n"/>-th reservation from the system from now on (1 = the next), and
    /// every one after it, fail, until <see cref="StopFailingReservations"/> (<see cref="FaultInjector"/>).</summary>
    internal static void FailReservationsFrom(long n) => FaultInjector.FailFrom(n);

    /// <inheritdoc cref="FailReservationsFrom"/>
    internal static void StopFailingReservations() => FaultInjector.Disarm();

    /// <summary>Reservations refused by <see cref="FailReservationsFrom"/> since start-up.</summary>
    internal static long ReservationsRefused => FaultInjector.Failures;

    /// <summary>How old a meter snapshot may be and still serve another instrument (<see cref="SlabMeter.MaxAge"/>).</summary>
    internal static TimeSpan MeterSnapshotMaxAge
    {
        get => SlabMeter.MaxAge;
        set => SlabMeter.MaxAge = value;
    }

    /// <summary>Meter snapshots built, and instrument callbacks run, since start-up.</summary>
    internal static (long Snapshots, long Callbacks) MeterWork => (SlabMeter.SnapshotsTaken, SlabMeter.CallbackInvocations);

    /// <summary>The calling thread's cache as the stack map finds it, or null when the map does not vouch.</summary>
    internal static ThreadCache* CacheVouchedByStackMap() => SmallBlocks.HeapVouchedByStackMap();

    /// <summary>The calling thread's cache from its thread-static, or null before the thread attached.</summary>
    internal static ThreadCache* CacheOfCallingThread() => SmallBlocks.HeapOfCallingThread();

    /// <summary>Whether the calling thread keeps its empty slabs of <paramref name="sizeClass"/> (it reserved them).</summary>
    internal static bool KeepsEmptySlabs(int sizeClass) => SmallBlocks.KeepsEmptySlabs(sizeClass);

    /// <summary>True when the process runs the mutex pool (<c>SLABALLOC_POOL=mutex</c>).</summary>
    internal static bool PoolIsMutex => SlabPool.Shared.IsMutex;

    /// <summary>Takes the mutex pool's lock as a pool operation would, or returns false for the lock-free
    /// pool; for tests that hold it while another thread waits for it. Release with <see cref="ExitMutexPool"/>.</summary>
    internal static bool TryEnterMutexPool()
    {
        if (SlabPool.Shared is not SharedSlabPool<CoarseLock> pool) return false;
        pool.Guard.Enter(PoolPath.ReleaseSlab);
        return true;
    }

    /// <inheritdoc cref="TryEnterMutexPool"/>
    internal static void ExitMutexPool() => ((SharedSlabPool<CoarseLock>)SlabPool.Shared).Guard.Exit();

    /// <summary>The superslab arena: its first address, its size and the bytes open so far (0, 0, 0 when there is none).</summary>
    internal static (nuint Base, nuint Bytes, nuint Open) SuperslabArenaRange => SuperslabArena.Range;

    /// <summary>Every new superslab from now on is mapped on its own, outside the arena.</summary>
    internal static void UseUpSuperslabArena() => SuperslabArena.UseUp();
}
