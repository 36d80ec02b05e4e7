using System.Diagnostics;
using static SlabAlloc.CheckedProbe.Probe;
using static SlabAlloc.CheckedProbe.Races.RaceHarness;

namespace SlabAlloc.CheckedProbe.Races;

/// <summary>
/// <c>race interrupt-free</c>: a pending Thread.Interrupt while the pool's lock is busy.
/// Run with <c>SLABALLOC_POOL=mutex</c>. Repeatedly: a thread fills one 64 B slab and starts a
/// second, frees every block of the first but one, takes an interrupt (<c>Thread.Interrupt</c> on
/// itself) and frees the last one while another thread holds the pool's lock for 50 ms: the free hands
/// the slab to the pool and waits for the lock. The free must return normally, the interrupt must still
/// be pending afterwards (the thread's next sleep throws <see cref="ThreadInterruptedException"/>), and
/// once every thread has ended and Trim has run no superslab may be left mapped.
/// </summary>
internal static unsafe class InterruptedFree
{
    public static long Run(TimeSpan time)
    {
        const int Size = 64, Capacity = 65536 / Size;
        var clock = Stopwatch.StartNew();
        long rounds = 0;
        while (clock.Elapsed < time || rounds < 3)
        {
            var blocks = new nuint[Capacity + 1];
            using var blocked = new ManualResetEventSlim();
            var worker = new Thread(() =>
            {
                for (int i = 0; i < blocks.Length; i++) blocks[i] = (nuint)SlabMemory.Alloc(Size);
                for (int i = 1; i < Capacity; i++) SlabMemory.Free((void*)blocks[i]);
                blocked.Set();
                WhileLockHeld(() =>
                {
                    Thread.CurrentThread.Interrupt();
                    try { SlabMemory.Free((void*)blocks[0]); }
                    catch (Exception e) { Fail($"RACE_VIOLATION: Free threw {e.GetType().Name} while waiting for the pool's lock: {OneLine(e.Message)}"); }
                });
                ExpectInterruptPending();
                SlabMemory.Free((void*)blocks[Capacity]);
            });
            worker.Start();
            worker.Join();
            rounds++;
        }
        ExpectEverythingReturned("interrupt-free");
        return rounds;
    }
}
