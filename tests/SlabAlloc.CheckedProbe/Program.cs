using SlabAlloc;

namespace SlabAlloc.CheckedProbe;

/// <summary>
/// A child process for SlabAlloc.Tests (see tests/SlabAlloc.Tests/Api/BadPointerTests.cs), for what
/// cannot be tested inside the test process: settings that are read once at start-up, and hostile
/// pointers that would corrupt the test process's allocator if SlabAlloc wrongly accepted them.
/// </summary>
/// <remarks>
/// <para><c>SlabAlloc.CheckedProbe [double-free]</c> (run with <c>SLABALLOC_CHECKED=1</c>): frees a small
/// block, a medium block and a block allocated by another thread twice each, and prints
/// <c>DOUBLE_FREE_DETECTED: &lt;message&gt;</c> for every second free that throws
/// <see cref="ArgumentException"/>. Exit code 1 when a double free is not detected.</para>
/// <para><c>SlabAlloc.CheckedProbe realloc-freed</c> (run with <c>SLABALLOC_CHECKED=1</c>): passes freed
/// blocks to Realloc and AlignedRealloc, which free them (a double free), and prints
/// <c>REALLOC_OF_FREED_DETECTED: &lt;message&gt;</c> for each rejected call; exit code 1 when one is
/// accepted or the rejected call leaves a block in use.</para>
/// <para><c>SlabAlloc.CheckedProbe uncarved &lt;Free|AlignedFree|Realloc|AlignedRealloc|UsableSize&gt; &lt;owner|remote&gt;</c>:
/// passes the start of a block that the slab never handed out (not yet carved) to one API call, on
/// the thread that owns the slab or on another one, and prints <c>UNCARVED_REJECTED: &lt;message&gt;</c>
/// or <c>UNCARVED_ACCEPTED: ...</c>. Exit code 1 when the pointer is accepted or anything is corrupted.</para>
/// <para>Both modes then check that the allocator still works and that its accounting is exact, and
/// print <c>PROBE_OK</c> last when everything passed.</para>
/// </remarks>
internal static unsafe class Program
{
    private static bool s_failed;

    private static int Main(string[] args)
    {
        string mode = args.Length > 0 ? args[0] : "double-free";
        long baseline = SlabMemory.GetStatistics().BlocksInUse;
        switch (mode)
        {
            case "double-free":
                DoubleFrees();
                break;
            case "realloc-freed":
                ReallocOfFreedBlocks();
                break;
            case "uncarved" when args.Length == 3 && Enum.TryParse(args[1], out Op op) && args[2] is "owner" or "remote":
                foreach (nuint size in new nuint[] { 64, 20480 }) Uncarved(size, op, remote: args[2] == "remote");
                break;
            case "overflow":
                return Overflow();
            case "double-free-immediate":
                DoubleFreeImmediate();
                break;
            case "workout":
                Workout();
                break;
            case "meter":
                MeterPublished(args.Length > 1 ? int.Parse(args[1]) : 0);
                break;
            case "idle" when args.Length == 2 && int.TryParse(args[1], out int seconds):
                Idle(seconds);
                break;
            case "upkeep-backoff" when args.Length == 2 && int.TryParse(args[1], out int periodMs):
                UpkeepBackoff(periodMs);
                break;
            case "upkeep-sweep":
                UpkeepSweep();
                break;
            case "warmup":
                WarmUpEffects();
                baseline = 0; // waited for the start-up thread: nothing of its may be left in use
                break;
            case "reclaim-corruption" when args.Length == 2 && args[1] is "trim" or "attach":
                ReclaimCorruption(foundByAttach: args[1] == "attach");
                baseline = SlabMemory.GetStatistics().BlocksInUse; // the double-freed block was counted twice
                break;
            case "race" when args.Length == 3 && int.TryParse(args[2], out int raceMs):
                if (!RaceProbes.Run(args[1], raceMs)) return 2;
                break;
            case "pool-corruption":
                PoolCorruption();
                baseline = SlabMemory.GetStatistics().BlocksInUse; // the double-freed block was counted twice
                break;
            default:
                Console.Error.WriteLine("usage: SlabAlloc.CheckedProbe [double-free | realloc-freed | uncarved <Free|AlignedFree|Realloc|AlignedRealloc|UsableSize> <owner|remote> | overflow | double-free-immediate | workout | meter <instruments> | warmup | idle <seconds> | upkeep-backoff <decay-ms> | upkeep-sweep | reclaim-corruption <trim|attach> | pool-corruption]");
                return 2;
        }

        CheckAllocatorWorks(baseline);
        if (s_failed) return 1;
        Console.WriteLine("PROBE_OK");
        return 0;
    }

    // ---- meter: the SlabAlloc meter is published without anything asking for it ----

