using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using SlabAlloc.Testing;

namespace SlabAlloc.Soak;

/// <summary>
/// The soak: <c>soak [--seconds S] [--threads T] [--report-every R] [--seed N]</c>. T threads run
/// <see cref="SoakWorker"/>'s mixed workload, each for a short random life, and each one that ends
/// is replaced at once, so thousands of threads come and go: thread caches are made, handed back and
/// reclaimed all the time, and blocks outlive their threads in a shared exchange array. The main
/// thread trims every few seconds and prints a line every R seconds. At the end it frees everything
/// and checks that the accounting is back exactly where it started and that RSS stayed bounded.
/// Exit code 0 when every check passed, 1 otherwise; the last line says which.
/// </summary>
internal sealed class SoakRun
{
    public sealed record Options(double Seconds, int Threads, double ReportEvery, int Seed);

    /// <summary>Slots of the exchange array: enough that a block usually waits there for several
    /// worker lifetimes, so many frees land in caches of threads that have ended.</summary>
    private const int ExchangeSlots = 1024;
    /// <summary>How often the main thread samples bytes in use and RSS for the peaks.</summary>
    private static readonly TimeSpan SampleEvery = TimeSpan.FromMilliseconds(100);
    private const long MiB = 1024 * 1024;
    /// <summary>RSS may reach 4 × the peak of bytes in use plus these (256 MiB with the default 8 threads); see <see cref="RssAllowance"/>.</summary>
    private const long RssFixedAllowance = 192 * MiB;
    private const long RssAllowancePerThread = 8 * MiB;

    /// <summary>Blocks in transit between threads; any worker swaps into and out of any slot with Interlocked.Exchange.</summary>
    public readonly nint[] Exchange = new nint[ExchangeSlots];

    private readonly Options _options;
    /// <summary>The current worker of each slot. A worker that ends starts its successor itself and stores it
    /// here first: done by the main thread, every Thread.Start (which waits until the new thread runs, tens of
    /// milliseconds on a busy machine) would hold up the reports and the other slots' replacements.</summary>
    private readonly Thread[] _workers;
    private readonly ConcurrentQueue<(string Who, Exception Error)> _errors = new();
    /// <summary>Starts the first worker of every slot. Thread.Start waits until the new thread runs, which on
    /// a loaded machine takes up to seconds once dozens of workers compete for the cores; done here, it
    /// would keep the main thread from sampling and reporting for that long.</summary>
    private Thread? _starter;
    private volatile bool _stopping;
    private long _operations;
    private long _threadsCreated;

    private SoakRun(Options options)
    {
        _options = options;
        _workers = new Thread[options.Threads];
    }

    /// <summary>True once the soak is over or has failed: workers finish their batch, free what they hold and end.</summary>
    public bool Stopping => _stopping;

    public void AddOperations(long count) => Interlocked.Add(ref _operations, count);

    public static int Run(List<string> args) => new SoakRun(Parse(args)).Execute();

    public static Options Parse(List<string> args)
    {
        double seconds = 30, reportEvery = 5;
        int threads = 8, seed = 20261126;
        for (int i = 0; i < args.Count; i += 2)
        {
            if (i + 1 >= args.Count) throw new ArgumentException($"soak: {args[i]} needs a value");
            string value = args[i + 1];
            switch (args[i])
            {
                case "--seconds": seconds = double.Parse(value, CultureInfo.InvariantCulture); break;
                case "--threads": threads = int.Parse(value, CultureInfo.InvariantCulture); break;
                case "--report-every": reportEvery = double.Parse(value, CultureInfo.InvariantCulture); break;
                case "--seed": seed = int.Parse(value, CultureInfo.InvariantCulture); break;
                default: throw new ArgumentException($"soak: unknown option '{args[i]}'");
            }
        }
        if (seconds <= 0 || threads < 1 || reportEvery <= 0)
            throw new ArgumentException("soak: --seconds and --report-every must be positive, --threads at least 1");
        return new Options(seconds, threads, reportEvery, seed);
    }

