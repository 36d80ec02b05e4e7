using System.Globalization;
using SlabAlloc.Workloads;

CultureInfo.DefaultThreadCurrentCulture = CultureInfo.InvariantCulture;
CultureInfo.CurrentCulture = CultureInfo.InvariantCulture;
try
{
    return Dispatch(args);
}
catch (ArgumentException e)
{
    Console.Error.WriteLine($"SlabAlloc.Workloads: {e.Message}");
    Console.Error.WriteLine(Usage);
    return 2;
}

static int Dispatch(string[] args)
{
    // No default command: which measurement to take is the caller's choice (./build.sh runs the main job,
    // compare). The quick correctness check, selfcheck, is a gate rather than a measurement: tools/SlabAlloc.Soak.
    if (args.Length == 0) throw new ArgumentException("no command");
    var rest = args.Skip(1).ToList();
    bool json = Take(rest, "--json");
    string? allocatorOption = TakeValue(rest, "--allocator");
    string allocator = allocatorOption ?? "slab";
    bool stats = Take(rest, "--stats");
    bool calls = Take(rest, "--calls");
    // --after-load MS (larson, midlarge): SlabAlloc is loaded (its start-up thread begins) MS milliseconds
    // before the workload starts, as a preloaded native allocator is initialized before main; the same for
    // --allocator native, whose runs set SLABALLOC_WARMUP=0. Without it, the run's first call loads SlabAlloc.
    if (args[0] is "larson" or "midlarge" && TakeValue(rest, "--after-load") is string afterLoad)
    {
        _ = SlabAlloc.SlabMemory.GetLockStatistics(); // allocates nothing
        Thread.Sleep(int.Parse(afterLoad, System.Globalization.CultureInfo.InvariantCulture));
    }
    switch (args[0])
    {
        case "larson":
        {
            var a = Larson.Parse(rest);
            return RunWorkload<Larson, Larson.Arguments>(a, allocator, calls, json, stats, r => $"Throughput = {r.OpsPerSecond,8:F0} operations per second, relative time: {1e9 / r.OpsPerSecond:F3}s. {MemoryLine(r)}");
        }
        case "midlarge":
        {
            var a = MidLarge.Parse(rest);
            return RunWorkload<MidLarge, MidLarge.Arguments>(a, allocator, calls, json, stats, r => $"Throughput = {r.OpsPerSecond:F0} ops/s [t={a.Threads} iter={a.Cycles} ws={a.WorkingSet}] time={r.Seconds:F3}s {MemoryLine(r)}");
        }
        case "xmalloc":
        {
            var a = XmallocTest.Parse(rest);
            return RunWorkload<XmallocTest, XmallocTest.Arguments>(a, allocator, calls, json, stats, r =>
            {
                double mfrees = r.OpsPerSecond / 1e6;
                return $"rtime: {100 / mfrees:F3}, free/sec: {mfrees:F3} M [producers={a.Threads} consumers={a.Threads} size={a.Size}] time={r.Seconds:F3}s {MemoryLine(r)}";
            });
        }
        case "cachescratch":
        {
            var a = CacheScratch.Parse(rest);
            return RunWorkload<CacheScratch, CacheScratch.Arguments>(a, allocator, calls, json, stats, r => $"Time = {r.Seconds:F3}s, {r.OpsPerSecond / 1e6:F1} M byte writes per second [t={a.Threads} iter={a.Iterations} size={a.Size} rep={a.Repetitions}] {MemoryLine(r)}");
        }
        case "cachethrash":
        {
            var a = CacheThrash.Parse(rest);
            return RunWorkload<CacheThrash, CacheThrash.Arguments>(a, allocator, calls, json, stats, r => $"Time = {r.Seconds:F3}s, {r.OpsPerSecond / 1e6:F1} M byte writes per second [t={a.Threads} iter={a.Iterations} size={a.Size} rep={a.Repetitions}] {MemoryLine(r)}");
        }
        case "glibcthread":
        {
            var a = GlibcThread.Parse(rest);
            return RunWorkload<GlibcThread, GlibcThread.Arguments>(a, allocator, calls, json, stats, r => $"{r.Operations} iterations, {r.OpsPerSecond:F0} per second [t={a.Threads}] time={r.Seconds:F3}s {MemoryLine(r)}");
        }
        case "mstress":
        {
            var a = MStress.Parse(rest);
            return RunWorkload<MStress, MStress.Arguments>(a, allocator, calls, json, stats, r => $"{r.Operations} allocations, {r.OpsPerSecond:F0} per second [t={a.Threads} scale={a.Scale} iter={a.Iterations}] time={r.Seconds:F3}s {MemoryLine(r)}");
        }
        case "compare":
            return Compare.Run(rest, calls);
        case "hotthread":
            return HotThread.Run(rest);
        case "threadcycles":
            return ThreadCycles.Run(rest, allocatorOption, int.Parse(TakeValue(rest, "--reps") ?? "3", CultureInfo.InvariantCulture));
        case "firstuse":
            return FirstUse.Run(rest, allocator);
        case "echo":
            return PipelinesEcho.Run(PipelinesEcho.Parse(rest, TakeValue(rest, "--pool"), TakeValue(rest, "--sizes")), json);
        case "pairs" or "mixed" or "fill":
            return MicroLoops.Run(args[0], rest, allocator);
        case "poolcost":
            return PoolCost.Run(rest);
        default:
            throw new ArgumentException($"unknown command '{args[0]}'");
}
}

