using System.Diagnostics;
using System.Globalization;

namespace SlabAlloc.Workloads;

/// <summary>
/// Memory under thread churn: <c>threadcycles [cycles] [threads-at-once] [--allocator slab|native] [--reps N]</c>
/// (10000 cycles, 4 at once, both allocators, 3 repetitions by default). One cycle is one thread that
/// allocates, frees and exits. Targets: SlabAlloc's mapped memory back within 8 MiB of where it started,
/// without <c>Trim</c>; and the process's resident memory within 4 MiB of the same harness on
/// <c>NativeMemory</c> (glibc malloc), so that nothing a dead thread leaves behind, in SlabAlloc or in
/// the garbage collector's budgets, grows the process.
/// </summary>
/// <remarks>
/// <para>Threads run in waves of <c>threads-at-once</c>, which wait for one another before they exit,
/// so that that many thread caches are alive at once. Each allocates a mix of small and mid blocks
/// (16 B to 1 KiB, and one in five 1 to 40 KiB), writes into them, frees most of them itself and
/// leaves a few in a mailbox that a thread of the next wave frees, after the thread that allocated
/// them has exited: remote frees of dead threads' blocks, the case that can strand a dead thread's
/// slabs. Sizes and victims come from fixed seeds.</para>
/// <para>Without <c>--allocator</c>, the command runs itself in child processes, SlabAlloc and
/// NativeMemory interleaved, <c>--reps</c> times each, and compares the process RSS of the two: its
/// growth from the start (after a warm-up of the same waves) to the end (after the last wave and an idle
/// pause of <see cref="IdleSeconds"/>, long enough for SlabAlloc's periodic upkeep to hand back what dead
/// threads and the pool kept, without <c>Trim</c>). With <c>--allocator</c>, one run in this process; a
/// SlabAlloc run also reports its mapped memory at the start, every 100 cycles between waves, after the
/// idle pause and after <see cref="SlabMemory.Trim"/>. Missing a target is reported, not failed; the exit
/// code is 1 only when SlabAlloc's blocks or bytes in use do not come back to where they started, which
/// would mean the statistics or the frees are wrong.</para>
/// </remarks>
internal static unsafe class ThreadCycles
{
    private const long MappedTargetBytes = 8L << 20;
    private const long RssTargetKiB = 4L << 10;
    private const int BlocksPerThread = 64, HandedOn = 4, SampleEvery = 100, WarmUpCycles = 200, IdleSeconds = 6;
    private const int MaxSmall = 1024, MaxMid = 40 * 1024;

    /// <param name="args">The arguments after the command, without <c>--allocator</c>.</param>
    /// <param name="allocator"><c>slab</c> or <c>native</c> for one run in this process; null to compare the two.</param>
    /// <param name="reps">Runs of each allocator when comparing.</param>
    public static int Run(IReadOnlyList<string> args, string? allocator, int reps)
    {
        var rest = args.ToList();
        int cycles = rest.Count > 0 ? int.Parse(rest[0], CultureInfo.InvariantCulture) : 10_000;
        int atOnce = rest.Count > 1 ? int.Parse(rest[1], CultureInfo.InvariantCulture) : 4;
        if (cycles < 1 || atOnce < 1 || reps < 1 || rest.Count > 2) throw new ArgumentException("threadcycles needs: [cycles] [threads-at-once] [--allocator slab|native] [--reps N], all positive");
        return allocator switch
        {
            null => Compare(cycles, atOnce, reps),
            "slab" => RunSlab(cycles, atOnce),
            "native" => RunNative(cycles, atOnce),
            _ => throw new ArgumentException($"unknown allocator '{allocator}' (slab or native)"),
        };
    }

    /// <summary>The process's resident memory at the three points of one run, in KiB.</summary>
    private readonly record struct Rss(long StartKiB, long EndKiB, long PeakKiB)
    {
        public long GrowthKiB => EndKiB - StartKiB;
        public string Line => $"RSS_KIB start {StartKiB} end {EndKiB} peak {PeakKiB}";
    }

