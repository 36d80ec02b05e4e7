namespace SlabAlloc.Tests;

/// <summary>Tests that read process-wide statistics exactly run in this collection, one at a time
/// and after the parallel ones, so no other test's blocks are in flight while they count.</summary>
[CollectionDefinition("SlabAlloc global state", DisableParallelization = true)]
public sealed class GlobalStateCollection : ICollectionFixture<StartUpFinished> { }
