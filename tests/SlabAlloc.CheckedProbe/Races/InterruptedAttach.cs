using System.Diagnostics;
using static SlabAlloc.CheckedProbe.Probe;
using static SlabAlloc.CheckedProbe.Races.RaceHarness;

namespace SlabAlloc.CheckedProbe.Races;

/// <summary>
/// <c>race interrupt-attach</c>: a pending Thread.Interrupt while the pool's lock is busy.
/// Run with <c>SLABALLOC_POOL=mutex</c> and <c>SLABALLOC_DECAY_MS=0</c> (no upkeep, so the dead
/// thread's cache waits for the next thread that attaches). Repeatedly: a thread fills a 64 B slab and
/// part of another, frees everything and ends; a new thread takes an interrupt and allocates its first
/// block while another thread holds the pool's lock, so the reclaim of the dead thread's cache that
/// its attach runs waits for the lock; a third thread, interrupted too, calls Trim meanwhile, which waits
/// for that reclaim. The allocation and the Trim must return normally with the interrupts still pending,
/// and in the end no superslab may be left mapped.
/// </summary>
internal static unsafe class InterruptedAttach
{
    public static long Run(TimeSpan time)
    {
        const int Size = 64, Capacity = 65536 / Size;
        var clock = Stopwatch.StartNew();
        long rounds = 0;
        while (clock.Elapsed < time || rounds < 3)
        {
            var dead = new Thread(() =>
            {
                var blocks = new nuint[Capacity + 10];
                for (int i = 0; i < blocks.Length; i++) blocks[i] = (nuint)SlabMemory.Alloc(Size);
                foreach (nuint b in blocks) SlabMemory.Free((void*)b);
            });
            dead.Start();
            dead.Join();
            var attacher = new Thread(() =>
            {
                WhileLockHeld(() =>
                {
                    Thread.CurrentThread.Interrupt();
                    try { SlabMemory.Free(SlabMemory.Alloc(Size)); }
                    catch (Exception e) { Fail($"RACE_VIOLATION: a first allocation threw {e.GetType().Name} while its attach waited for the pool's lock: {OneLine(e.Message)}"); }
                });
                ExpectInterruptPending();
            });
            // Meanwhile a thread with an interrupt pending trims: it waits for the reclaim in flight, and must
            // neither throw nor lose the interrupt.
            var trimmer = new Thread(() =>
            {
                Thread.Sleep(20);
                Thread.CurrentThread.Interrupt();
                try { SlabMemory.Trim(); }
                catch (Exception e) { Fail($"RACE_VIOLATION: Trim threw {e.GetType().Name} while a dead thread's cache was being reclaimed: {OneLine(e.Message)}"); }
                ExpectInterruptPending();
            });
            attacher.Start();
            trimmer.Start();
            attacher.Join();
            while (trimmer.IsAlive) Thread.Yield();
            rounds++;
        }
        ExpectEverythingReturned("interrupt-attach");
        return rounds;
    }
}