    private static int Compare(int cycles, int atOnce, int reps)
    {
        var runs = new Dictionary<string, List<Rss>> { ["native"] = [], ["slab"] = [] };
        bool balanced = true;
        for (int r = 0; r < reps; r++)
        {
            foreach (string allocator in new[] { "native", "slab" })
            {
                var (rss, ok) = RunChild(allocator, cycles, atOnce);
                runs[allocator].Add(rss);
                balanced &= ok;
                Console.WriteLine($"  run {r + 1} {allocator,-6}: RSS start {Mib(rss.StartKiB)} MiB, end {Mib(rss.EndKiB)} MiB (growth {Signed(rss.GrowthKiB)} MiB), peak {Mib(rss.PeakKiB)} MiB");
            }
        }
        long Median(string allocator, Func<Rss, long> f) => runs[allocator].Select(f).Order().ElementAt(reps / 2);
        long slabGrowth = Median("slab", x => x.GrowthKiB), nativeGrowth = Median("native", x => x.GrowthKiB);
        long excess = slabGrowth - nativeGrowth;
        Console.WriteLine($"thread cycles, process RSS: {cycles} threads, {atOnce} at once, {IdleSeconds} s idle after the last wave, without Trim; medians of {reps} interleaved runs each");
        Console.WriteLine($"  growth  slab {Signed(slabGrowth)} MiB, native {Signed(nativeGrowth)} MiB: SlabAlloc {Signed(excess)} MiB over NativeMemory, target <= {Mib(RssTargetKiB)} MiB: {(excess <= RssTargetKiB ? "met" : "MISSED")}");
        Console.WriteLine($"  end     slab {Mib(Median("slab", x => x.EndKiB))} MiB, native {Mib(Median("native", x => x.EndKiB))} MiB; peak slab {Mib(Median("slab", x => x.PeakKiB))} MiB, native {Mib(Median("native", x => x.PeakKiB))} MiB");
        return balanced ? 0 : 1;
    }

    /// <summary>Runs this command for one allocator in a child process; returns its RSS line and whether it
    /// exited cleanly. The child's other lines are passed on, indented.</summary>
    private static (Rss Rss, bool Ok) RunChild(string allocator, int cycles, int atOnce)
    {
        var start = new ProcessStartInfo(Environment.ProcessPath ?? "dotnet") { RedirectStandardOutput = true, UseShellExecute = false };
        if (Path.GetFileNameWithoutExtension(start.FileName) == "dotnet") start.ArgumentList.Add(typeof(ThreadCycles).Assembly.Location);
        foreach (string a in new[] { "threadcycles", cycles.ToString(CultureInfo.InvariantCulture), atOnce.ToString(CultureInfo.InvariantCulture), "--allocator", allocator })
            start.ArgumentList.Add(a);
        // The native run loads SlabAlloc's assembly too (this harness references it): keep it idle there.
        if (allocator == "native") { start.Environment["SLABALLOC_WARMUP"] = "0"; start.Environment["SLABALLOC_DECAY_MS"] = "0"; }
        using Process child = Process.Start(start) ?? throw new InvalidOperationException("could not start the child process");
        Rss rss = default;
        bool found = false;
        string? line;
        while ((line = child.StandardOutput.ReadLine()) != null)
        {
            string[] f = line.Split(' ');
            if (f.Length == 7 && f[0] == "RSS_KIB")
            {
                rss = new Rss(long.Parse(f[2], CultureInfo.InvariantCulture), long.Parse(f[4], CultureInfo.InvariantCulture), long.Parse(f[6], CultureInfo.InvariantCulture));
                found = true;
            }
            else if (allocator == "slab") Console.WriteLine("    " + line);
        }
        child.WaitForExit();
        return (rss, found && child.ExitCode == 0);
    }

