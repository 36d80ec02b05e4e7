using System.Diagnostics;
using System.Globalization;

namespace SlabAlloc.Workloads;

/// <summary>
/// The main job: the A/B comparison of SlabAlloc's lock-free and mutex pools against glibc and the
/// peer allocators, on Larson, mid-large and the ports of mimalloc-bench's xmalloc-test, cache-scratch,
/// cache-thrash, glibc-thread and mstress, at 1, 2, 4 and 8 threads. Every run is a child process
/// (so LD_PRELOAD can swap the allocator under the very same harness); runs are interleaved
/// (A B C ... A B C ...), each cell repeated with the first repetition dropped, and reported as the
/// median with min and max.
/// </summary>
internal static class Compare
{
    /// <summary>Larson with thread caches limited to 4 blocks, so most operations reach the shared pool:
    /// the setting where the pool itself is the bottleneck (SlabAlloc's two pools only).</summary>
    public const string PoolStress = "poolstress";
    private static readonly Dictionary<string, string> PoolStressEnvironment = new()
    {
        ["SLABALLOC_THREAD_CACHE_LIMIT"] = "4",
        ["SLABALLOC_EMPTY_SLABS_PER_CLASS"] = "64",
    };

    /// <summary>Every workload of the comparison, in the order of the plan.</summary>
    public static readonly string[] Workloads = ["larson", "midlarge", PoolStress, "xmalloc", "cachescratch", "cachethrash", "glibcthread", "mstress"];

    /// <param name="LarsonSeconds">The length of each Larson, xmalloc and glibcthread run.</param>
    /// <param name="CacheRepetitions">cache-scratch's and cache-thrash's repetitions (split among the threads).</param>
    /// <param name="Calls">The calls form (<see cref="CallForm"/>): every allocation and free in a method of its own.</param>
    public sealed record Options(double LarsonSeconds, int Repetitions, int[] Threads, string OutputDirectory, int MidLargeCycles, int CacheRepetitions, string[] Workloads, bool Calls);

    public static int Run(List<string> args, bool calls)
    {
        Options options = ParseOptions(args, calls);
        IReadOnlyList<Contender> contenders = Contender.Available(out IReadOnlyList<string> missing);
        if (missing.Count > 0)
            Console.WriteLine($"not installed, skipped: {string.Join(", ", missing)} — install with: apt-get install libmimalloc2.0 libjemalloc2 libtcmalloc-minimal4");

        string[] workloads = options.Workloads;
        var plan = new List<(int Rep, string Workload, int Threads, Contender Who)>();
        for (int rep = 0; rep < options.Repetitions; rep++)
            foreach (string w in workloads)
                foreach (int t in options.Threads)
                    foreach (Contender c in contenders)
                        if (w != PoolStress || c.Allocator == "slab") plan.Add((rep, w, t, c));

        Console.WriteLine($"A/B comparison: {contenders.Count} allocators x {workloads.Length} workloads x threads {string.Join(",", options.Threads)} x {options.Repetitions} repetitions (first dropped) = {plan.Count} runs");
        var results = new List<(Cell Cell, RunFigures Figures)>();
        var clock = Stopwatch.StartNew();
        for (int i = 0; i < plan.Count; i++)
        {
            var (rep, workload, threads, who) = plan[i];
            Console.Error.Write($"\r[{i + 1,3}/{plan.Count}] {workload,-12} T={threads} {who.Name,-13} rep {rep + 1}/{options.Repetitions}  {clock.Elapsed:mm\\:ss} ");
            RunFigures figures = RunChild(who, workload, threads, options);
            if (rep > 0) results.Add((new Cell(workload, threads, who.Name), figures));
        }
        Console.Error.WriteLine();

        var summary = Summary.Build(results, contenders.Select(c => c.Name).ToList());
        Console.WriteLine();
        Console.WriteLine(summary.ToTerminalTable());
        string command = "./build.sh" + (args.Count > 0 ? " " + string.Join(' ', args) : "") + (calls ? " --calls" : "");
        ResultsWriter.Write(options.OutputDirectory, summary, command, clock.Elapsed, options);
        Console.WriteLine(summary.LockCheck());
        Console.WriteLine(summary.MemoryTarget());
        Console.WriteLine($"written: {Path.GetRelativePath(Environment.CurrentDirectory, options.OutputDirectory)}/{ResultsWriter.BaseName(options)}.{{md,csv}}" +
            (options.Calls ? "" : ", ab-*.png") + $" ({clock.Elapsed.TotalSeconds:F0} s)");
        return summary.LockFreeTookNoLock ? 0 : 1;
    }

