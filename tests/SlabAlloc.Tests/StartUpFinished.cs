namespace SlabAlloc.Tests;

/// <summary>Waits, once before the collection's first test, for SlabAlloc's start-up thread: its warm-up
/// allocates and frees blocks in the first milliseconds after the assembly loads, which would be in flight
/// if no earlier test had loaded SlabAlloc (as when only this collection's tests are run).</summary>
public sealed class StartUpFinished
{
    public StartUpFinished() => StartUp.WaitUntilDone();
}