    private static int RunNative(int cycles, int atOnce)
    {
        var mailboxes = new Mailboxes(atOnce);
        RunCycles<NativeAllocator>(WarmUpCycles, mailboxes, seed: 1, sample: null);
        mailboxes.FreeAll<NativeAllocator>();
        long startKiB = ResidentMemory.CurrentKiB();
        RunCycles<NativeAllocator>(cycles, mailboxes, seed: 1_000_003, sample: null);
        mailboxes.FreeAll<NativeAllocator>();
        Thread.Sleep(TimeSpan.FromSeconds(IdleSeconds));
        Console.WriteLine(new Rss(startKiB, ResidentMemory.CurrentKiB(), ResidentMemory.PeakKiB()).Line);
        return 0;
    }

    private static int RunSlab(int cycles, int atOnce)
    {
        var mailboxes = new Mailboxes(atOnce);
        RunCycles<SlabAllocator>(WarmUpCycles, mailboxes, seed: 1, sample: null);
        mailboxes.FreeAll<SlabAllocator>();
        SlabMemory.Trim();
        SlabStatistics start = SlabMemory.GetStatistics();
        long rssStartKiB = ResidentMemory.CurrentKiB();

        var samples = new List<long>();
        var clock = Stopwatch.StartNew();
        RunCycles<SlabAllocator>(cycles, mailboxes, seed: 1_000_003, sample: () => samples.Add(SlabMemory.GetStatistics().BytesMapped));
        clock.Stop();
        long peak = samples.Count == 0 ? start.BytesMapped : Math.Max(start.BytesMapped, samples.Max());
        long atLastWave = SlabMemory.GetStatistics().BytesMapped;
        peak = Math.Max(peak, atLastWave);
        mailboxes.FreeAll<SlabAllocator>();
        // Then nothing: the periodic upkeep (SLABALLOC_DECAY_MS) reclaims the dead threads' caches and
        // decays what the pool kept. Mapped memory is watched until it is within 1 MiB of the start.
        var idleClock = Stopwatch.StartNew();
        long idle = atLastWave;
        double returnedAfter = double.NaN;
        while (idleClock.Elapsed < TimeSpan.FromSeconds(IdleSeconds))
        {
            Thread.Sleep(100);
            idle = SlabMemory.GetStatistics().BytesMapped;
            if (double.IsNaN(returnedAfter) && idle <= start.BytesMapped + (1L << 20)) returnedAfter = idleClock.Elapsed.TotalSeconds;
        }
        long rssEndKiB = ResidentMemory.CurrentKiB();
        SlabMemory.Trim();
        SlabStatistics end = SlabMemory.GetStatistics();

        long delta = end.BytesMapped - start.BytesMapped;
        long idleDelta = idle - start.BytesMapped;
        bool balanced = end.BlocksInUse == start.BlocksInUse && end.BytesInUse == start.BytesInUse;
        string returned = double.IsNaN(returnedAfter) ? "not within 1 MiB of the start" : $"within 1 MiB of the start after {returnedAfter:F1} s";
        Console.WriteLine($"thread cycles: {cycles} threads, {atOnce} at once, {BlocksPerThread} blocks each (16 B-{MaxSmall} B, 1 in 5 up to {MaxMid / 1024} KiB), {HandedOn} freed by the next wave; {clock.Elapsed.TotalSeconds:F2} s");
        Console.WriteLine($"  mapped start  {MibBytes(start.BytesMapped),8} MiB   (after {WarmUpCycles} warm-up cycles and Trim)");
        Console.WriteLine($"  mapped peak   {MibBytes(peak),8} MiB   (sampled every {SampleEvery} cycles, between waves)");
        Console.WriteLine($"  mapped idle   {MibBytes(idle),8} MiB   ({IdleSeconds} s after the last wave, without Trim; {returned}; {MibBytes(atLastWave)} MiB at the last wave)");
        Console.WriteLine($"  mapped end    {MibBytes(end.BytesMapped),8} MiB   (then Trim)");
        Console.WriteLine($"  end - start   {SignedBytes(idleDelta),8} MiB   without Trim, target <= {MibBytes(MappedTargetBytes)} MiB: {(idleDelta <= MappedTargetBytes ? "met" : "MISSED")}" +
            $" (after Trim: {SignedBytes(delta)} MiB, {(delta <= MappedTargetBytes ? "met" : "MISSED")})");
        int stride = Math.Max(1, samples.Count / 10);
        Console.WriteLine($"  mapped every {stride * SampleEvery} cycles (MiB): {string.Join(' ', samples.Where((_, i) => (i + 1) % stride == 0).Select(MibBytes))}");
        Console.WriteLine($"  thread caches: {start.ThreadCacheRecords} -> {end.ThreadCacheRecords} records, {end.ThreadCachesReclaimed - start.ThreadCachesReclaimed} reclaimed for {cycles} cycles, {start.ThreadCaches} -> {end.ThreadCaches} live");
        Console.WriteLine($"  superslabs: {start.Superslabs} -> {end.Superslabs} mapped ({end.SuperslabsMappedTotal - start.SuperslabsMappedTotal} mapped, {end.SuperslabsReturnedTotal - start.SuperslabsReturnedTotal} returned meanwhile); remote frees +{end.RemoteFrees - start.RemoteFrees}");
        Console.WriteLine($"  process RSS: {Mib(rssStartKiB)} -> {Mib(rssEndKiB)} MiB ({IdleSeconds} s after the last wave, without Trim)");
        Console.WriteLine($"  accounting: blocks in use {start.BlocksInUse} -> {end.BlocksInUse}, bytes in use {start.BytesInUse} -> {end.BytesInUse}: {(balanced ? "ok" : "WRONG")}");
        Console.WriteLine(new Rss(rssStartKiB, rssEndKiB, ResidentMemory.PeakKiB()).Line);
        return balanced ? 0 : 1;
    }

