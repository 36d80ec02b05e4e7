using static SlabAlloc.CheckedProbe.Probe;

namespace SlabAlloc.CheckedProbe.Scenarios;

/// <summary>
/// <c>workout</c> (any settings): 4 threads × 20,000 operations of random sizes up to 20 KiB, half the frees
/// of blocks another thread allocated (swapped through a shared array), every block stamped and verified.
/// Prints <c>WORKOUT_OK: operations</c>, or a failure line.
/// </summary>
internal static unsafe class Workout
{
    public static int Run(string[] args, long baseline)
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
        return Finish(baseline);

        void Release(nint p)
        {
            if (!sizes.TryRemove(p, out nuint size)) { Fail($"NOT_LIVE: 0x{p:x}"); return; }
            if (!Verify((byte*)p, size, (byte)p)) Fail($"STAMP_BROKEN: 0x{p:x} ({size} bytes)");
            SlabMemory.Free((void*)p);
        }
    }
}