    /// <summary>Starts a <see cref="System.Diagnostics.Metrics.MeterListener"/>, allocates, and waits for
    /// the SlabAlloc meter's instruments to be published: the meter is created on a background thread
    /// after the assembly loads, and nothing in this process asks for it. Prints
    /// <c>METER_PUBLISHED &lt;instruments&gt;</c> once all of them are. There is no time limit here: a meter
    /// that never appears leaves the probe waiting, and the test's guard on the child process fails it.</summary>
    private static void MeterPublished(int expectedInstruments)
    {
        var names = new System.Collections.Concurrent.ConcurrentDictionary<string, bool>();
        using var all = new ManualResetEventSlim();
        using var listener = new System.Diagnostics.Metrics.MeterListener
        {
            InstrumentPublished = (instrument, _) =>
            {
                if (instrument.Meter.Name != SlabAllocMetrics.MeterName) return;
                names[instrument.Name] = true;
                if (names.Count == expectedInstruments) all.Set();
            },
        };
        listener.Start();
        SlabMemory.Free(SlabMemory.Alloc(64));
        all.Wait(); // no timeout here: a meter that never appears hangs the probe, and the test's process guard fails it
        Console.WriteLine($"METER_PUBLISHED {names.Count}");
    }

    // ---- idle: a burst of short threads, then nothing; the periodic upkeep gives the memory back ----

    /// <summary>200 threads in waves of 4, each allocating 64 blocks (16 B to 40 KiB) and freeing 60 of
    /// them, handing the other 4 to the next wave, which frees them after their thread has ended (so
    /// slabs wait in the pool's partial lists until their last block comes back). A last thread frees
    /// the last wave's and leaves empty slabs of its own in its cache when it ends; this thread never
    /// allocates or frees (it never attaches, so it reclaims no cache). Then it only reads statistics, every
    /// 50 ms, until nothing is left mapped but metadata (<c>IDLE_RETURNED_MS</c>) or
    /// <paramref name="seconds"/> have passed (<c>IDLE_NOT_RETURNED</c>), and prints <c>IDLE_MAPPED_START</c>,
    /// <c>IDLE_MAPPED_BURST</c> and <c>IDLE_MAPPED_END</c> in bytes.</summary>
    private static void Idle(int seconds)
    {
        long start = SlabMemory.GetStatistics().BytesMapped;
        var handed = new nint[4][];
        for (int wave = 0; wave < 50; wave++)
        {
            var threads = new Thread[4];
            for (int t = 0; t < 4; t++)
            {
                int lane = t, seed = wave * 4 + t;
                nint[]? inherited = handed[lane];
                threads[t] = new Thread(() =>
                {
                    if (inherited != null) foreach (nint p in inherited) SlabMemory.Free((void*)p);
                    var rng = new Random(seed);
                    var blocks = new nint[64];
                    for (int i = 0; i < blocks.Length; i++)
                    {
                        var size = (nuint)(rng.Next(5) == 0 ? rng.Next(1, 40 * 1024) : rng.Next(16, 1024));
                        blocks[i] = (nint)SlabMemory.Alloc(size);
                        *(byte*)blocks[i] = 1;
                    }
                    for (int i = 4; i < blocks.Length; i++) SlabMemory.Free((void*)blocks[i]);
                    handed[lane] = blocks[..4];
                });
                threads[t].Start();
            }
            foreach (Thread t in threads) t.Join();
        }
        // The last thread frees what the last wave handed on, and leaves slabs of its own, empty, behind:
        // only a reclaim of its cache after it has ended can give them back (this thread never attaches).
        var last = new Thread(() =>
        {
            foreach (nint[] blocks in handed) foreach (nint p in blocks) SlabMemory.Free((void*)p);
            foreach (nuint size in new nuint[] { 64, 20 * 1024 })
            {
                var mine = new nint[16];
                for (int i = 0; i < mine.Length; i++) mine[i] = (nint)SlabMemory.Alloc(size);
                foreach (nint p in mine) SlabMemory.Free((void*)p);
            }
        });
        last.Start();
        last.Join();
        long burst = SlabMemory.GetStatistics().BytesMapped;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        long mapped = burst;
        int longestDelay = 0;
        while (clock.Elapsed < TimeSpan.FromSeconds(seconds))
        {
            SlabStatistics s = SlabMemory.GetStatistics();
            mapped = s.BytesMapped;
            if (s.Superslabs == 0 && s.SlabsOwned + s.SlabsEmpty + s.SlabsPartial + s.SlabsReserved == 0) break;
            longestDelay = Math.Max(longestDelay, s.UpkeepDelayMs);
            Thread.Sleep(10);
        }
        Console.WriteLine($"IDLE_LONGEST_DELAY_WHILE_RETURNING {longestDelay}");
        Console.WriteLine($"IDLE_MAPPED_START {start}");
        Console.WriteLine($"IDLE_MAPPED_BURST {burst}");
        Console.WriteLine($"IDLE_MAPPED_END {mapped}");
        SlabStatistics end = SlabMemory.GetStatistics();
        if (end.Superslabs == 0) Console.WriteLine($"IDLE_RETURNED_MS {clock.ElapsedMilliseconds}");
        else Console.WriteLine($"IDLE_NOT_RETURNED superslabs {end.Superslabs}, slabs owned {end.SlabsOwned} empty {end.SlabsEmpty} partial {end.SlabsPartial} reserved {end.SlabsReserved}");
    }

