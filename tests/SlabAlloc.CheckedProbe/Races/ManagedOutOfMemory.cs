using SlabAlloc.Runtime;
using System.Diagnostics;
using static SlabAlloc.CheckedProbe.Probe;
using static SlabAlloc.CheckedProbe.Races.RaceHarness;

namespace SlabAlloc.CheckedProbe.Races;

/// <summary>
/// <c>race managed-oom</c>: no managed memory left while a thread attaches to free, or a dead cache is
/// reclaimed. Run with a small managed heap (<c>DOTNET_GCHeapHardLimit</c>) and no upkeep. Repeatedly,
/// two parts, each with the managed heap filled until even a small allocation fails. First, a thread that
/// has never touched SlabAlloc frees 64 blocks of this thread's: its first free attaches it, which needs
/// a new managed record (the freers of earlier iterations are kept alive, so no record is free to reuse),
/// and every free must still succeed. Second, a thread that filled two 64 B slabs and part of a third, freed
/// every block and ended is reclaimed by <c>Trim</c>, which must need no managed memory: it must not
/// throw, and in the end no superslab may be left with a dead thread's slabs.
/// </summary>
/// <remarks>The heap is filled only while no other thread of the process may need managed memory: the
/// runtime ends the process ("Out of memory.") when one of its own threads finds the heap full, so the
/// race waits for SlabAlloc's start-up thread to end and, before each fill, for the finalizer thread.</remarks>
internal static unsafe class ManagedOutOfMemory
{
    public static long Run(TimeSpan time)
    {
        const int Size = 64, Capacity = 65536 / Size, Blocks = 64;
        var clock = Stopwatch.StartNew();
        long rounds = 0;
        var ballast = new object?[1 << 20];
        var freers = new List<Thread>();
        using var release = new ManualResetEventSlim();
        TestHooks.WaitForStartUp();
        while (clock.Elapsed < time || rounds < 3)
        {
            var blocks = new nuint[Blocks];
            for (int i = 0; i < Blocks; i++) blocks[i] = (nuint)SlabMemory.Alloc(Size);
            // Plain flags, spun on: a blocking wait may allocate (an event object) once the heap is full.
            var steps = new int[2]; // [0]: go, [1]: done
            string? failure = null;
            var freer = new Thread(() =>
            {
                while (Volatile.Read(ref steps[0]) == 0) Thread.Yield();
                try
                {
                    foreach (nuint b in blocks) SlabMemory.Free((void*)b);
                }
                catch (Exception e)
                {
                    failure = e is OutOfMemoryException ? "OutOfMemoryException" : "another exception"; // no memory for more
                }
                Volatile.Write(ref steps[1], 1);
                while (!release.IsSet) Thread.Sleep(1);
            });
            freer.Start();
            freers.Add(freer);
            GC.WaitForPendingFinalizers();
            int filled = Fill(ballast);
            Volatile.Write(ref steps[0], 1);
            while (Volatile.Read(ref steps[1]) == 0) Thread.Yield();
            Array.Clear(ballast);
            GC.Collect();
            if (failure != null) Fail($"RACE_VIOLATION: a free threw {failure} while its thread attached with no managed memory left ({filled} objects of ballast)");

            var dead = new Thread(() =>
            {
                var mine = new nuint[2 * Capacity + 10];
                for (int i = 0; i < mine.Length; i++) mine[i] = (nuint)SlabMemory.Alloc(Size);
                foreach (nuint b in mine) SlabMemory.Free((void*)b);
            });
            dead.Start();
            dead.Join();
            GC.WaitForPendingFinalizers();
            filled = Fill(ballast);
            string? trimFailure = null;
            try { SlabMemory.Trim(); }
            catch (Exception e) { trimFailure = e is OutOfMemoryException ? "OutOfMemoryException" : "another exception"; }
            Array.Clear(ballast);
            GC.Collect();
            if (trimFailure != null) Fail($"RACE_VIOLATION: Trim threw {trimFailure} reclaiming a dead thread's cache with no managed memory left ({filled} objects of ballast)");
            rounds++;
        }
        release.Set();
        foreach (Thread t in freers) t.Join();
        ExpectEverythingReturned("managed-oom");
        return rounds;

        // Fills the managed heap until even small allocations fail; returns how many objects it took.
        static int Fill(object?[] ballast)
        {
            int n = 0;
            for (int size = 1 << 20; size >= 16 && n < ballast.Length; )
            {
                try { ballast[n++] = new byte[size]; }
                catch (OutOfMemoryException) { n--; size /= 4; }
            }
            return n;
        }
    }
}
