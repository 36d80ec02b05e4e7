using static SlabAlloc.CheckedProbe.Probe;

namespace SlabAlloc.CheckedProbe.Scenarios;

/// <summary>
/// <c>reclaim-corruption &lt;trim|attach&gt;</c>: a dead thread's cache whose slab has a cyclic remote-free
/// list. A thread allocates a block and exits; this thread (attached before, so its frees do not reclaim
/// the dead thread's cache) frees the block twice, remotely, which makes the slab's remote-free list a
/// cycle (run with <c>SLABALLOC_REMOTE_BATCH=0</c>: a batched second free in a row is rejected at once). Handing the dead cache back must log the corruption (<c>LOGGED_ERROR</c>) and leave the
/// allocator usable. With <c>trim</c>, <c>Trim</c> meets it and reports it
/// (<c>RECLAIM_CORRUPTION_REPORTED</c>) unless the dead thread's finalizer met it first; with
/// <c>attach</c>, a new thread's first allocation meets it and still succeeds
/// (<c>NEW_THREAD_ALLOCATES</c>). Either way a later <c>Trim</c> returns (<c>TRIM_RETURNS</c>; it used
/// to wait for ever on the abandoned reclaim).
/// </summary>
internal static unsafe class ReclaimCorruption
{
    public static int Run(string[] args, long baseline)
    {
        if (!(args.Length == 1 && args[0] is "trim" or "attach")) return BadArguments;
        Corrupt(foundByAttach: args[0] == "attach");
        // The double-freed block was counted twice: the count from here on is the one to come back to.
        return Finish(SlabMemory.GetStatistics().BlocksInUse);
    }

    private static void Corrupt(bool foundByAttach)
    {
        // Errors SlabAlloc logs are printed as LOGGED_ERROR lines, whichever thread meets the corruption.
        SlabAllocLogging.Configure(LogPrinter.Errors());
        SlabMemory.Free(SlabMemory.Alloc(64)); // attach this thread now
        nint block = 0;
        var t = new Thread(() => block = (nint)SlabMemory.Alloc(64));
        t.Start();
        t.Join();
        SlabMemory.Free((void*)block);
        SlabMemory.Free((void*)block);
        if (foundByAttach)
        {
            // A new thread's attach hands dead caches back: it meets the corruption, and its own
            // allocation must not fail because of another thread's cache.
            bool allocated = false;
            var next = new Thread(() =>
            {
                try { SlabMemory.Free(SlabMemory.Alloc(64)); allocated = true; }
                catch (Exception e) { Console.WriteLine($"NEW_THREAD_FAILED: {e.Message}"); }
            });
            next.Start();
            next.Join();
            if (allocated) Console.WriteLine("NEW_THREAD_ALLOCATES");
            else Fail("NEW_THREAD_FAILED");
        }
        try
        {
            SlabMemory.Trim();
        }
        catch (InvalidOperationException e)
        {
            Console.WriteLine($"RECLAIM_CORRUPTION_REPORTED: {e.Message}");
        }
        SlabMemory.Trim();
        Console.WriteLine("TRIM_RETURNS");
        // The dead thread's finalizer may have met the corruption first: make sure it has run.
        GC.Collect();
        GC.WaitForPendingFinalizers();
        SlabAllocLogging.Configure(null);
    }
}
