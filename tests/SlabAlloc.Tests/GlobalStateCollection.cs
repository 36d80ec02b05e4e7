namespace SlabAlloc.Tests;

/// <summary>Tests that read process-wide statistics exactly run in this collection, one at a time
/// and after the parallel ones, so no other test's blocks are in flight while they count.</summary>
[CollectionDefinition("SlabAlloc global state", DisableParallelization = true)]
public sealed class GlobalStateCollection : ICollectionFixture<StartUpFinished> { }

/// <summary>Waits, once before the collection's first test, for SlabAlloc's start-up thread: its warm-up
/// allocates and frees blocks in the first milliseconds after the assembly loads, which would be in flight
/// if no earlier test had loaded SlabAlloc (as when only this collection's tests are run).</summary>
public sealed class StartUpFinished
{
    public StartUpFinished() => StartUp.WaitUntilDone();
}