    private int Execute()
    {
        Options o = _options;
        Console.WriteLine($"soak: {o.Seconds:0.###} s, {o.Threads} threads, report every {o.ReportEvery:0.###} s, seed {o.Seed}, " +
                          $"pool {SlabMemory.GetLockStatistics().Pool.ToString().ToLowerInvariant()}, checked {Environment.GetEnvironmentVariable("SLABALLOC_CHECKED") ?? "0"}");
        SlabStatistics before = SlabMemory.GetStatistics();
        long rssBefore = ReadRssBytes();

        try
        {
            return SoakAndVerify(before, rssBefore);
        }
        catch (Exception e)
        {
            // Trim, the statistics or a free on this thread threw (a library error the workers did not
            // hit first): stop the workers so the failure is reported, not a crash with threads still running.
            StopAndJoin();
            Console.WriteLine($"main thread: {e}");
            return Failed($"main thread: {e.GetType().Name}: {e.Message}");
        }
    }

    private int SoakAndVerify(SlabStatistics before, long rssBefore)
    {
        Options o = _options;
        var mainRng = new Random(o.Seed);
        var clock = Stopwatch.StartNew();
        _starter = new Thread(StartFirstWorkers) { IsBackground = true, Name = "soak-starter" };
        _starter.Start();

        long peakLive = before.BytesInUse, peakRss = 0, lastOps = 0, trims = 0;
        // The main thread only samples, trims and reports, waking for whichever is due first; it also
        // notices a failed worker within one sample period.
        double lastReport = 0;
        TimeSpan end = TimeSpan.FromSeconds(o.Seconds);
        TimeSpan nextReport = TimeSpan.FromSeconds(o.ReportEvery), nextSample = SampleEvery, nextTrim = NextTrimDelay(mainRng);
        while (_errors.IsEmpty)
        {
            TimeSpan wait = Min(Min(nextReport, nextSample), Min(nextTrim, end)) - clock.Elapsed;
            if (wait > TimeSpan.Zero) Thread.Sleep(wait);
            TimeSpan now = clock.Elapsed;
            if (now >= nextSample)
            {
                peakLive = Math.Max(peakLive, SlabMemory.GetStatistics().BytesInUse);
                // The first interval is warm-up (runtime start, the first superslabs, JIT): RSS is judged after it.
                if (now.TotalSeconds >= o.ReportEvery) peakRss = Math.Max(peakRss, ReadRssBytes());
                nextSample = now + SampleEvery;
            }
            if (now >= nextTrim)
            {
                SlabMemory.Trim();
                trims++;
                nextTrim = now + NextTrimDelay(mainRng);
            }
            if (now >= nextReport)
            {
                long ops = Volatile.Read(ref _operations);
                SlabStatistics s = SlabMemory.GetStatistics();
                double interval = now.TotalSeconds - lastReport;
                Console.WriteLine(
                    $"[{now.TotalSeconds,6:F1} s] ops {ops,11}  {(ops - lastOps) / interval,10:F0} ops/s  threads {Volatile.Read(ref _threadsCreated),6}  " +
                    $"in use {Mib(s.BytesInUse),7} MiB / {s.BlocksInUse,6} blocks  mapped {Mib(s.BytesMapped),7} MiB  rss {Mib(ReadRssBytes()),7} MiB");
                lastOps = ops;
                lastReport = now.TotalSeconds;
                // One line per due report: a main thread held up past several (a starved machine) skips them.
                do nextReport += TimeSpan.FromSeconds(o.ReportEvery); while (nextReport <= now);
            }
            if (now >= end) break;
        }

        StopAndJoin();
        long totalOps = Volatile.Read(ref _operations);
        double seconds = clock.Elapsed.TotalSeconds;
        Console.WriteLine($"soak: {totalOps} operations in {seconds:F1} s ({totalOps / seconds:F0}/s), {_threadsCreated} threads created, {trims} trims");
        if (!_errors.IsEmpty) return WorkerFailure();

        try
        {
            for (int i = 0; i < Exchange.Length; i++)
            {
                nint p = Interlocked.Exchange(ref Exchange[i], 0);
                if (p != 0) FreeVerified(p);
            }
        }
        catch (Exception e)
        {
            Console.WriteLine($"freeing the exchange array: {e}");
            return Failed($"freeing the exchange array: {e.GetType().Name}: {e.Message}");
        }

        // Every worker has been joined, so no thread is allocating: the statistics are exact now.
        SlabStatistics after = SlabMemory.GetStatistics();
        Console.WriteLine($"accounting: blocks in use {after.BlocksInUse} (before {before.BlocksInUse}), bytes in use {after.BytesInUse} (before {before.BytesInUse})");
        if (after.BlocksInUse != before.BlocksInUse || after.BytesInUse != before.BytesInUse)
            return Failed($"accounting is off by {after.BlocksInUse - before.BlocksInUse} blocks and {after.BytesInUse - before.BytesInUse} bytes after freeing everything");

        SlabMemory.Trim();
        SlabStatistics trimmed = SlabMemory.GetStatistics();
        long rssAfter = ReadRssBytes();
        Console.WriteLine($"after Trim: mapped {Mib(trimmed.BytesMapped)} MiB ({trimmed.Superslabs} superslabs, large cache {Mib(trimmed.LargeCachedBytes)} MiB), " +
                          $"rss {Mib(rssAfter)} MiB (before the soak {Mib(rssBefore)} MiB)");

        if (!OperatingSystem.IsLinux()) Console.WriteLine("rss: not measured (not Linux)");
        else if (peakRss == 0) Console.WriteLine("rss: not judged (the run ended within its first interval, which is warm-up)");
        else
        {
            long bound = 4 * peakLive + RssAllowance;
            Console.WriteLine($"rss: peak {Mib(peakRss)} MiB after the first interval; bound {Mib(bound)} MiB = 4 x peak in use {Mib(peakLive)} MiB " +
                              $"+ {Mib(RssFixedAllowance)} MiB + {o.Threads} threads x {Mib(RssAllowancePerThread)} MiB");
            if (peakRss > bound) return Failed($"RSS unbounded: peak {Mib(peakRss)} MiB exceeds the bound {Mib(bound)} MiB");
        }
        Console.WriteLine("soak: passed");
        return 0;
    }

