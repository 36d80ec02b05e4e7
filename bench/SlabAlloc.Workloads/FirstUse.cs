using System.Diagnostics;

namespace SlabAlloc.Workloads;

/// <summary>
/// What a process pays the first time it takes each allocation path: <c>firstuse [--allocator slab|native]</c>.
/// Run in a fresh process; each line is the wall time of one call, in microseconds, in the order a
/// program meets them: the first small allocation and free of the process (static set-up, the first
/// thread cache, the first slab, and the JIT of every method on the way), a second small allocation
/// of another class, the first mid-size (20 KiB) and large (1 MiB) blocks, then the first allocation of
/// a second and a third thread. The same calls a second time show the steady cost for comparison.
/// </summary>
/// <remarks>The benchmark's own code is compiled before the first measured call (a call with
/// <c>measure: false</c>), so the times are the allocator's, not the harness's.</remarks>
internal static unsafe class FirstUse
{
    public static int Run(IReadOnlyList<string> args, string allocator)
    {
        int afterLoadMs = 0;
        if (args.Count == 2 && args[0] == "--after-load" && int.TryParse(args[1], out int ms) && ms >= 0) afterLoadMs = ms;
        else if (args.Count != 0) throw new ArgumentException("firstuse takes no arguments besides --allocator and --after-load MS");
        return allocator == "native" ? Measure<NativeAllocator>(afterLoadMs) : Measure<SlabAllocator>(afterLoadMs);
    }

    /// <param name="afterLoadMs">With <c>--after-load MS</c>: SlabAlloc is loaded first (a statistics call,
    /// which allocates nothing), and the first allocation comes that many milliseconds later, as in a
    /// program that touches SlabAlloc while it starts and allocates when its work begins. Without it, the
    /// first allocation is what loads SlabAlloc.</param>
    private static int Measure<TAlloc>(int afterLoadMs) where TAlloc : struct, IBenchAllocator
    {
        // The harness's own first-time costs (Stopwatch, the lambdas, Thread) go here, unmeasured.
        Time<TAlloc>(0, measure: false);
        RunOnNewThread(() => Time<TAlloc>(0, measure: false));
        if (afterLoadMs > 0)
        {
            _ = SlabMemory.GetLockStatistics();
            Thread.Sleep(afterLoadMs);
        }

        var lines = new List<string>();
        void Step(string what, nuint size)
        {
            double first = Time<TAlloc>(size, measure: true);
            double again = Time<TAlloc>(size, measure: true);
            lines.Add($"{what,-44} {first,10:F1} us   (again: {again,6:F1} us)");
        }
        Step("first 64 B alloc+free of the process", 64);
        Step("first 200 B alloc+free (another class)", 200);
        Step("first 20 KiB alloc+free", 20 * 1024);
        Step("first 1 MiB alloc+free", 1024 * 1024);
        for (int t = 2; t <= 3; t++)
        {
            double first = 0, again = 0;
            RunOnNewThread(() => { first = Time<TAlloc>(64, measure: true); again = Time<TAlloc>(64, measure: true); });
            lines.Add($"{$"first 64 B alloc+free of thread {t}",-44} {first,10:F1} us   (again: {again,6:F1} us)");
        }
        Console.WriteLine($"firstuse, allocator {TAlloc.Name}{(Environment.GetEnvironmentVariable("LD_PRELOAD") is { Length: > 0 } p ? $" ({Path.GetFileName(p)})" : "")}:");
        foreach (string line in lines) Console.WriteLine("  " + line);
        return 0;
    }

    private static double Time<TAlloc>(nuint size, bool measure) where TAlloc : struct, IBenchAllocator
    {
        long start = Stopwatch.GetTimestamp();
        if (measure)
        {
            void* p = TAlloc.Alloc(size);
            *(byte*)p = 1;
            TAlloc.Free(p);
        }
        return Stopwatch.GetElapsedTime(start).TotalMicroseconds;
    }

    private static void RunOnNewThread(Action body)
    {
        var t = new Thread(() => body());
        t.Start();
        t.Join();
    }
}
