using SlabAlloc.Runtime;
using SlabAlloc.Tests.Runtime;

namespace SlabAlloc.Tests;

/// <summary>Once before the collection's first test: waits for SlabAlloc's start-up thread, whose warm-up
/// allocates and frees blocks in the first milliseconds after the assembly loads (in flight if no earlier
/// test had loaded SlabAlloc, as when only this collection's tests are run); and suspends the periodic
/// upkeep (<see cref="Upkeep"/>) until the collection is done, since its ticks reclaim dead threads'
/// caches and decay the pool's lists while these tests count them. The upkeep is tested in fresh
/// processes (<c>UpkeepTests</c>).</summary>
public sealed class StartUpFinished : IDisposable
{
    public StartUpFinished()
    {
        TestHooks.WaitForStartUp();
        TestHooks.SuspendUpkeep();
    }

    public void Dispose() => TestHooks.ResumeUpkeep();
}
