namespace SlabAlloc.Tests;

/// <summary>Bringing the process's allocator to rest before a test reads process-wide statistics: dead threads'
/// caches handed back, pool lists trimmed.</summary>
internal static class Quiescence
{
    /// <summary>Lets dead threads' finalizers run and trims, so no cache is handed back into the pool while a test
    /// counts.</summary>
    public static void Quiesce()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        SlabMemory.Trim();
    }

    /// <summary>The statistics once <see cref="Quiesce"/> has run and the bytes in free caches read the same twice,
    /// 20 ms apart (trimming again before each reading). A thread of an earlier test may still be exiting when a
    /// test starts, and its cache is reclaimed only once its exit is seen. Idle live threads keep theirs and may
    /// retire later, so a figure read this way bounds what follows from above only.</summary>
    public static SlabStatistics SettledStatistics()
    {
        Quiesce();
        SlabStatistics last = SlabMemory.GetStatistics();
        for (int i = 0; i < 100; i++)
        {
            Thread.Sleep(20);
            SlabMemory.Trim();
            SlabStatistics now = SlabMemory.GetStatistics();
            if (now.BytesInFreeCaches == last.BytesInFreeCaches) return now;
            last = now;
        }
        return last;
    }
}