    private static RunFigures RunChild(Contender who, string workload, int threads, Options options)
    {
        string dll = typeof(Compare).Assembly.Location;
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(dll);
        psi.ArgumentList.Add(workload == PoolStress ? "larson" : workload);
        string t = threads.ToString(CultureInfo.InvariantCulture), seconds = options.LarsonSeconds.ToString(CultureInfo.InvariantCulture);
        string[] workloadArgs = workload switch
        {
            "larson" or PoolStress => [seconds, "8", "1000", "5000", "100", "4141", t],
            "midlarge" => [t, options.MidLargeCycles.ToString(CultureInfo.InvariantCulture), "2048", "42"],
            "xmalloc" => [t, seconds, "64"],
            "cachescratch" or "cachethrash" => [t, "1000", "1", options.CacheRepetitions.ToString(CultureInfo.InvariantCulture)],
            "glibcthread" => [t, seconds],
            "mstress" => [t, "50", MStressIterations(threads, options).ToString(CultureInfo.InvariantCulture)],
            _ => throw new ArgumentException($"unknown workload '{workload}'"),
        };
        foreach (string a in workloadArgs) psi.ArgumentList.Add(a);
        psi.ArgumentList.Add("--allocator");
        psi.ArgumentList.Add(who.Allocator);
        psi.ArgumentList.Add("--json");
        if (options.Calls) psi.ArgumentList.Add("--calls");
        foreach (string key in psi.Environment.Keys.Where(k => k.StartsWith("SLABALLOC_", StringComparison.Ordinal) || k == "LD_PRELOAD").ToList())
            psi.Environment.Remove(key);
        foreach (var (key, value) in who.Environment) psi.Environment[key] = value;
        if (workload == PoolStress) foreach (var (key, value) in PoolStressEnvironment) psi.Environment[key] = value;

        using Process p = Process.Start(psi) ?? throw new InvalidOperationException("could not start a benchmark process");
        Task<string> stderr = p.StandardError.ReadToEndAsync();
        string stdout = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        string json = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).LastOrDefault(l => l.StartsWith('{')) ?? "";
        if (p.ExitCode != 0 || json.Length == 0)
            throw new InvalidOperationException($"{workload} T={threads} {who.Name} failed (exit {p.ExitCode}):\n{stdout}\n{stderr.Result}");
        return RunFigures.FromJson(json);
    }

    /// <summary>mstress's iterations for <paramref name="threads"/> threads at scale 50: thread t makes
    /// 7,500 × (t % 8 + 1) allocations an iteration, so the iterations shrink as the threads grow, to about
    /// three million allocations per second of the other workloads' run length, but never below bench.sh's
    /// 25: fewer would measure the first generation of threads (the process's start) more than threads
    /// replacing threads.</summary>
    public static int MStressIterations(int threads, Options options)
    {
        long perIteration = 0;
        for (int t = 0; t < threads; t++) perIteration += 7500L * (t % 8 + 1);
        return (int)Math.Max(25, Math.Round(3e6 * options.LarsonSeconds / perIteration));
    }

    private static Options ParseOptions(List<string> args, bool calls)
    {
        double seconds = 0.4;
        int reps = 5, cycles = 1_000_000, cacheRepetitions = 200_000;
        int[] threads = [1, 2, 4, 8];
        string[] workloads = Workloads;
        string? output = null;
        for (int i = 0; i < args.Count; i++)
        {
            string Value() => i + 1 < args.Count ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
            switch (args[i])
            {
                case "--quick": seconds = 0.2; reps = 2; threads = [1, 2]; cycles = 10000; cacheRepetitions = 50_000; break;
                case "--seconds": seconds = double.Parse(Value(), CultureInfo.InvariantCulture); break;
                case "--reps": reps = Math.Max(2, int.Parse(Value(), CultureInfo.InvariantCulture)); break;
                case "--cycles": cycles = int.Parse(Value(), CultureInfo.InvariantCulture); break;
                case "--threads": threads = Value().Split(',').Select(int.Parse).ToArray(); break;
                case "--out": output = Value(); break;
                case "--workloads":
                    workloads = Value().Split(',');
                    if (workloads.FirstOrDefault(w => !Workloads.Contains(w)) is string unknown)
                        throw new ArgumentException($"unknown workload '{unknown}' (the workloads: {string.Join(",", Workloads)})");
                    break;
                default: throw new ArgumentException($"unknown compare option '{args[i]}'");
            }
        }
        return new Options(seconds, reps, threads, output ?? Path.Combine(RepositoryRoot(), "docs", "results"), cycles, cacheRepetitions, workloads, calls);
    }

    private static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "SlabAlloc.sln"))) return dir.FullName;
        return Environment.CurrentDirectory;
    }
}

/// <summary>One cell of the comparison: a workload at a thread count with one allocator.</summary>
internal readonly record struct Cell(string Workload, int Threads, string Contender);
