using System.Globalization;
using ScottPlot;
using SlabAlloc.Testing;

namespace SlabAlloc.Workloads;

/// <summary>Writes the comparison to <c>docs/results/</c>: Markdown and CSV tables and one PNG
/// chart per workload (threads against throughput, one line per allocator).</summary>
internal static class ResultsWriter
{
    /// <summary>Whether the SlabAlloc.dll the runs loaded is precompiled, as the package ships it.</summary>
    private static string LibraryImage()
    {
        using var pe = new System.Reflection.PortableExecutable.PEReader(File.OpenRead(typeof(SlabMemory).Assembly.Location));
        return pe.PEHeaders.CorHeader?.ManagedNativeHeaderDirectory.Size > 0
            ? "`SlabAlloc.dll` compiled ReadyToRun, as the package ships it (`./build.sh run` runs the harness against that image)."
            : "`SlabAlloc.dll` as built (IL only, compiled by the JIT as it runs; the package ships a ReadyToRun image).";
    }

    /// <summary>The tables' file name without extension: <c>ab-latest</c>, or <c>ab-calls</c> for the calls form.</summary>
    public static string BaseName(Compare.Options options) => options.Calls ? "ab-calls" : "ab-latest";

    public static void Write(string directory, Summary summary, string command, TimeSpan elapsed, Compare.Options options)
    {
        Directory.CreateDirectory(directory);
        File.WriteAllText(Path.Combine(directory, BaseName(options) + ".csv"), summary.ToCsv());
        string form = options.Calls
            ? "Form: calls. Every allocation and free goes through a method of its own, as in most programs: nothing of SlabAlloc is inlined into the workload's loop, and a native allocator sets up its P/Invoke frame on every call. No charts; the loop form's are in ab-latest.md."
            : "Form: loop. The allocator's calls are inlined into the workload's loop method: SlabAlloc's fast paths become part of the loop, and a native allocator's P/Invoke frame is set up once per loop method (the form most favourable to the native allocators). The calls form, every call in a method of its own, is in ab-calls.md when it was run (`--calls`).";
        string md = $"""
            # A/B comparison: SlabAlloc lock-free vs mutex pool vs native allocators

            Produced by `{command}` on {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC in {elapsed.TotalSeconds:F0} s.

            Machine: {MachineDescription.Text()}

            SlabAlloc: {LibraryImage()}

            {form}

            Workloads: Larson `{options.LarsonSeconds} 8 1000 5000 100 4141 T` and mid-large `T {options.MidLargeCycles} 2048 42`,
            T = {string.Join(", ", options.Threads)}, {options.Repetitions} runs per cell; `poolstress` is the same Larson with
            thread caches limited to 4 blocks (`SLABALLOC_THREAD_CACHE_LIMIT=4`), so most operations reach the shared pool,
            run for SlabAlloc's two pools only. The ports of mimalloc-bench's workloads: `xmalloc T {options.LarsonSeconds} 64`
            (xmalloc-test: T producers hand 64-byte blocks to T consumers, every free remote; operations are frees),
            `cachescratch T 1000 1 {options.CacheRepetitions}` and `cachethrash T 1000 1 {options.CacheRepetitions}` (Hoard's
            passive and active false sharing; operations are byte writes, the same total at every T, so the ideal
            is a speed-up by the number of cores), `glibcthread T {options.LarsonSeconds}` (glibc's bench-malloc-thread;
            operations are free-and-malloc iterations) and `mstress T 50 N` (mimalloc's stress test: each iteration
            starts T threads that pass blocks to each other and to the next iteration's threads, then ends them;
            N = {string.Join(" / ", options.Threads.Select(t => Compare.MStressIterations(t, options)))} iterations at
            T = {string.Join(" / ", options.Threads)}; operations are allocations). Each cell is the median of its runs after the first was
            dropped, with min and max; runs were interleaved across allocators. `x 1T` is the speed-up over
            the same allocator at 1 thread, `x glibc` the ratio to glibc malloc through `NativeMemory` in the
            same harness. Lock and CAS columns are SlabAlloc's own statistics (`SLABALLOC_LOCK_STATS=1`);
            context switches, page faults and peak RSS are the child process's, from /proc. `live MiB` is
            the most bytes the workload held at once, as requested sizes (Larson: exact, summed at the end
            of the warm-up and at the stop; mid-large: the sum of each thread's own peak, an upper bound);
            `RSS growth MiB` is peak RSS less the RSS read just before the first allocation, that is, the
            allocator's footprint (and the workload threads') beyond the .NET runtime's.

            {(options.Calls ? "" : string.Join("\n", options.Workloads.Select(w => $"![{w}](ab-{w}.png)")))}

            {summary.ToMarkdown()}
            {summary.LockCheck()}

            {summary.MemoryTarget()}
            """;
        File.WriteAllText(Path.Combine(directory, BaseName(options) + ".md"), md);
        if (options.Calls) return;
        foreach (string workload in summary.Rows.Select(r => r.Cell.Workload).Distinct())
            Chart(summary, workload, Path.Combine(directory, $"ab-{workload}.png"));
    }

    private static void Chart(Summary summary, string workload, string path)
    {
        var plot = new Plot();
        foreach (string contender in summary.Contenders)
        {
            var rows = summary.Rows.Where(r => r.Cell.Workload == workload && r.Cell.Contender == contender).OrderBy(r => r.Cell.Threads).ToArray();
            if (rows.Length == 0) continue;
            var line = plot.Add.Scatter(rows.Select(r => (double)r.Cell.Threads).ToArray(), rows.Select(r => r.MedianOps / 1e6).ToArray());
            line.LegendText = contender;
            line.LineWidth = contender.StartsWith("slab", StringComparison.Ordinal) ? 3 : 1.5f;
            line.MarkerSize = 7;
        }
        plot.Title(workload switch
        {
            "larson" => "Larson (8-1000 B, thread churn): throughput by threads, 2 cores",
            "midlarge" => "mid-large (8-34 KiB): throughput by threads, 2 cores",
            Compare.PoolStress => "Larson with 4-block thread caches (the pool is the bottleneck), 2 cores",
            "xmalloc" => "xmalloc-test (64 B, T producers to T consumers, every free remote), 2 cores",
            "cachescratch" => "cache-scratch (passive false sharing, 1 B objects), 2 cores",
            "cachethrash" => "cache-thrash (active false sharing, 1 B objects), 2 cores",
            "mstress" => "mstress (8 B-51 KiB, threads made and ended every iteration), 2 cores",
            _ => "glibc bench-malloc-thread (4 B-32 KiB, 1,024 slots a thread), 2 cores",
        });
        plot.XLabel("threads");
        plot.YLabel(workload switch
        {
            "xmalloc" => "million frees per second (median)",
            "cachescratch" or "cachethrash" => "million byte writes per second (median)",
            "glibcthread" => "million iterations per second (median)",
            "mstress" => "million allocations per second (median)",
            _ => "million operations per second (median)",
        });
        plot.Axes.SetLimitsY(0, summary.Rows.Where(r => r.Cell.Workload == workload).Max(r => r.MaxOps) / 1e6 * 1.1);
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual(
            summary.Rows.Select(r => r.Cell.Threads).Distinct().Select(t => new Tick(t, t.ToString(CultureInfo.InvariantCulture))).ToArray());
        plot.ShowLegend(Alignment.LowerRight);
        plot.SavePng(path, 900, 520);
    }
}