// Runs a workload in the chosen form and prints its result line (or its JSON) and, with --stats, SlabAlloc's statistics.
static int RunWorkload<TWork, TArgs>(TArgs a, string allocator, bool calls, bool json, bool stats, Func<RunFigures, string> line)
    where TWork : CallForm.IWorkload<TArgs>
{
    RunFigures r = CallForm.Run<TWork, TArgs>(a, allocator, calls);
    Console.WriteLine(json ? r.ToJson() : line(r));
    PrintStatistics(stats, allocator);
    return 0;
}

static string MemoryLine(RunFigures r) =>
    $"Memory: live peak {Mib(r.LiveBytesPeak):F1} MiB, RSS peak {r.PeakRssKiB / 1024.0:F1} - baseline {r.BaselineRssKiB / 1024.0:F1} = growth {r.RssGrowthKiB / 1024.0:F1} MiB" +
    (r.SlabMappedBytes > 0 ? $", slab mapped {Mib(r.SlabMappedBytes):F1} MiB." : ".");

// --stats: SlabAlloc's statistics at the end of the run, on stderr (the result line stays alone on stdout).
static void PrintStatistics(bool stats, string allocator)
{
    if (stats && allocator == "slab") Console.Error.WriteLine(SlabAlloc.SlabMemory.GetStatistics());
}

static double Mib(long bytes) => bytes / (1024.0 * 1024.0);


static bool Take(List<string> args, string flag) => args.Remove(flag);

static string? TakeValue(List<string> args, string flag)
{
    int i = args.IndexOf(flag);
    if (i < 0) return null;
    if (i + 1 >= args.Count) throw new ArgumentException($"{flag} needs a value");
    string value = args[i + 1];
    args.RemoveRange(i, 2);
    return value;
}

partial class Program
{
    internal const string Usage = """
        usage: SlabAlloc.Workloads <command> ...
          larson sleep_sec min_size max_size chunks_per_thread rounds seed threads [--allocator slab|native] [--calls] [--json] [--stats] [--after-load MS]
          midlarge threads cycles working_set seed [--allocator slab|native] [--calls] [--json] [--stats] [--after-load MS]
                                                  (--after-load: SlabAlloc loaded MS milliseconds before the workload starts)
          xmalloc threads seconds size [--allocator slab|native] [--calls] [--json] [--stats]
                                              (xmalloc-test: threads producers hand blocks to threads consumers; size -1: mixed sizes)
          cachescratch threads iterations size repetitions [--allocator slab|native] [--calls] [--json] [--stats]
                                              (Hoard's cache-scratch: each thread frees an object main allocated, then allocates and writes its own)
          cachethrash threads iterations size repetitions [--allocator slab|native] [--calls] [--json] [--stats]
                                              (Hoard's cache-thrash: each thread allocates and writes small objects)
          glibcthread threads seconds [--allocator slab|native] [--calls] [--json] [--stats]
                                              (glibc's bench-malloc-thread: random-size malloc/free over 1,024 slots a thread)
          mstress threads scale iterations [--allocator slab|native] [--calls] [--json] [--stats]
                                              (mimalloc's stress test: threads made and ended each iteration, blocks passed between them)
        The workloads run the allocator's calls inlined into their loop methods; --calls puts each allocation
        and free in a method of its own (as in most programs; a native allocator's P/Invoke frame per call).
          compare [--quick] [--seconds S] [--reps N] [--cycles C] [--threads 1,2,4,8] [--workloads larson,midlarge,...] [--calls] [--out DIR]
          pairs SIZE N [--allocator slab|native]      (for callgrind: N alloc+free pairs)
          mixed N [--allocator slab|native]           (N batches of 1000 allocations then 1000 frees)
          fill N SIZE [--allocator slab|native]       (N blocks allocated then freed: on fresh memory, then reused)
          hotthread [size] [slots] [iterations]       (page faults of a hot thread, cold vs ReserveThreadCache)
          threadcycles [cycles] [threads-at-once] [--allocator slab|native] [--reps N]
                                              (memory across thread create/exit cycles: process RSS against NativeMemory,
                                               in child processes, and SlabAlloc's mapped memory; default 10000 4, 3 reps)
          firstuse [--allocator slab|native] [--after-load MS]  (run in a fresh process: the cost of each allocation path's first use;
                                                  --after-load: SlabAlloc loaded MS milliseconds before the first allocation)
          poolcost [count]                            (SlabMemoryPool's owners beside MemoryPool<byte>.Shared: rent/dispose,
                                               owners dropped and finalized, gen0 pauses with count owners alive)
          echo clients seconds [--pool slab|shared] [--sizes MIN-MAX|N] [--json]
                                              (System.IO.Pipelines echo over loopback TCP, every buffer from SlabMemoryPool or
                                               MemoryPool<byte>.Shared; message sizes log-uniform MIN-MAX, default 64-65536, or all N)
        The soak and the self-check are tools/SlabAlloc.Soak (./build.sh soak, ./build.sh selfcheck).
        """;
}