    // ---- upkeep-backoff: the periodic upkeep sleeps longer while quiet, and wakes on traffic ----

    /// <summary>Run with <c>SLABALLOC_DECAY_MS=</c><paramref name="periodMs"/> and
    /// <c>SLABALLOC_EMPTY_SLABS_PER_CLASS=64</c>. A thread fills 200 slabs, frees everything and ends; then
    /// this thread (which never allocates) only reads statistics every 5 ms and prints the empty slabs the
    /// pool kept at first (<c>BACKOFF_KEPT_AT_START</c>), the longest delay seen while the decay was still
    /// handing them back (<c>BACKOFF_LONGEST_WHILE_DECAYING</c>) and the delays the upkeep was armed with, in
    /// order (<c>BACKOFF_DELAYS</c>), until one reaches the longest,
    /// 32 intervals (<c>BACKOFF_REACHED_MS</c>, or <c>BACKOFF_NOT_REACHED</c> after 30 s). Right after the timer
    /// was armed with that delay, a new thread allocates (a pool acquisition): <c>WAKE_DELAY</c> is the delay the statistics show right after it, and
    /// <c>WAKE_TICKS_MS</c> how long two more rounds took to come (<c>WAKE_TICKS_LATE</c> after 30 s).</summary>
    private static void UpkeepBackoff(int periodMs)
    {
        void Traffic()
        {
            var t = new Thread(() =>
            {
                foreach (nuint size in new nuint[] { 48, 3000, 20 * 1024 })
                {
                    var blocks = new nint[40];
                    for (int i = 0; i < blocks.Length; i++) blocks[i] = (nint)SlabMemory.Alloc(size);
                    foreach (nint p in blocks) SlabMemory.Free((void*)p);
                }
            });
            t.Start();
            t.Join();
        }

        // First, 200 slabs of 1 KiB blocks, all freed: with SLABALLOC_EMPTY_SLABS_PER_CLASS=64 the empty list and
        // the shared reserve keep 128 of them, which the decay hands back 32 a round, rounds in which nothing
        // else happens. Those rounds are not quiet: the delay must stay one interval until they are done.
        var many = new Thread(() =>
        {
            var blocks = new nint[200 * 64];
            for (int i = 0; i < blocks.Length; i++) blocks[i] = (nint)SlabMemory.Alloc(1024);
            foreach (nint p in blocks) SlabMemory.Free((void*)p);
        });
        many.Start();
        many.Join();
        int longest = periodMs * 32, longestWhileDecaying = 0, keptAtStart = -1;
        var delays = new List<int>();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        SlabStatistics s = SlabMemory.GetStatistics();
        while (clock.Elapsed < TimeSpan.FromSeconds(30))
        {
            s = SlabMemory.GetStatistics();
            if (keptAtStart < 0) keptAtStart = s.SlabsEmpty + s.SlabsReserved;
            if (s.SlabsEmpty + s.SlabsReserved > 0) longestWhileDecaying = Math.Max(longestWhileDecaying, s.UpkeepDelayMs);
            if (delays.Count == 0 || delays[^1] != s.UpkeepDelayMs) delays.Add(s.UpkeepDelayMs);
            if (s.UpkeepDelayMs >= longest) break;
            Thread.Sleep(5);
        }
        Console.WriteLine($"BACKOFF_KEPT_AT_START {keptAtStart}");
        Console.WriteLine($"BACKOFF_LONGEST_WHILE_DECAYING {longestWhileDecaying}");
        Console.WriteLine($"BACKOFF_DELAYS {string.Join(' ', delays)}");
        if (s.UpkeepDelayMs < longest)
        {
            Console.WriteLine($"BACKOFF_NOT_REACHED {s.UpkeepDelayMs}");
            return;
        }
        Console.WriteLine($"BACKOFF_REACHED_MS {clock.ElapsedMilliseconds}");

        // The timer was armed with the longest delay a few milliseconds ago (the statistics show the delay
        // once the arming succeeded): the next round is 32 intervals away, unless the traffic below wakes it.
        Traffic();
        s = SlabMemory.GetStatistics();
        Console.WriteLine($"WAKE_DELAY {s.UpkeepDelayMs}");
        long ticks = s.UpkeepTicks;
        clock.Restart();
        while (clock.Elapsed < TimeSpan.FromSeconds(30) && SlabMemory.GetStatistics().UpkeepTicks < ticks + 2) Thread.Sleep(5);
        Console.WriteLine(SlabMemory.GetStatistics().UpkeepTicks >= ticks + 2 ? $"WAKE_TICKS_MS {clock.ElapsedMilliseconds}" : "WAKE_TICKS_LATE");
    }