    /// <summary>
    /// What RSS may hold besides 4 × the peak bytes in use. The bytes in use (size-class bytes of live
    /// blocks, large blocks' usable sizes) count four times: once for themselves, and up to three times
    /// again for the free blocks around them in partly used slabs, which thread churn and random
    /// lifetimes scatter. The fixed part covers what grows neither with live bytes nor with threads: the
    /// runtime (about 35 MiB before the soak, some 30 MiB more after thousands of threads have come and
    /// gone, with or without allocations), the large-block cache (64 MiB of freed, touched mappings), two
    /// cached empty superslabs (8 MiB), and two empty slabs kept per class (76 one-slot classes × 2 ×
    /// 64 KiB + 12 medium classes × 2 × 512 KiB = 22 MiB). The per-thread part covers each live thread's
    /// cache: a current slab for every class it used, with at least a page and for medium classes a
    /// whole block touched (about 5 MiB per worker measured, 8 allowed), plus its stack.
    /// A leak does not fit under it: a default run creates over a thousand threads, and a thread cache
    /// that is never reclaimed strands its slabs (hundreds of KiB to megabytes each); slabs never
    /// decommitted or large blocks never unmapped pile up with every Trim that fails to return them.
    /// </summary>
    private long RssAllowance => RssFixedAllowance + _options.Threads * RssAllowancePerThread;

