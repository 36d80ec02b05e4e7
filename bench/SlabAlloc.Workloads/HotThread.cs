using System.Runtime.CompilerServices;

namespace SlabAlloc.Workloads;

/// <summary>
/// Page faults on a hot thread (a latency-critical loop stalls on each): a thread runs a
/// steady-state loop that allocates and frees blocks of one size among a fixed number of slots, and
/// counts its own page faults with <c>getrusage(RUSAGE_THREAD)</c>. Cold: the thread's code is warm
/// (a loop over another size class ran first) but its cache for this size is not. Warmed: the same,
/// after <see cref="SlabMemory.ReserveThreadCache"/>. Run with <c>SLABALLOC_PREFAULT=1</c> for the
/// full effect. <c>hotthread [size] [slots] [iterations]</c>.
/// </summary>
internal static unsafe class HotThread
{
    public static int Run(IReadOnlyList<string> args)
    {
        nuint size = args.Count > 0 ? nuint.Parse(args[0]) : 64;
        int slots = args.Count > 1 ? int.Parse(args[1]) : 1024;
        long iterations = args.Count > 2 ? long.Parse(args[2]) : 5_000_000;
        var cold = OnFreshThread(() => Measure(size, slots, iterations, reserve: false));
        var warmed = OnFreshThread(() => Measure(size, slots, iterations, reserve: true));
        Console.WriteLine($"hot thread, {size}-byte blocks in {slots} slots, {iterations} iterations, prefault {(Environment.GetEnvironmentVariable("SLABALLOC_PREFAULT") == "1" ? "on" : "off")}:");
        Console.WriteLine($"  cold cache:                 {cold.Minor} minor, {cold.Major} major page faults in the loop");
        Console.WriteLine($"  after ReserveThreadCache:   {warmed.Minor} minor, {warmed.Major} major page faults in the loop");
        return 0;
    }

    private static (long Minor, long Major) OnFreshThread(Func<(long, long)> body)
    {
        (long, long) result = default;
        var t = new Thread(() => result = body());
        t.Start();
        t.Join();
        return result;
    }

    private static (long Minor, long Major) Measure(nuint size, int slots, long iterations, bool reserve)
    {
        var table = GC.AllocateArray<nint>(slots, pinned: true);
        // Warm the code (JIT, tiering) on another size class, so the loop below faults only for memory.
        nuint other = size <= 512 ? size * 2 + 16 : size / 2;
        // Pauses let tiered compilation install the optimized loop before measuring (it waits for
        // 100 ms of calm), so no code is replaced under the measured loop.
        for (int pass = 0; pass < 3; pass++)
        {
            for (int round = 0; round < 40; round++) Loop(table, other, 20_000, seed: (uint)round + 1);
            FreeAll(table);
            Thread.Sleep(200);
        }
        _ = ProcessCounters.ThreadPageFaults(); // binds the system call before it is used to measure
        if (reserve)
        {
            SlabMemory.ReserveThreadCache(size, slots);
            Loop(table, size, 10_000, seed: 99); // the loop's own first pass, from reserved blocks
            FreeAll(table);
        }
        var before = ProcessCounters.ThreadPageFaults();
        for (long done = 0; done < iterations; done += 50_000) Loop(table, size, 50_000, seed: (uint)done + 7);
        var after = ProcessCounters.ThreadPageFaults();
        FreeAll(table);
        return (after.Minor - before.Minor, after.Major - before.Major);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void Loop(nint[] table, nuint size, int iterations, uint seed)
    {
        uint x = seed | 1;
        for (int i = 0; i < iterations; i++)
        {
            x ^= x << 13; x ^= x >> 17; x ^= x << 5;
            int k = (int)(x % (uint)table.Length);
            if (table[k] != 0)
            {
                SlabMemory.Free((void*)table[k]);
                table[k] = 0;
            }
            else
            {
                var p = (byte*)SlabMemory.Alloc(size);
                for (nuint offset = 0; offset < size; offset += 4096) p[offset] = (byte)i;
                table[k] = (nint)p;
            }
        }
    }

    private static void FreeAll(nint[] table)
    {
        for (int i = 0; i < table.Length; i++)
            if (table[i] != 0) { SlabMemory.Free((void*)table[i]); table[i] = 0; }
    }
}