    // ---- upkeep-sweep: rounds whose sweep stops on its budget are not quiet ----

    /// <summary>Run with <c>SLABALLOC_DECAY_MS=100</c>. A thread fills 1,000 slabs of 1 KiB blocks and ends,
    /// holding them all; once the upkeep has reclaimed its cache, another thread frees one block of each slab
    /// (each slab goes to the class's partial list: 100 first, then 900 on top of them), then the rest of
    /// the first 100 slabs and all but one block of the other 900, as remote frees, which no pool call
    /// sees. Each round's sweep walks at most 256 remote-free lists: three rounds walk the 900 slabs that
    /// stay partial before one reaches the 100 that are empty. Prints the longest delay the upkeep was armed
    /// with until those 100 were handed on (<c>SWEEP_LONGEST_DELAY</c>, <c>SWEEP_DONE_MS</c>, or
    /// <c>SWEEP_NOT_DONE</c> after 30 s), then frees everything.</summary>
    private static void UpkeepSweep()
    {
        const int Slabs = 1000, Emptied = 100, PerSlab = 64;
        var blocks = new nint[Slabs * PerSlab];
        var filler = new Thread(() =>
        {
            for (int i = 0; i < blocks.Length; i++) blocks[i] = (nint)SlabMemory.Alloc(1024);
        });
        filler.Start();
        filler.Join();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (SlabMemory.GetStatistics().ThreadCachesReclaimed == 0 && clock.Elapsed < TimeSpan.FromSeconds(30)) Thread.Sleep(5);
        var bySlab = blocks.GroupBy(p => p >> 16).Select(g => g.ToArray()).Where(g => g.Length == PerSlab).Take(Slabs).ToArray();
        Console.WriteLine($"SWEEP_SLABS {bySlab.Length}");
        int partialBefore = SlabMemory.GetStatistics().SlabsPartial;
        var freer = new Thread(() =>
        {
            foreach (nint[] g in bySlab) SlabMemory.Free((void*)g[0]); // publishes: the first 100 at the bottom
            for (int i = 0; i < bySlab.Length; i++)
                for (int j = 1; j < (i < Emptied ? PerSlab : PerSlab - 1); j++) SlabMemory.Free((void*)bySlab[i][j]);
        });
        freer.Start();
        freer.Join();
        int longest = 0;
        clock.Restart();
        SlabStatistics s;
        while (true)
        {
            s = SlabMemory.GetStatistics();
            if (s.SlabsPartial <= partialBefore + bySlab.Length - Emptied || clock.Elapsed > TimeSpan.FromSeconds(30)) break;
            longest = Math.Max(longest, s.UpkeepDelayMs);
            Thread.Sleep(5);
        }
        Console.WriteLine($"SWEEP_LONGEST_DELAY {longest}");
        Console.WriteLine(s.SlabsPartial <= partialBefore + bySlab.Length - Emptied ? $"SWEEP_DONE_MS {clock.ElapsedMilliseconds}" : $"SWEEP_NOT_DONE partial {s.SlabsPartial}");
        for (int i = Emptied; i < bySlab.Length; i++) SlabMemory.Free((void*)bySlab[i][PerSlab - 1]);
        var listed = new HashSet<nint>(bySlab.SelectMany(g => g));
        foreach (nint p in blocks) if (!listed.Contains(p)) SlabMemory.Free((void*)p);
    }

    // ---- warmup: what the start-up thread's warm-up leaves behind, and what it spares the first allocation ----

    /// <summary>Waits for the start-up thread to finish (it publishes the meter after the warm-up), then
    /// prints what the statistics show (<c>WARMUP_ALLOCATIONS</c>, <c>WARMUP_FREES</c>, <c>BLOCKS_IN_USE</c>,
    /// <c>SLABS_OWNED</c>, <c>THREAD_CACHE_RECORDS</c>) and how many methods the JIT compiled on this thread
    /// for its first 64-byte allocation and free (<c>FIRST_PAIR_JIT_METHODS</c>). Nothing on this thread
    /// has allocated before. No time limit: the test's guard on the child process has one.</summary>
    private static void WarmUpEffects()
    {
        using var published = new ManualResetEventSlim();
        using var listener = new System.Diagnostics.Metrics.MeterListener
        {
            InstrumentPublished = (instrument, _) => { if (instrument.Meter.Name == SlabAllocMetrics.MeterName) published.Set(); },
        };
        listener.Start();
        published.Wait();
        SlabLockStatistics locks = SlabMemory.GetLockStatistics();
        SlabStatistics stats = SlabMemory.GetStatistics();
        Console.WriteLine($"WARMUP_ALLOCATIONS {locks.Allocations}");
        Console.WriteLine($"WARMUP_FREES {locks.Frees}");
        Console.WriteLine($"BLOCKS_IN_USE {stats.BlocksInUse}");
        Console.WriteLine($"SLABS_OWNED {stats.SlabsOwned}");
        Console.WriteLine($"THREAD_CACHE_RECORDS {stats.ThreadCacheRecords}");
        long before = System.Runtime.JitInfo.GetCompiledMethodCount(currentThread: true);
        SlabMemory.Free(SlabMemory.Alloc(64));
        long compiled = System.Runtime.JitInfo.GetCompiledMethodCount(currentThread: true) - before;
        Console.WriteLine($"FIRST_PAIR_JIT_METHODS {compiled}");
    }

