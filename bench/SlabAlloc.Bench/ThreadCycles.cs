using System.Diagnostics;
using System.Globalization;

namespace SlabAlloc.Bench;

/// <summary>
/// Mapped memory under thread churn, for the target "10,000 thread create/exit cycles leave mapped
/// memory within 8 MiB of where it started": <c>threadcycles [cycles] [threads-at-once]</c>
/// (10000 and 4 by default). One cycle is one thread that allocates, frees and exits.
/// </summary>
/// <remarks>
/// <para>Threads run in waves of <c>threads-at-once</c>, which wait for one another before they exit,
/// so that that many thread caches are alive at once. Each allocates a mix of small and mid blocks
/// (16 B to 1 KiB, and one in five 1 to 40 KiB), writes into them, frees most of them itself and
/// leaves a few in a mailbox that a thread of the next wave frees, after the thread that allocated
/// them has exited: remote frees of dead threads' blocks, the case that can strand a dead thread's
/// slabs. Sizes and victims come from fixed seeds.</para>
/// <para>SlabAlloc's <see cref="SlabStatistics.BytesMapped"/> is read at the start (after a warm-up of
/// the same waves, with every block freed and <see cref="SlabMemory.Trim"/> called), every 100 cycles
/// between waves (the peak: dead threads' caches are not reclaimed until the next thread attaches),
/// after the last wave once the process has been idle long enough for the periodic upkeep to hand
/// back and decay what the dead threads and the pool kept (up to 10 s, without <c>Trim</c>), and at
/// the end (<see cref="SlabMemory.Trim"/> called, as at the start). Missing the
/// 8 MiB target is reported, not failed; the exit code is 1 only when the blocks or bytes in use do
/// not come back to where they started, which would mean the statistics or the frees are wrong.</para>
/// </remarks>
internal static unsafe class ThreadCycles
{
    private const long TargetBytes = 8L << 20;
    private const int BlocksPerThread = 64, HandedOn = 4, SampleEvery = 100, WarmUpCycles = 200;
    private const int MaxSmall = 1024, MaxMid = 40 * 1024;

    public static int Run(IReadOnlyList<string> args)
    {
        int cycles = args.Count > 0 ? int.Parse(args[0], CultureInfo.InvariantCulture) : 10_000;
        int atOnce = args.Count > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 4;
        if (cycles < 1 || atOnce < 1 || args.Count > 2) throw new ArgumentException("threadcycles needs: [cycles] [threads-at-once], both positive");

        var mailboxes = new Mailboxes(atOnce);
        RunCycles(WarmUpCycles, mailboxes, seed: 1, sample: null);
        mailboxes.FreeAll();
        SlabMemory.Trim();
        SlabStatistics start = SlabMemory.GetStatistics();
        long rssStartKiB = ResidentMemory.CurrentKiB();

        var samples = new List<long>();
        var clock = Stopwatch.StartNew();
        RunCycles(cycles, mailboxes, seed: 1_000_003, sample: () => samples.Add(SlabMemory.GetStatistics().BytesMapped));
        clock.Stop();
        long peak = samples.Count == 0 ? start.BytesMapped : Math.Max(start.BytesMapped, samples.Max());
        long beforeTrim = SlabMemory.GetStatistics().BytesMapped;
        peak = Math.Max(peak, beforeTrim);
        mailboxes.FreeAll();
        // Then nothing: the periodic upkeep (SLABALLOC_DECAY_MS) reclaims the dead threads' caches and
        // decays what the pool kept; wait until mapped is within 1 MiB of the start, or 10 s.
        var idleClock = Stopwatch.StartNew();
        long idle;
        do
        {
            Thread.Sleep(100);
            idle = SlabMemory.GetStatistics().BytesMapped;
        } while (idle > start.BytesMapped + (1L << 20) && idleClock.Elapsed < TimeSpan.FromSeconds(10));
        SlabMemory.Trim();
        SlabStatistics end = SlabMemory.GetStatistics();
        long rssEndKiB = ResidentMemory.CurrentKiB();

        long delta = end.BytesMapped - start.BytesMapped;
        bool balanced = end.BlocksInUse == start.BlocksInUse && end.BytesInUse == start.BytesInUse;
        static string Mib(long bytes) => (bytes / (1024.0 * 1024.0)).ToString("F2", CultureInfo.InvariantCulture);
        Console.WriteLine($"thread cycles: {cycles} threads, {atOnce} at once, {BlocksPerThread} blocks each (16 B-{MaxSmall} B, 1 in 5 up to {MaxMid / 1024} KiB), {HandedOn} freed by the next wave; {clock.Elapsed.TotalSeconds:F2} s");
        Console.WriteLine($"  mapped start  {Mib(start.BytesMapped),8} MiB   (after {WarmUpCycles} warm-up cycles and Trim)");
        Console.WriteLine($"  mapped peak   {Mib(peak),8} MiB   (sampled every {SampleEvery} cycles, between waves)");
        Console.WriteLine($"  mapped idle   {Mib(idle),8} MiB   ({idleClock.Elapsed.TotalSeconds:F1} s after the last wave, without Trim; {Mib(beforeTrim)} MiB at the last wave)");
        Console.WriteLine($"  mapped end    {Mib(end.BytesMapped),8} MiB   (then Trim)");
        long idleDelta = idle - start.BytesMapped;
        Console.WriteLine($"  end - start   {(idleDelta >= 0 ? "+" : "") + Mib(idleDelta),8} MiB   without Trim, target <= {Mib(TargetBytes)} MiB: {(idleDelta <= TargetBytes ? "met" : "MISSED")}" +
            $" (after Trim: {(delta >= 0 ? "+" : "")}{Mib(delta)} MiB, {(delta <= TargetBytes ? "met" : "MISSED")})");
        int stride = Math.Max(1, samples.Count / 10);
        Console.WriteLine($"  mapped every {stride * SampleEvery} cycles (MiB): {string.Join(' ', samples.Where((_, i) => (i + 1) % stride == 0).Select(Mib))}");
        Console.WriteLine($"  thread caches: {start.ThreadCacheRecords} -> {end.ThreadCacheRecords} records, {end.ThreadCachesReclaimed - start.ThreadCachesReclaimed} reclaimed for {cycles} cycles, {start.ThreadCaches} -> {end.ThreadCaches} live");
        Console.WriteLine($"  superslabs: {start.Superslabs} -> {end.Superslabs} mapped ({end.SuperslabsMappedTotal - start.SuperslabsMappedTotal} mapped, {end.SuperslabsReturnedTotal - start.SuperslabsReturnedTotal} returned meanwhile); remote frees +{end.RemoteFrees - start.RemoteFrees}");
        Console.WriteLine($"  process RSS: {rssStartKiB / 1024.0:F1} -> {rssEndKiB / 1024.0:F1} MiB");
        Console.WriteLine($"  accounting: blocks in use {start.BlocksInUse} -> {end.BlocksInUse}, bytes in use {start.BytesInUse} -> {end.BytesInUse}: {(balanced ? "ok" : "WRONG")}");
        return balanced ? 0 : 1;
    }

