using static SlabAlloc.CheckedProbe.Probe;
using static SlabAlloc.CheckedProbe.Races.RaceHarness;

namespace SlabAlloc.CheckedProbe.Races;

/// <summary>
/// <c>race never-handed-out</c>: blocks of a slab that no allocation returned yet.
/// An owner thread takes 8 blocks of 48 B from a fresh slab (indices 0..7) and keeps freeing
/// and re-allocating them; since it always frees before it allocates, no allocation of it ever reaches
/// block 8 or beyond. Two other threads, and the owner itself between its iterations, pass the starts of
/// blocks 8..capacity-1 to Free and UsableSize: each call must throw <see cref="ArgumentException"/>.
/// The owner checks its blocks' stamps and that no allocation returns a block outside its 8.
/// </summary>
internal static unsafe class NeverHandedOut
{
    public static long Run(TimeSpan time)
    {
        const int Size = 48, Held = 8, Capacity = 65536 / Size;
        nuint slabStart = 0;
        long rounds = 0;
        using var ready = new ManualResetEventSlim();
        var stop = new StopFlag();
        var owner = new Thread(() =>
        {
            var blocks = new nuint[Held];
            for (int i = 0; i < Held; i++) blocks[i] = (nuint)SlabMemory.Alloc(Size);
            // The first block of a class in a fresh process starts a fresh slab.
            if ((blocks[0] & 0xFFFF) != 0) { Fail($"PROBE_ERROR: the first {Size}-byte block 0x{blocks[0]:x} does not start a slab"); ready.Set(); return; }
            for (int i = 0; i < Held; i++)
            {
                if (blocks[i] != blocks[0] + (nuint)(i * Size)) { Fail($"PROBE_ERROR: block {i} is 0x{blocks[i]:x}, not the slab's block {i}"); ready.Set(); return; }
                Stamp((byte*)blocks[i], Size, (byte)i);
            }
            slabStart = blocks[0];
            ready.Set();
            var rng = new Random(11);
            while (!stop.IsSet)
            {
                int i = rng.Next(Held);
                if (!Verify((byte*)blocks[i], Size, (byte)i)) Fail($"RACE_VIOLATION: block {i} (0x{blocks[i]:x}) was overwritten");
                SlabMemory.Free((void*)blocks[i]);
                var again = (nuint)SlabMemory.Alloc(Size);
                if (again < slabStart || again >= slabStart + Held * Size) Fail($"RACE_VIOLATION: the owner was handed 0x{again:x}, which is not one of the blocks it freed");
                blocks[i] = again;
                Stamp((byte*)again, Size, (byte)i);
                ExpectRejected(slabStart + (nuint)(rng.Next(Held, Capacity) * Size), "the owner");
                Interlocked.Increment(ref rounds);
            }
            foreach (nuint b in blocks) SlabMemory.Free((void*)b);
        });
        owner.Start();
        ready.Wait();
        if (slabStart == 0) { owner.Join(); return 0; }
        RunFor(time, stop, 2, id =>
        {
            var rng = new Random(100 + id);
            while (!stop.IsSet) ExpectRejected(slabStart + (nuint)(rng.Next(Held, Capacity) * Size), $"thread {id}");
        });
        owner.Join();
        return rounds;

        static void ExpectRejected(nuint p, string who)
        {
            try
            {
                SlabMemory.Free((void*)p);
                Fail($"RACE_VIOLATION: {who}'s Free(0x{p:x}) of a block never handed out returned");
            }
            catch (ArgumentException) { }
            try
            {
                nuint usable = SlabMemory.UsableSize((void*)p);
                Fail($"RACE_VIOLATION: {who}'s UsableSize(0x{p:x}) of a block never handed out returned {usable}");
            }
            catch (ArgumentException) { }
        }
    }
}