    // ---- reclaim-corruption: a dead thread's heap whose slab has a cyclic remote-free list ----

    /// <summary>A thread allocates a block and exits; this thread (attached before, so its frees do not
    /// reclaim the dead heap) frees the block twice, remotely, which makes the slab's remote-free list a
    /// cycle. Handing the dead heap back must log the corruption (<c>LOGGED_ERROR</c>) and leave the
    /// allocator usable. With <c>trim</c>, <c>Trim</c> meets it and reports it
    /// (<c>RECLAIM_CORRUPTION_REPORTED</c>) unless the dead thread's finalizer met it first; with
    /// <c>attach</c>, a new thread's first allocation meets it and still succeeds
    /// (<c>NEW_THREAD_ALLOCATES</c>). Either way a later <c>Trim</c> returns (<c>TRIM_RETURNS</c>; it used
    /// to wait for ever on the abandoned reclaim).</summary>
    private static void ReclaimCorruption(bool foundByAttach)
    {
        // Errors SlabAlloc logs are printed as LOGGED_ERROR lines, whichever thread meets the corruption.
        SlabAllocLogging.Configure(new ErrorPrinter());
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

    /// <summary>Two slabs of one class in the shared pool's partial list, each with blocks still out
    /// (their owner exited and its cache was handed back). One block of the lower slab is freed twice,
    /// which makes that slab's remote-free list a cycle; a large block sits in the large-block cache.
    /// <c>Trim</c> meets the cycle after it has set the upper slab aside: it must log and report it
    /// (<c>RECLAIM_CORRUPTION_REPORTED</c>), keep the upper slab in the pool (a new thread's first
    /// allocation of the class reuses it: <c>KEPT_SLAB_REUSED</c>), still empty the large-block cache
    /// (<c>LARGE_CACHE_FLUSHED</c>), and a second <c>Trim</c> must return (<c>TRIM_RETURNS</c>).</summary>
    private static void PoolCorruption()
    {
        SlabAllocLogging.Configure(new ErrorPrinter());
        // One thread fills a 64 KiB slab of 64-byte blocks and starts a second; it keeps one block of the
        // first and two of the second, frees the rest and exits. Handing its cache back lets the current
        // (second) slab go first, then the first: the first ends on top of the partial list.
        nint[] kept = RunOnNewThread(() =>
        {
            var blocks = new nint[1100];
            for (int i = 0; i < blocks.Length; i++) blocks[i] = (nint)SlabMemory.Alloc(64);
            nint firstSlab = blocks[0] >> 16, lastSlab = blocks[^1] >> 16;
            if (firstSlab == lastSlab || blocks.Any(p => p >> 16 != firstSlab && p >> 16 != lastSlab)) return [];
            nint x = blocks[0], y1 = blocks[^1], y2 = blocks[^2];
            foreach (nint p in blocks) if (p != x && p != y1 && p != y2) SlabMemory.Free((void*)p);
            return [x, y1, y2];
        });
        if (kept.Length == 0) { Fail("SETUP: 1100 blocks of 64 B did not span exactly two slabs"); return; }
        SlabMemory.Trim(); // the dead thread's cache handed back: both slabs to the partial list
        SlabMemory.Free((void*)kept[1]);
        SlabMemory.Free((void*)kept[1]); // the lower slab's remote-free list is now a cycle
        SlabMemory.Free(SlabMemory.Alloc(1 << 20));
        try
        {
            SlabMemory.Trim();
        }
        catch (InvalidOperationException e)
        {
            Console.WriteLine($"RECLAIM_CORRUPTION_REPORTED: {e.Message}");
        }
        if (SlabMemory.GetStatistics().LargeCachedBytes == 0) Console.WriteLine("LARGE_CACHE_FLUSHED");
        else Fail("LARGE_CACHE_KEPT: Trim stopped before emptying the large-block cache");

        SlabStatistics before = SlabMemory.GetStatistics();
        nint[] fresh = RunOnNewThread(() => [(nint)SlabMemory.Alloc(64)]);
        SlabStatistics after = SlabMemory.GetStatistics();
        if (after.AcquiredStage1 - before.AcquiredStage1 == 1 && after.AcquiredStage2 == before.AcquiredStage2 && after.AcquiredStage3 == before.AcquiredStage3)
            Console.WriteLine("KEPT_SLAB_REUSED");
        else Fail($"KEPT_SLAB_LOST: the next slab of the class came from stage 2 or 3 ({after.AcquiredStage2 - before.AcquiredStage2}, {after.AcquiredStage3 - before.AcquiredStage3})");

        SlabMemory.Trim();
        Console.WriteLine("TRIM_RETURNS");
        SlabMemory.Free((void*)fresh[0]);
        SlabMemory.Free((void*)kept[0]);
        SlabMemory.Free((void*)kept[2]); // into the slab left out of use: accepted, never reused
        SlabAllocLogging.Configure(null);
    }

    private static nint[] RunOnNewThread(Func<nint[]> body)
    {
        nint[] result = [];
        var t = new Thread(() => result = body());
        t.Start();
        t.Join();
        return result;
    }

    /// <summary>A logger factory whose loggers print every error as a <c>LOGGED_ERROR</c> line.</summary>
    private sealed class ErrorPrinter : Microsoft.Extensions.Logging.ILoggerFactory, Microsoft.Extensions.Logging.ILogger
    {
        public Microsoft.Extensions.Logging.ILogger CreateLogger(string categoryName) => this;
        public void AddProvider(Microsoft.Extensions.Logging.ILoggerProvider provider) { }
        public void Dispose() { }
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
        public bool IsEnabled(Microsoft.Extensions.Logging.LogLevel logLevel) => logLevel >= Microsoft.Extensions.Logging.LogLevel.Error;
        public void Log<TState>(Microsoft.Extensions.Logging.LogLevel logLevel, Microsoft.Extensions.Logging.EventId eventId, TState state,
            Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (IsEnabled(logLevel)) Console.WriteLine($"LOGGED_ERROR: {formatter(state, exception)}");
        }
    }

    // ---- overflow: a heap overflow overwrites a free block's link (default, hardened mode) ----

    /// <summary>Frees a 96-byte block, overwrites its free-list link with the address of foreign memory
    /// (what an overflow from the block before it would do), then allocates from the class until the
    /// allocator reaches that block. Prints <c>CORRUPTION_DETECTED: message</c> and exits 0 when it is
    /// reported, or <c>FOREIGN_HANDED_OUT</c> and exits 3 when the foreign address comes back as a block.</summary>
    private static int Overflow()
    {
        byte* foreign = (byte*)System.Runtime.InteropServices.NativeMemory.Alloc(4096);
        var held = new List<nint>();
        byte* victim = (byte*)SlabMemory.Alloc(96);
        SlabMemory.Free(victim);
        *(byte**)victim = foreign; // the overflow
        try
        {
            for (int i = 0; i < 100_000; i++)
            {
                byte* p = (byte*)SlabMemory.Alloc(96);
                if (p == foreign)
                {
                    Console.WriteLine("FOREIGN_HANDED_OUT");
                    return 3;
                }
                held.Add((nint)p);
            }
            Console.WriteLine("NOT_REACHED");
            return 1;
        }
        catch (InvalidOperationException e)
        {
            Console.WriteLine($"CORRUPTION_DETECTED: {OneLine(e.Message)}");
            // The rest of the allocator still works: other classes, other threads.
            CheckAllocatorWorks(SlabMemory.GetStatistics().BlocksInUse);
            return s_failed ? 1 : 0;
        }
    }

    // ---- workout: 4 threads allocating, stamping, swapping and freeing blocks (any settings) ----

    /// <summary>4 threads × 20,000 operations of random sizes up to 20 KiB, half the frees of blocks
    /// another thread allocated (swapped through a shared array), every block stamped and verified.
    /// Prints <c>WORKOUT_OK: operations</c>, or a failure line.</summary>
    private static void Workout()
    {
        const int Threads = 4, Operations = 20_000, Slots = 256;
        var shared = new nint[Slots];
        var sizes = new System.Collections.Concurrent.ConcurrentDictionary<nint, nuint>();
        long operations = 0;
        var workers = Enumerable.Range(0, Threads).Select(t => new Thread(() =>
        {
            var rng = new Random(1000 + t);
            var mine = new nint[64];
            for (int i = 0; i < Operations; i++)
            {
                int k = rng.Next(mine.Length);
                if (mine[k] != 0) Release(mine[k]);
                nuint size = (nuint)rng.Next(1, rng.Next(4) == 0 ? 20_000 : 512);
                var p = (byte*)SlabMemory.Alloc(size);
                if (!sizes.TryAdd((nint)p, size)) Fail($"HANDED_OUT_TWICE: 0x{(nint)p:x}");
                Stamp(p, size, (byte)(nint)p);
                mine[k] = (nint)p;
                if (rng.Next(2) == 0) mine[k] = Interlocked.Exchange(ref shared[rng.Next(Slots)], mine[k]);
                Interlocked.Increment(ref operations);
            }
            foreach (nint p in mine) if (p != 0) Release(p);
        })).ToArray();
        foreach (Thread w in workers) w.Start();
        foreach (Thread w in workers) w.Join();
        foreach (nint p in shared) if (p != 0) Release(p);
        if (!sizes.IsEmpty) Fail($"LEAKED: {sizes.Count} blocks not freed");
        Console.WriteLine($"WORKOUT_OK: {operations}");

        void Release(nint p)
        {
            if (!sizes.TryRemove(p, out nuint size)) { Fail($"NOT_LIVE: 0x{p:x}"); return; }
            if (!Verify((byte*)p, size, (byte)p)) Fail($"STAMP_BROKEN: 0x{p:x} ({size} bytes)");
            SlabMemory.Free((void*)p);
        }
    }

    // ---- double-free-immediate: the same block freed twice in a row (default, hardened mode) ----

    private static void DoubleFreeImmediate()
    {
        void* p = SlabMemory.Alloc(64);
        SlabMemory.Free(p);
        try
        {
            SlabMemory.Free(p);
            Fail("DOUBLE_FREE_NOT_DETECTED");
        }
        catch (ArgumentException e) { Console.WriteLine($"DOUBLE_FREE_DETECTED: {OneLine(e.Message)}"); }
    }

    // ---- double-free: run with SLABALLOC_CHECKED=1 ----

    private static void DoubleFrees()
    {
        Console.WriteLine("SCENARIO small (64 bytes, freed twice by its own thread)");
        ExpectDoubleFreeDetected((nuint)SlabMemory.Alloc(64));

        Console.WriteLine("SCENARIO medium (20000 bytes, freed twice by its own thread)");
        ExpectDoubleFreeDetected((nuint)SlabMemory.Alloc(20000));

        Console.WriteLine("SCENARIO remote (100 bytes allocated by another thread, freed twice by the main thread)");
        nuint block = 0;
        var allocator = new Thread(() => block = (nuint)SlabMemory.Alloc(100));
        allocator.Start();
        allocator.Join();
        ExpectDoubleFreeDetected(block);
    }

    private static void ExpectDoubleFreeDetected(nuint block)
    {
        SlabMemory.Free((void*)block);
        long before = SlabMemory.GetStatistics().BlocksInUse;
        try
        {
            SlabMemory.Free((void*)block);
            Fail($"DOUBLE_FREE_MISSED: the second Free(0x{block:x}) was accepted");
        }
        catch (ArgumentException e)
        {
            Console.WriteLine($"DOUBLE_FREE_DETECTED: {OneLine(e.Message)}");
        }
        long after = SlabMemory.GetStatistics().BlocksInUse;
        if (after != before) Fail($"ACCOUNTING_CHANGED: BlocksInUse {before} -> {after} after the rejected double free");
    }

    // ---- realloc-freed: run with SLABALLOC_CHECKED=1 ----

    private static void ReallocOfFreedBlocks()
    {
        foreach (nuint size in new nuint[] { 64, 20000 })
        {
            foreach (bool aligned in new[] { false, true })
            {
                string call = aligned ? "AlignedRealloc" : "Realloc";
                Console.WriteLine($"SCENARIO {call} of a freed {size}-byte block");
                void* block = SlabMemory.Alloc(size);
                SlabMemory.Free(block);
                long before = SlabMemory.GetStatistics().BlocksInUse;
                try
                {
                    void* moved = aligned ? SlabMemory.AlignedRealloc(block, size * 2, 64) : SlabMemory.Realloc(block, size * 2);
                    Fail($"REALLOC_OF_FREED_MISSED: {call}(0x{(nuint)block:x}, {size * 2}) of a freed block returned 0x{(nuint)moved:x}");
                }
                catch (ArgumentException e)
                {
                    Console.WriteLine($"REALLOC_OF_FREED_DETECTED: {OneLine(e.Message)}");
                }
                long after = SlabMemory.GetStatistics().BlocksInUse;
                if (after != before) Fail($"ACCOUNTING_CHANGED: BlocksInUse {before} -> {after} after the rejected {call} of a freed {size}-byte block");
            }
        }
    }

    // ---- uncarved: the start of a block the slab never handed out ----

    private enum Op { Free, AlignedFree, Realloc, AlignedRealloc, UsableSize }

    private static void Uncarved(nuint size, Op op, bool remote)
    {
        // In a fresh process the first block of a class comes from a freshly formatted slab, which
        // carves about a page of blocks from its start: the first block is the slab's start
        // (64 KiB aligned) and the slab's last block is not carved yet.
        int capacity = size <= 8192 ? (int)(65536 / size) : (int)(8 * 65536 / size);
        int carvedFirst = Math.Max(1, Environment.SystemPageSize / (int)size);
        if (carvedFirst >= capacity - 1)
        {
            Console.WriteLine($"UNCARVED_NOT_APPLICABLE: size {size}: a {Environment.SystemPageSize}-byte page carves the whole slab");
            return;
        }
        long baseline = SlabMemory.GetStatistics().BlocksInUse;
        byte* first = (byte*)SlabMemory.Alloc(size);
        if (((nuint)first & 0xFFFF) != 0)
        {
            Fail($"PROBE_ERROR: the first {size}-byte block 0x{(nuint)first:x} is not the start of a fresh slab");
            return;
        }
        Stamp(first, size, 0x5A);
        nuint uncarved = (nuint)(first + (nuint)(capacity - 1) * size);

        long before = SlabMemory.GetStatistics().BlocksInUse;
        string outcome = RunOn(remote, () =>
        {
            void* p = (void*)uncarved;
            try
            {
                switch (op)
                {
                    case Op.Free: SlabMemory.Free(p); return $"Free returned";
                    case Op.AlignedFree: SlabMemory.AlignedFree(p); return $"AlignedFree returned";
                    case Op.Realloc: return $"Realloc returned 0x{(nuint)SlabMemory.Realloc(p, size * 3):x}";
                    case Op.AlignedRealloc: return $"AlignedRealloc returned 0x{(nuint)SlabMemory.AlignedRealloc(p, size * 3, 16):x}";
                    default: return $"UsableSize returned {SlabMemory.UsableSize(p)}";
                }
            }
            catch (ArgumentException e)
            {
                return "UNCARVED_REJECTED: " + OneLine(e.Message);
            }
        });
        if (outcome.StartsWith("UNCARVED_REJECTED: ", StringComparison.Ordinal)) Console.WriteLine(outcome);
        else Fail($"UNCARVED_ACCEPTED: size {size}, {op} on the {(remote ? "remote" : "owner")} thread of 0x{uncarved:x} (block {capacity - 1}, never handed out): {outcome}");
        long after = SlabMemory.GetStatistics().BlocksInUse;
        if (after != before) Fail($"ACCOUNTING_CHANGED: size {size}: BlocksInUse {before} -> {after} after {op} of a block never handed out");

        // Hand out every block of the slab and more: no block may be handed out twice.
        var blocks = new List<nuint>();
        for (int i = 0; i < 2 * capacity; i++)
        {
            var b = (byte*)SlabMemory.Alloc(size);
            Stamp(b, size, (byte)i);
            blocks.Add((nuint)b);
        }
        if (blocks.Distinct().Count() != blocks.Count || blocks.Contains((nuint)first))
            Fail($"DUPLICATE_BLOCK: size {size}: a block was handed out twice after {op} of a block never handed out");
        for (int i = 0; i < blocks.Count; i++)
            if (!Verify((byte*)blocks[i], size, (byte)i)) Fail($"OVERLAP: size {size}: block {i} was overwritten by another block");
        if (!Verify(first, size, 0x5A)) Fail($"OVERLAP: size {size}: the slab's first block was overwritten");
        foreach (nuint b in blocks) SlabMemory.Free((void*)b);
        SlabMemory.Free(first);
        long end = SlabMemory.GetStatistics().BlocksInUse;
        if (end != baseline) Fail($"ACCOUNTING_CHANGED: size {size}: BlocksInUse {baseline} at the start, {end} after freeing everything");
    }

    private static string RunOn(bool remote, Func<string> action)
    {
        if (!remote) return action();
        string result = "";
        var thread = new Thread(() => result = action());
        thread.Start();
        thread.Join();
        return result;
    }

    // ---- common ----

    private static void CheckAllocatorWorks(long baseline)
    {
        nuint[] sizes = { 1, 16, 64, 100, 1000, 1025, 8192, 20000, 65536, 300_000 };
        var blocks = new nuint[sizes.Length];
        for (int i = 0; i < sizes.Length; i++)
        {
            var p = (byte*)SlabMemory.Alloc(sizes[i]);
            Stamp(p, sizes[i], (byte)(i + 1));
            blocks[i] = (nuint)p;
        }
        long inUse = SlabMemory.GetStatistics().BlocksInUse;
        if (inUse != baseline + sizes.Length) Fail($"ACCOUNTING_WRONG: BlocksInUse {inUse} with {sizes.Length} blocks out, expected {baseline + sizes.Length}");
        for (int i = 0; i < sizes.Length; i++)
        {
            if (!Verify((byte*)blocks[i], sizes[i], (byte)(i + 1))) Fail($"ALLOCATOR_BROKEN: the {sizes[i]}-byte block overlaps another");
            SlabMemory.Free((void*)blocks[i]);
        }
        long end = SlabMemory.GetStatistics().BlocksInUse;
        if (end != baseline) Fail($"ACCOUNTING_WRONG: BlocksInUse {end} at the end, expected {baseline}");
        else Console.WriteLine($"ALLOCATOR_WORKS: BlocksInUse {end}");
    }

    private static void Stamp(byte* p, nuint size, byte seed)
    {
        for (nuint i = 0; i < size; i++) p[i] = (byte)(seed + i * 7);
    }

    private static bool Verify(byte* p, nuint size, byte seed)
    {
        for (nuint i = 0; i < size; i++)
            if (p[i] != (byte)(seed + i * 7)) return false;
        return true;
    }

    internal static string OneLine(string message) => message.ReplaceLineEndings(" ");

    internal static void Fail(string line)
    {
        Console.WriteLine(line);
        s_failed = true;
    }
}
