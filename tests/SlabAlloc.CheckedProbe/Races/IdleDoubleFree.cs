using System.Diagnostics;
using static SlabAlloc.CheckedProbe.Probe;
using static SlabAlloc.CheckedProbe.Races.RaceHarness;

namespace SlabAlloc.CheckedProbe.Races;

/// <summary>
/// <c>race idle-double-free</c> and <c>idle-double-free-cached</c>: a block freed again while its slab has
/// no block out. Repeatedly: the owner allocates 1 to <c>maxCount</c> blocks of <c>size</c> bytes and frees
/// them all, so their slabs have no block out; then three threads and the owner free one of those blocks
/// again, all at once. Every one of the four must get <see cref="ArgumentException"/>, the count of blocks in
/// use must not move, and the owner's next two allocations must be two different blocks. The cached race
/// takes 3,000-byte blocks, which the owner's frees put in its free cache, and up to 48 of them, so that
/// some repetitions flush the cache (and let its empty slabs go) and others leave the blocks in it.
/// </summary>
internal static unsafe class IdleDoubleFree
{
    public static long Run(TimeSpan time, nuint size, int maxCount)
    {
        const int Attackers = 3;
        var clock = Stopwatch.StartNew();
        nuint victim = 0;
        long rounds = 0;
        using var start = new Barrier(Attackers + 1);
        using var done = new Barrier(Attackers + 1);
        var stop = new StopFlag();
        var attackers = new Thread[Attackers];
        for (int a = 0; a < Attackers; a++)
        {
            int id = a;
            attackers[a] = new Thread(() =>
            {
                while (true)
                {
                    start.SignalAndWait();
                    if (stop.IsSet) return;
                    ExpectDoubleFreeRejected(Volatile.Read(ref victim), $"thread {id}");
                    done.SignalAndWait();
                }
            });
            attackers[a].Start();
        }
        var owner = new Thread(() =>
        {
            var rng = new Random(7);
            var blocks = new nuint[maxCount];
            while (clock.Elapsed < time || rounds < 20)
            {
                int count = rng.Next(1, blocks.Length + 1);
                for (int i = 0; i < count; i++) blocks[i] = (nuint)SlabMemory.Alloc(size);
                for (int i = 0; i < count; i++) SlabMemory.Free((void*)blocks[i]);
                long inUse = SlabMemory.GetStatistics().BlocksInUse;
                Volatile.Write(ref victim, blocks[rng.Next(count)]);
                start.SignalAndWait();
                ExpectDoubleFreeRejected(victim, "the owner");
                done.SignalAndWait();
                if (SlabMemory.GetStatistics().BlocksInUse != inUse) Fail($"RACE_VIOLATION: BlocksInUse moved from {inUse} to {SlabMemory.GetStatistics().BlocksInUse} after rejected double frees");
                var x = (nuint)SlabMemory.Alloc(size);
                var y = (nuint)SlabMemory.Alloc(size);
                if (x == y) Fail($"RACE_VIOLATION: 0x{x:x} was handed out twice");
                SlabMemory.Free((void*)x);
                if (x != y) SlabMemory.Free((void*)y);
                rounds++;
            }
            stop.Set();
            start.SignalAndWait();
        });
        owner.Start();
        owner.Join();
        foreach (Thread t in attackers) t.Join();
        return rounds;

        static void ExpectDoubleFreeRejected(nuint p, string who)
        {
            try
            {
                SlabMemory.Free((void*)p);
                Fail($"RACE_VIOLATION: {who}'s second Free(0x{p:x}) into a slab with no block out returned");
            }
            catch (ArgumentException) { }
        }
    }
}
