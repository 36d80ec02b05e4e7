using static SlabAlloc.CheckedProbe.Probe;

namespace SlabAlloc.CheckedProbe.Scenarios;

/// <summary>
/// <c>reclaim-corruption &lt;trim|attach|upkeep&gt; [waiting-logger]</c>: a dead thread's cache whose slab has a cyclic remote-free
/// list. A thread allocates a block and exits; this thread (attached before, so its frees do not reclaim
/// the dead thread's cache) frees the block twice, remotely, which makes the slab's remote-free list a
/// cycle (run with <c>SLABALLOC_REMOTE_BATCH=0</c>: a batched second free in a row is rejected at once). Handing the dead cache back must log the corruption (<c>LOGGED_ERROR</c>) and leave the
/// allocator usable. With <c>trim</c>, <c>Trim</c> meets it and reports it
/// (<c>RECLAIM_CORRUPTION_REPORTED</c>) unless a pass of the periodic upkeep met it first; with
/// <c>attach</c>, a new thread's first allocation meets it and still succeeds
/// (<c>NEW_THREAD_ALLOCATES</c>); with <c>upkeep</c> (and a short <c>SLABALLOC_DECAY_MS</c>), a pass of the periodic
/// upkeep meets it (<c>UPKEEP_REPORTED</c>). Either way a later <c>Trim</c> returns (<c>TRIM_RETURNS</c>; it used
/// to wait for ever on the abandoned reclaim).
/// <para>With <c>waiting-logger</c>, the logger itself, at the first error, runs <c>Trim</c> on another thread and
/// waits for it (a logger that hands its work to a thread that calls into SlabAlloc): the error must be logged
/// once nothing is held that such a <c>Trim</c> waits for (<c>LOGGER_TRIM_RETURNED</c>; after 20 s the probe prints
/// <c>LOGGER_WAITED_FOR_EVER</c> and exits with 4).</para>
/// </summary>
internal static unsafe class ReclaimCorruption
{
    public static int Run(string[] args, long baseline)
    {
        if (!(args.Length is 1 or 2 && args[0] is "trim" or "attach" or "upkeep")) return BadArguments;
        if (args.Length == 2 && args[1] != "waiting-logger") return BadArguments;
        Corrupt(args[0], waitingLogger: args.Length == 2);
        // The double-freed block was counted twice: the count from here on is the one to come back to.
        return Finish(SlabMemory.GetStatistics().BlocksInUse);
    }

    private static void Corrupt(string foundBy, bool waitingLogger)
    {
        // Errors SlabAlloc logs are printed as LOGGED_ERROR lines, whichever thread meets the corruption.
        SlabAllocLogging.Configure(LogPrinter.Errors(() =>
        {
            Interlocked.Increment(ref s_errorsLogged);
            if (waitingLogger) TrimOnAnotherThreadOnce();
        }));
        SlabMemory.Free(SlabMemory.Alloc(64)); // attach this thread now
        nint block = 0;
        var t = new Thread(() => block = (nint)SlabMemory.Alloc(64));
        t.Start();
        t.Join();
        SlabMemory.Free((void*)block);
        SlabMemory.Free((void*)block);
        if (foundBy == "upkeep")
        {
            // The periodic upkeep (run with a short SLABALLOC_DECAY_MS) meets it on its timer thread.
            var waited = System.Diagnostics.Stopwatch.StartNew();
            while (Volatile.Read(ref s_errorsLogged) == 0 && waited.Elapsed < TimeSpan.FromSeconds(20)) Thread.Sleep(10);
            if (Volatile.Read(ref s_errorsLogged) == 0) Fail("UPKEEP_DID_NOT_REPORT");
            else Console.WriteLine("UPKEEP_REPORTED");
        }
        if (foundBy == "attach")
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
        SlabAllocLogging.Configure(null);
    }

    private static int s_errorsLogged;
}
