using System.Diagnostics;
using SlabAlloc;

namespace SlabAlloc.Soak;

/// <summary>
/// The self-check (<c>selfcheck</c>), the quick one of the two gates (under a second, where the soak
/// takes 30 s by default): several threads allocate blocks of every size class (and some large ones),
/// stamp them, pass half of them to a neighbour to free, verify every stamp, and the run ends with the
/// allocator's statistics and an exact accounting check.
/// </summary>
internal static unsafe class SelfCheck
{
    private static readonly nuint[] Sizes = BuildSizes();

    public static int Run(string[] args)
    {
        int threads = args.Length > 0 ? int.Parse(args[0]) : 4;
        int rounds = args.Length > 1 ? int.Parse(args[1]) : 20;
        Console.WriteLine($"SlabAlloc self-check: {threads} threads x {rounds} rounds, {Sizes.Length} sizes from {Sizes[0]} B to {Sizes[^1]} B");
        var handoff = new nint[threads][];
        var sw = Stopwatch.StartNew();
        long verified = 0;
        for (int round = 0; round < rounds; round++)
        {
            using var barrier = new Barrier(threads);
            var workers = new Thread[threads];
            for (int t = 0; t < threads; t++)
            {
                int id = t, seed = round * 1000 + t;
                workers[t] = new Thread(() => Interlocked.Add(ref verified, Work(id, seed, threads, handoff, barrier)));
                workers[t].Start();
            }
            foreach (Thread w in workers) w.Join();
        }
        sw.Stop();

        SlabStatistics beforeTrim = SlabMemory.GetStatistics();
        SlabMemory.Trim();
        SlabStatistics stats = SlabMemory.GetStatistics();
        Console.WriteLine($"verified {verified} blocks in {sw.ElapsedMilliseconds} ms");
        Console.WriteLine("--- statistics before Trim ---");
        Console.Write(beforeTrim);
        Console.WriteLine("--- after Trim ---");
        Console.WriteLine($"bytes in use {stats.BytesInUse}, blocks in use {stats.BlocksInUse}, bytes mapped {stats.BytesMapped}, superslabs {stats.Superslabs}");
        bool ok = stats.BytesInUse == 0 && stats.BlocksInUse == 0 && stats.Superslabs == 0;
        Console.WriteLine(ok ? "self-check passed" : "self-check FAILED: memory still accounted in use or mapped");
        return ok ? 0 : 1;
    }

    private static long Work(int id, int seed, int threads, nint[][] handoff, Barrier barrier)
    {
        var rng = new Random(seed);
        int n = Sizes.Length * 4;
        var blocks = new nint[n];
        var sizes = new nuint[n];
        for (int i = 0; i < n; i++)
        {
            sizes[i] = Sizes[i % Sizes.Length] - (nuint)rng.Next(0, 8);
            blocks[i] = (nint)SlabMemory.Alloc(sizes[i]);
            Stamp((byte*)blocks[i], sizes[i], blocks[i]);
        }
        long verified = 0;
        // Free the even half here; hand the odd half to the next thread.
        var mine = new List<nint>();
        for (int i = 0; i < n; i++)
        {
            if ((i & 1) == 0)
            {
                Verify((byte*)blocks[i], sizes[i], blocks[i]);
                verified++;
                SlabMemory.Free((void*)blocks[i]);
            }
            else mine.Add(blocks[i]);
        }
        handoff[id] = mine.ToArray();
        barrier.SignalAndWait();
        foreach (nint p in handoff[(id + 1) % threads])
        {
            nuint usable = SlabMemory.UsableSize((void*)p);
            byte* b = (byte*)p;
            if (b[0] != (byte)p) throw new InvalidOperationException($"stamp mismatch at 0x{p:x}");
            verified++;
            SlabMemory.Free((void*)p);
            _ = usable;
        }
        return verified;
    }

    private static void Stamp(byte* p, nuint size, nint tag)
    {
        for (nuint i = 0; i < size; i++) p[i] = (byte)(tag + (nint)i);
    }

    private static void Verify(byte* p, nuint size, nint tag)
    {
        for (nuint i = 0; i < size; i++)
            if (p[i] != (byte)(tag + (nint)i)) throw new InvalidOperationException($"stamp mismatch at 0x{tag:x}+{i}");
    }

    private static nuint[] BuildSizes()
    {
        var sizes = new List<nuint>();
        for (nuint s = 16; s <= 1024; s += 16) sizes.Add(s);
        for (nuint s = 1280; s <= 64 * 1024; s = s + s / 5) sizes.Add(s);
        sizes.Add(64 * 1024);
        sizes.Add(100 * 1024);
        sizes.Add(1024 * 1024);
        return sizes.ToArray();
    }
}