    private static string Mib(long kib) => (kib / 1024.0).ToString("F1", CultureInfo.InvariantCulture);
    private static string Signed(long kib) => (kib >= 0 ? "+" : "") + Mib(kib);
    private static string MibBytes(long bytes) => (bytes / (1024.0 * 1024.0)).ToString("F2", CultureInfo.InvariantCulture);
    private static string SignedBytes(long bytes) => (bytes >= 0 ? "+" : "") + MibBytes(bytes);

    /// <summary>Runs <paramref name="cycles"/> threads in waves, calling <paramref name="sample"/> between
    /// waves each time another <see cref="SampleEvery"/> cycles are done.</summary>
    private static void RunCycles<TAlloc>(int cycles, Mailboxes mailboxes, int seed, Action? sample) where TAlloc : IBenchAllocator
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
                wave[lane] = new Thread(() => Cycle<TAlloc>(threadSeed, inbox, outbox, together), maxStackSize: 256 * 1024) { IsBackground = true };
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
    private static void Cycle<TAlloc>(int seed, nint[] inbox, nint[] outbox, Barrier together) where TAlloc : IBenchAllocator
    {
        for (int i = 0; i < inbox.Length; i++)
        {
            TAlloc.Free((void*)inbox[i]);
            inbox[i] = 0;
        }
        var rng = new Random(seed);
        var blocks = new nint[BlocksPerThread];
        for (int i = 0; i < blocks.Length; i++)
        {
            int size = rng.Next(5) == 0 ? rng.Next(MaxSmall, MaxMid + 1) : rng.Next(16, MaxSmall + 1);
            var p = (byte*)TAlloc.Alloc((nuint)size);
            p[0] = (byte)i;
            p[size - 1] = (byte)i;
            blocks[i] = (nint)p;
        }
        rng.Shuffle(blocks);
        for (int i = 0; i < blocks.Length - HandedOn; i++) TAlloc.Free((void*)blocks[i]);
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
        public void FreeAll<TAlloc>() where TAlloc : IBenchAllocator
        {
            foreach (nint[][] set in _sets)
                foreach (nint[] box in set)
                    for (int i = 0; i < box.Length; i++)
                    {
                        if (box[i] != 0) TAlloc.Free((void*)box[i]);
                        box[i] = 0;
                    }
        }

        private static nint[][] NewSet(int lanes) => Enumerable.Range(0, lanes).Select(_ => new nint[HandedOn]).ToArray();
    }
}