    /// <summary>Runs <paramref name="cycles"/> threads in waves, calling <paramref name="sample"/> between
    /// waves each time another <see cref="SampleEvery"/> cycles are done.</summary>
    private static void RunCycles(int cycles, Mailboxes mailboxes, int seed, Action? sample)
    {
        var wave = new Thread[mailboxes.Lanes];
        int done = 0;
        for (int w = 0; done < cycles; w++)
        {
            int n = Math.Min(mailboxes.Lanes, cycles - done);
            using var together = new Barrier(n);
            for (int lane = 0; lane < n; lane++)
            {
                nint[] inbox = mailboxes.Inbox(w, lane), outbox = mailboxes.Outbox(w, lane);
                int threadSeed = seed + done + lane;
                wave[lane] = new Thread(() => Cycle(threadSeed, inbox, outbox, together), maxStackSize: 256 * 1024) { IsBackground = true };
                wave[lane].Start();
            }
            for (int lane = 0; lane < n; lane++) wave[lane].Join();
            if ((done + n) / SampleEvery != done / SampleEvery) sample?.Invoke();
            done += n;
        }
    }

    /// <summary>One thread's life: frees what the previous wave left it, allocates its blocks, frees
    /// all but <see cref="HandedOn"/> of them in random order, leaves those for the next wave, and waits
    /// for the rest of its wave before it exits.</summary>
    private static void Cycle(int seed, nint[] inbox, nint[] outbox, Barrier together)
    {
        for (int i = 0; i < inbox.Length; i++)
        {
            SlabMemory.Free((void*)inbox[i]);
            inbox[i] = 0;
        }
        var rng = new Random(seed);
        var blocks = new nint[BlocksPerThread];
        for (int i = 0; i < blocks.Length; i++)
        {
            int size = rng.Next(5) == 0 ? rng.Next(MaxSmall, MaxMid + 1) : rng.Next(16, MaxSmall + 1);
            var p = (byte*)SlabMemory.Alloc((nuint)size);
            p[0] = (byte)i;
            p[size - 1] = (byte)i;
            blocks[i] = (nint)p;
        }
        rng.Shuffle(blocks);
        for (int i = 0; i < blocks.Length - HandedOn; i++) SlabMemory.Free((void*)blocks[i]);
        blocks.AsSpan(blocks.Length - HandedOn).CopyTo(outbox);
        together.SignalAndWait();
    }

    /// <summary>The blocks handed from one wave to the next: two sets of one mailbox per lane, so that a
    /// wave reads one set while it fills the other. Lane <c>i</c> of a wave fills lane <c>i + 1</c>'s
    /// mailbox for the next wave, so a block is freed by another lane's thread.</summary>
    private sealed class Mailboxes(int lanes)
    {
        private readonly nint[][][] _sets = [NewSet(lanes), NewSet(lanes)];

        public int Lanes => lanes;

        public nint[] Inbox(int wave, int lane) => _sets[wave & 1][lane];

        public nint[] Outbox(int wave, int lane) => _sets[(wave + 1) & 1][(lane + 1) % lanes];

        /// <summary>Frees every block still waiting, from the calling thread.</summary>
        public void FreeAll()
        {
            foreach (nint[][] set in _sets)
                foreach (nint[] box in set)
                    for (int i = 0; i < box.Length; i++)
                    {
                        SlabMemory.Free((void*)box[i]);
                        box[i] = 0;
                    }
        }

        private static nint[][] NewSet(int lanes) => Enumerable.Range(0, lanes).Select(_ => new nint[HandedOn]).ToArray();
    }
}
