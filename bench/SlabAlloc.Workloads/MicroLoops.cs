using System.Diagnostics;
using System.Runtime.CompilerServices;

namespace SlabAlloc.Workloads;

/// <summary>
/// Tight single-thread loops for instruction counting under <c>valgrind --tool=callgrind</c>:
/// run with two counts (say 1M and 3M), and the difference divided by the difference of counts is the cost of one
/// iteration, free of start-up. <c>pairs SIZE N</c>: alloc+free of SIZE bytes. <c>mixed N</c>: batches of
/// 1000 allocations of 16-256 bytes, then 1000 frees (N batches). <c>fill N SIZE</c>: N blocks allocated
/// (one byte of each written) and then freed, in rounds of SIZE and SIZE + 16 bytes in turn, so that each
/// round takes the slabs the other size gave back and hands out their blocks for the first time since they
/// were formatted again: the cost of handing out fresh blocks, on resident memory; the time of each phase
/// per block.
/// </summary>
internal static unsafe class MicroLoops
{
    public static int Run(string kind, IReadOnlyList<string> args, string allocator)
    {
        if (kind == "fill")
        {
            if (allocator == "native") Fill<NativeAllocator>(int.Parse(args[0]), (nuint)int.Parse(args[1]));
            else Fill<SlabAllocator>(int.Parse(args[0]), (nuint)int.Parse(args[1]));
            return 0;
        }
        var clock = Stopwatch.StartNew();
        long iterations = kind switch
        {
            "pairs" when allocator == "native" => Pairs<NativeAllocator>((nuint)int.Parse(args[0]), long.Parse(args[1])),
            "pairs" => Pairs<SlabAllocator>((nuint)int.Parse(args[0]), long.Parse(args[1])),
            "mixed" when allocator == "native" => Mixed<NativeAllocator>(long.Parse(args[0])),
            "mixed" => Mixed<SlabAllocator>(long.Parse(args[0])),
            _ => throw new ArgumentException($"unknown loop '{kind}'"),
        };
        Console.WriteLine($"{kind} {allocator}: {iterations} alloc+free pairs, {clock.Elapsed.TotalMilliseconds * 1e6 / Math.Max(1, iterations):F2} ns each");
        return 0;
    }

    private static long Pairs<TAlloc>(nuint size, long count) where TAlloc : struct, IBenchAllocator
    {
        // Many short calls rather than one long loop, so the loop is promoted to fully optimized
        // Tier-1 code like any hot method, instead of running as on-stack-replacement code.
        const int Chunk = 1000;
        for (long done = 0; done < count; done += Chunk) PairsChunk<TAlloc>(size, (int)Math.Min(Chunk, count - done));
        return count;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void PairsChunk<TAlloc>(nuint size, int count) where TAlloc : struct, IBenchAllocator
    {
        for (int i = 0; i < count; i++)
        {
            byte* p = (byte*)TAlloc.Alloc(size);
            *p = (byte)i;
            TAlloc.Free(p);
        }
    }

    private static void Fill<TAlloc>(int count, nuint size) where TAlloc : struct, IBenchAllocator
    {
        const int Rounds = 41;
        var blocks = new nint[count];
        var allocNs = new double[Rounds];
        var freeNs = new double[Rounds];
        for (int r = 0; r < Rounds; r++)
        {
            // Two classes in turn: each round's slabs are the ones the other class gave back (resident, and
            // formatted anew for this class), so nearly every block is handed out for the first time since.
            nuint roundSize = (r & 1) == 0 ? size : size + 16;
            var clock = Stopwatch.StartNew();
            for (int at = 0; at < count; at += 1000) FillChunk<TAlloc>(blocks, at, Math.Min(1000, count - at), roundSize);
            allocNs[r] = clock.Elapsed.TotalMilliseconds * 1e6 / count;
            clock.Restart();
            for (int at = 0; at < count; at += 1000) FreeChunk<TAlloc>(blocks, at, Math.Min(1000, count - at));
            freeNs[r] = clock.Elapsed.TotalMilliseconds * 1e6 / count;
        }
        // The first rounds compile the loops and fault the memory in: the median of the last 30.
        static double Median(double[] x) => x[^30..].Order().ElementAt(15);
        Console.WriteLine(string.Create(System.Globalization.CultureInfo.InvariantCulture,
            $"fill {TAlloc.Name} {count} x {size} and {size + 16} B in turn, ns per block (median of 30 rounds): alloc {Median(allocNs):F2} free {Median(freeNs):F2}"));
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void FillChunk<TAlloc>(nint[] blocks, int at, int count, nuint size) where TAlloc : struct, IBenchAllocator
    {
        for (int i = at; i < at + count; i++)
        {
            var p = (byte*)TAlloc.Alloc(size);
            *p = 1;
            blocks[i] = (nint)p;
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void FreeChunk<TAlloc>(nint[] blocks, int at, int count) where TAlloc : struct, IBenchAllocator
    {
        for (int i = at; i < at + count; i++) TAlloc.Free((void*)blocks[i]);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static long Mixed<TAlloc>(long batches) where TAlloc : struct, IBenchAllocator
    {
        const int N = 1000;
        var sizes = new nuint[N];
        var rng = new Random(42);
        for (int i = 0; i < N; i++) sizes[i] = (nuint)rng.Next(16, 257);
        var blocks = new nint[N];
        for (long b = 0; b < batches; b++)
        {
            for (int i = 0; i < N; i++) { blocks[i] = (nint)TAlloc.Alloc(sizes[i]); *(byte*)blocks[i] = 1; }
            for (int i = 0; i < N; i++) TAlloc.Free((void*)blocks[i]);
        }
        return batches * N;
    }
}