    private void StartWorker(int slot)
    {
        long serial = Interlocked.Increment(ref _threadsCreated);
        int seed = unchecked(_options.Seed * 1_000_003 + (int)serial * 7919);
        var t = new Thread(() => WorkerBody(slot, serial, seed)) { IsBackground = true, Name = $"soak-{serial}" };
        // Stored before Start: once started, the new worker may end and store its own successor at any moment.
        Thread? previous = Interlocked.Exchange(ref _workers[slot], t);
        try
        {
            t.Start();
        }
        catch
        {
            Volatile.Write(ref _workers[slot], previous);
            throw;
        }
    }

    /// <summary>A worker's whole thread: its life, then its successor unless the soak is over.</summary>
    private void WorkerBody(int slot, long serial, int seed)
    {
        try
        {
            SoakWorker.Run(this, serial, seed);
        }
        catch (Exception e)
        {
            _errors.Enqueue(($"worker {serial}", e));
            _stopping = true;
            return;
        }
        try
        {
            if (!_stopping) StartWorker(slot);
        }
        catch (Exception e)
        {
            _errors.Enqueue(($"worker {serial}", new InvalidOperationException("starting the next worker failed", e)));
            _stopping = true;
        }
    }

    private void StartFirstWorkers()
    {
        try
        {
            for (int slot = 0; slot < _workers.Length && !_stopping; slot++) StartWorker(slot);
        }
        catch (Exception e)
        {
            _errors.Enqueue(("starter", e));
            _stopping = true;
        }
    }

    /// <summary>Ends the soak: no worker starts a successor once it sees the flag, and the starter starts no more slots.</summary>
    private void StopAndJoin()
    {
        _stopping = true;
        _starter?.Join();
        JoinWorkers();
    }

    /// <summary>Waits until every slot's last worker has ended. A worker stores its successor before it
    /// ends, so once the thread we joined is still the slot's, no successor can follow it.</summary>
    private void JoinWorkers()
    {
        for (int slot = 0; slot < _workers.Length; slot++)
        {
            while (true)
            {
                Thread? t = Volatile.Read(ref _workers[slot]);
                if (t is null) break; // the starter stopped before this slot, or its Start failed
                // Stored just before its Start: wait for the Start, or for the slot to go back to its
                // predecessor if the Start failed.
                if ((t.ThreadState & System.Threading.ThreadState.Unstarted) != 0)
                {
                    Thread.Sleep(1);
                    continue;
                }
                t.Join();
                if (Volatile.Read(ref _workers[slot]) == t) break;
            }
        }
    }

    private int WorkerFailure()
    {
        var errors = _errors.ToArray();
        foreach (var (who, e) in errors.Take(5)) Console.WriteLine($"{who}: {e}");
        if (errors.Length > 5) Console.WriteLine($"... and {errors.Length - 5} more");
        var (firstWho, first) = errors[0];
        return Failed($"{errors.Length} worker error(s); first, in {firstWho}: {first.GetType().Name}: {first.Message}");
    }

    private static int Failed(string why)
    {
        Console.WriteLine($"soak: FAILED: {why}");
        return 1;
    }

    private static unsafe void FreeVerified(nint p)
    {
        BlockStamp.Verify((void*)p);
        SlabMemory.Free((void*)p);
    }

    /// <summary>2 to 5 seconds: often enough that trims race with every phase of the workload, irregular
    /// so they do not fall into step with the report lines.</summary>
    private static TimeSpan NextTrimDelay(Random rng) => TimeSpan.FromSeconds(2 + 3 * rng.NextDouble());

    private static TimeSpan Min(TimeSpan a, TimeSpan b) => a < b ? a : b;

    private static string Mib(long bytes) => (bytes / (double)MiB).ToString("F1", CultureInfo.InvariantCulture);

    /// <summary>The process's resident set (VmRSS), in bytes; 0 when not on Linux.</summary>
    private static long ReadRssBytes()
    {
        if (!OperatingSystem.IsLinux()) return 0;
        foreach (string line in File.ReadLines("/proc/self/status"))
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                return long.Parse(line[6..].Replace("kB", "").Trim(), CultureInfo.InvariantCulture) * 1024;
        return 0;
    }
}
