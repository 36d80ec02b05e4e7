using System.Diagnostics;
using SlabAlloc.Pool;

namespace SlabAlloc.CheckedProbe;

/// <summary>
/// The error guarantees of the README attacked with threads racing on one pointer:
/// <c>SlabAlloc.CheckedProbe race &lt;name&gt; &lt;milliseconds&gt;</c>. Each race runs real threads with
/// fixed seeds for about the time given (a race that repeats a fixed scenario runs at least a few
/// rounds), prints <c>RACE_ROUNDS &lt;name&gt; &lt;rounds&gt;</c>, and reports every broken promise through
/// <see cref="Program.Fail"/>; a race that crashes the process leaves no <c>PROBE_OK</c> behind. The
/// caller (<c>RacingGuaranteeTests</c>) chooses the settings each race needs.
/// </summary>
internal static unsafe class RaceProbes
{
    /// <summary>Runs race <paramref name="name"/>; false for an unknown name.</summary>
    public static bool Run(string name, int milliseconds)
    {
        var time = TimeSpan.FromMilliseconds(milliseconds);
        long rounds;
        switch (name)
        {
            case "never-handed-out": rounds = NeverHandedOut(time); break;
            case "idle-double-free": rounds = IdleDoubleFree(time); break;
            case "large-double-free": rounds = LargeDoubleFree(time); break;
            case "large-tail": rounds = LargeTail(time); break;
            case "stale-trim": rounds = StaleTrim(time, readOnly: false); break;
            case "stale-usable": rounds = StaleTrim(time, readOnly: true); break;
            case "interrupt-free": rounds = InterruptedFree(time); break;
            case "interrupt-attach": rounds = InterruptedAttach(time); break;
            case "lifecycle": rounds = Lifecycle(time); break;
            case "managed-oom": rounds = ManagedOutOfMemory(time); break;
            case "first-large-refused": rounds = FirstLargeRefused(); break;
            default:
                Console.Error.WriteLine($"unknown race '{name}'");
                return false;
        }
        Console.WriteLine($"RACE_ROUNDS {name} {rounds}");
        return true;
    }

    // ---- never-handed-out: blocks of a slab that no allocation returned yet ----

    /// <summary>An owner thread takes 8 blocks of 48 B from a fresh slab (indices 0..7) and keeps freeing
    /// and re-allocating them; since it always frees before it allocates, no allocation of it ever reaches
    /// block 8 or beyond. Two other threads, and the owner itself between its rounds, pass the starts of
    /// blocks 8..capacity-1 to Free and UsableSize: each call must throw <see cref="ArgumentException"/>.
    /// The owner checks its blocks' stamps and that no allocation returns a block outside its 8.</summary>
    private static long NeverHandedOut(TimeSpan time)
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
            if ((blocks[0] & 0xFFFF) != 0) { Program.Fail($"PROBE_ERROR: the first {Size}-byte block 0x{blocks[0]:x} does not start a slab"); ready.Set(); return; }
            for (int i = 0; i < Held; i++)
            {
                if (blocks[i] != blocks[0] + (nuint)(i * Size)) { Program.Fail($"PROBE_ERROR: block {i} is 0x{blocks[i]:x}, not the slab's block {i}"); ready.Set(); return; }
                Stamp(blocks[i], Size, (byte)i);
            }
            slabStart = blocks[0];
            ready.Set();
            var rng = new Random(11);
            while (!stop.IsSet)
            {
                int i = rng.Next(Held);
                if (!Verify(blocks[i], Size, (byte)i)) Program.Fail($"RACE_VIOLATION: block {i} (0x{blocks[i]:x}) was overwritten");
                SlabMemory.Free((void*)blocks[i]);
                var again = (nuint)SlabMemory.Alloc(Size);
                if (again < slabStart || again >= slabStart + Held * Size) Program.Fail($"RACE_VIOLATION: the owner was handed 0x{again:x}, which is not one of the blocks it freed");
                blocks[i] = again;
                Stamp(again, Size, (byte)i);
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
                Program.Fail($"RACE_VIOLATION: {who}'s Free(0x{p:x}) of a block never handed out returned");
            }
            catch (ArgumentException) { }
            try
            {
                nuint usable = SlabMemory.UsableSize((void*)p);
                Program.Fail($"RACE_VIOLATION: {who}'s UsableSize(0x{p:x}) of a block never handed out returned {usable}");
            }
            catch (ArgumentException) { }
        }
    }

    // ---- idle-double-free: a block freed again while its slab has no block out ----

    /// <summary>Rounds of: the owner allocates 1 to 16 blocks of 112 B from its slab and frees them all, so
    /// the slab has no block out; then three threads and the owner free one of those blocks again, all at
    /// once. Every one of the four must get <see cref="ArgumentException"/>, the count of blocks in use must
    /// not move, and the owner's next two allocations must be two different blocks.</summary>
    private static long IdleDoubleFree(TimeSpan time)
    {
        const int Size = 112, Attackers = 3;
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
            var blocks = new nuint[16];
            while (clock.Elapsed < time || rounds < 20)
            {
                int count = rng.Next(1, blocks.Length + 1);
                for (int i = 0; i < count; i++) blocks[i] = (nuint)SlabMemory.Alloc(Size);
                for (int i = 0; i < count; i++) SlabMemory.Free((void*)blocks[i]);
                long inUse = SlabMemory.GetStatistics().BlocksInUse;
                Volatile.Write(ref victim, blocks[rng.Next(count)]);
                start.SignalAndWait();
                ExpectDoubleFreeRejected(victim, "the owner");
                done.SignalAndWait();
                if (SlabMemory.GetStatistics().BlocksInUse != inUse) Program.Fail($"RACE_VIOLATION: BlocksInUse moved from {inUse} to {SlabMemory.GetStatistics().BlocksInUse} after rejected double frees");
                var x = (nuint)SlabMemory.Alloc(Size);
                var y = (nuint)SlabMemory.Alloc(Size);
                if (x == y) Program.Fail($"RACE_VIOLATION: 0x{x:x} was handed out twice");
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
                Program.Fail($"RACE_VIOLATION: {who}'s second Free(0x{p:x}) into a slab with no block out returned");
            }
            catch (ArgumentException) { }
        }
    }

    // ---- large-double-free: two threads free the same large block at the same moment ----

    /// <summary>Rounds of: a 256 KiB block is allocated and stamped, then two threads free it and a third
    /// reallocates it (to twice the size, then frees the new block) at the same moment. Exactly one of the
    /// three may return; the others must throw <see cref="ArgumentException"/>. Then two
    /// 256 KiB blocks are allocated: they must be different and must not overlap. Run with and without the
    /// large-block cache (<c>SLABALLOC_LARGE_CACHE_MB=0</c>).</summary>
    private static long LargeDoubleFree(TimeSpan time)
    {
        const int Size = 256 * 1024, Freers = 3;
        var clock = Stopwatch.StartNew();
        nuint block = 0;
        int returned = 0;
        long rounds = 0;
        using var start = new Barrier(Freers + 1);
        using var done = new Barrier(Freers + 1);
        var stop = new StopFlag();
        var freers = new Thread[Freers];
        for (int f = 0; f < Freers; f++)
        {
            int id = f;
            freers[f] = new Thread(() =>
            {
                while (true)
                {
                    start.SignalAndWait();
                    if (stop.IsSet) return;
                    try
                    {
                        void* p = (void*)Volatile.Read(ref block);
                        // One of the three moves the block instead of freeing it (Realloc claims it first).
                        if (id == 0) SlabMemory.Free(SlabMemory.Realloc(p, 2 * Size));
                        else SlabMemory.Free(p);
                        Interlocked.Increment(ref returned);
                    }
                    catch (ArgumentException) { }
                    done.SignalAndWait();
                }
            });
            freers[f].Start();
        }
        while (clock.Elapsed < time || rounds < 20)
        {
            var p = (nuint)SlabMemory.Alloc(Size);
            Stamp(p, 4096, 0x3C);
            Volatile.Write(ref block, p);
            Volatile.Write(ref returned, 0);
            start.SignalAndWait();
            done.SignalAndWait();
            if (returned != 1) Program.Fail($"RACE_VIOLATION: {returned} of {Freers} simultaneous frees of the large block 0x{p:x} returned");
            var x = (nuint)SlabMemory.Alloc(Size);
            var y = (nuint)SlabMemory.Alloc(Size);
            if (x + Size > y && y + Size > x) Program.Fail($"RACE_VIOLATION: the large blocks 0x{x:x} and 0x{y:x} overlap");
            SlabMemory.Free((void*)x);
            if (x != y) SlabMemory.Free((void*)y);
            rounds++;
        }
        stop.Set();
        start.SignalAndWait();
        foreach (Thread t in freers) t.Join();
        return rounds;
    }

    // ---- large-tail: a foreign pointer in a large block's granule while the block is freed ----

    /// <summary>One thread allocates and frees 1 MiB blocks in a loop (run with
    /// <c>SLABALLOC_LARGE_CACHE_MB=0</c>, so every free unmaps); three threads pass a pointer 2 MiB into the
    /// last block's 4 MiB granule, beyond its mapping, to Free, UsableSize, Realloc and AlignedRealloc. Every
    /// call must throw <see cref="ArgumentException"/>; none may crash the process.</summary>
    private static long LargeTail(TimeSpan time)
    {
        const int Size = 1 << 20;
        nuint granule = 0;
        long rounds = 0;
        var stop = new StopFlag();
        var churn = new Thread(() =>
        {
            while (!stop.IsSet)
            {
                var p = (byte*)SlabMemory.Alloc(Size);
                p[0] = 1;
                Volatile.Write(ref granule, (nuint)p & ~(nuint)0x3FFFFF);
                SlabMemory.Free(p);
                Interlocked.Increment(ref rounds);
            }
        });
        churn.Start();
        RunFor(time, stop, 3, id =>
        {
            int call = id;
            while (!stop.IsSet)
            {
                nuint g = Volatile.Read(ref granule);
                if (g == 0) continue;
                ExpectRejectedByCall(g + (2 << 20) + 16, call++ % 4, "a pointer past a large block's mapping");
            }
        });
        churn.Join();
        return rounds;
    }

    // ---- stale-trim: a freed pointer passed to every call while its superslab is returned ----

    /// <summary>Run with nothing kept for reuse (no empty slabs per class, no shared reserve, no superslab
    /// cache, no decay). One thread allocates a 64 B block, frees it, publishes the now stale pointer and
    /// calls Trim, which returns the block's superslab to the system, in a loop; three threads pass the
    /// stale pointer to Free, UsableSize, Realloc and AlignedRealloc (with checked mode on), or only to
    /// UsableSize (<paramref name="readOnly"/>, in any mode: a double free that is not detected corrupts,
    /// by design). Nothing may crash. A stale call may meet a new block at the same address (the range is
    /// reused), which it then frees; the allocating thread's own free of it is rejected then, so every block
    /// is freed exactly once and the count of blocks in use comes back exactly.</summary>
    private static long StaleTrim(TimeSpan time, bool readOnly)
    {
        nuint stale = 0;
        long rounds = 0, stolen = 0;
        var stop = new StopFlag();
        var churn = new Thread(() =>
        {
            while (!stop.IsSet)
            {
                // Not written to: a stale call may free it the moment it is handed out.
                var p = (byte*)SlabMemory.Alloc(64);
                try { SlabMemory.Free(p); }
                catch (ArgumentException) { Interlocked.Increment(ref stolen); } // a stale free met this block first
                Volatile.Write(ref stale, (nuint)p);
                SlabMemory.Trim();
                Interlocked.Increment(ref rounds);
            }
        });
        churn.Start();
        RunFor(time, stop, 3, id =>
        {
            int call = id;
            while (!stop.IsSet)
            {
                nuint p = Volatile.Read(ref stale);
                if (p == 0) continue;
                int which = readOnly ? 1 : call++ % 4;
                try
                {
                    switch (which)
                    {
                        case 0: SlabMemory.Free((void*)p); break;
                        case 1: _ = SlabMemory.UsableSize((void*)p); break;
                        case 2: SlabMemory.Free(SlabMemory.Realloc((void*)p, 200)); break;
                        default: SlabMemory.Free(SlabMemory.AlignedRealloc((void*)p, 200, 64)); break;
                    }
                }
                catch (ArgumentException) { }
            }
        });
        churn.Join();
        Console.WriteLine($"RACE_STALE_MET_LIVE {stolen}");
        return rounds;
    }

    // ---- interrupt-free / interrupt-attach: a pending Thread.Interrupt while the pool's lock is busy ----

    /// <summary>Run with <c>SLABALLOC_POOL=mutex</c>. Rounds of: a thread fills one 64 B slab and starts a
    /// second, frees every block of the first but one, takes an interrupt (<c>Thread.Interrupt</c> on
    /// itself) and frees the last one while another thread holds the pool's lock for 50 ms: the free hands
    /// the slab to the pool and waits for the lock. The free must return normally, the interrupt must still
    /// be pending afterwards (the thread's next sleep throws <see cref="ThreadInterruptedException"/>), and
    /// once every thread has ended and Trim has run no superslab may be left mapped.</summary>
    private static long InterruptedFree(TimeSpan time)
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
                    catch (Exception e) { Program.Fail($"RACE_VIOLATION: Free threw {e.GetType().Name} while waiting for the pool's lock: {Program.OneLine(e.Message)}"); }
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

    /// <summary>Run with <c>SLABALLOC_POOL=mutex</c> and <c>SLABALLOC_DECAY_MS=0</c> (no upkeep, so the dead
    /// thread's cache waits for the next thread that attaches). Rounds of: a thread fills a 64 B slab and
    /// part of another, frees everything and ends; a new thread takes an interrupt and allocates its first
    /// block while another thread holds the pool's lock, so the reclaim of the dead thread's cache that
    /// its attach runs waits for the lock; a third thread, interrupted too, calls Trim meanwhile, which waits
    /// for that reclaim. The allocation and the Trim must return normally with the interrupts still pending,
    /// and in the end no superslab may be left mapped.</summary>
    private static long InterruptedAttach(TimeSpan time)
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
                    catch (Exception e) { Program.Fail($"RACE_VIOLATION: a first allocation threw {e.GetType().Name} while its attach waited for the pool's lock: {Program.OneLine(e.Message)}"); }
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
                catch (Exception e) { Program.Fail($"RACE_VIOLATION: Trim threw {e.GetType().Name} while a dead thread's cache was being reclaimed: {Program.OneLine(e.Message)}"); }
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

    /// <summary>Runs <paramref name="action"/> on the calling thread while another thread holds the mutex
    /// pool's lock, and releases the lock 50 ms after the action began (by then it waits for the lock).</summary>
    private static void WhileLockHeld(Action action)
    {
        if (SlabPool.Shared is not SharedSlabPool<CoarseLock> pool)
        {
            Program.Fail("PROBE_ERROR: the race needs SLABALLOC_POOL=mutex");
            return;
        }
        using var held = new ManualResetEventSlim();
        using var go = new ManualResetEventSlim();
        var holder = new Thread(() =>
        {
            pool.Guard.Enter(PoolPath.ReleaseSlab);
            held.Set();
            go.Wait();
            Thread.Sleep(50);
            pool.Guard.Exit();
        });
        holder.Start();
        held.Wait();
        go.Set();
        action();
        // Not Join: the calling thread may carry a pending interrupt, which the caller checks.
        while (holder.IsAlive) Thread.Yield();
    }

    private static void ExpectInterruptPending()
    {
        try
        {
            Thread.Sleep(1);
            Program.Fail("RACE_VIOLATION: the thread's interrupt was lost inside SlabAlloc");
        }
        catch (ThreadInterruptedException) { }
    }

    private static void ExpectEverythingReturned(string race)
    {
        SlabMemory.Trim();
        SlabStatistics s = SlabMemory.GetStatistics();
        if (s.Superslabs != 0 || s.SlabsFull + s.SlabsPartial + s.SlabsEmpty + s.SlabsReserved != 0)
            Program.Fail($"RACE_VIOLATION: {race}: after every thread ended and Trim, {s.Superslabs} superslabs are mapped (slabs full {s.SlabsFull}, partial {s.SlabsPartial}, empty {s.SlabsEmpty}, reserved {s.SlabsReserved}, owned {s.SlabsOwned})");
    }

    // ---- lifecycle: slabs handed between threads as fast as possible ----

    /// <summary>Run with <c>SLABALLOC_THREAD_CACHE_LIMIT=4</c>, so that every few allocations a thread lets
    /// its slab go (often full, detached) and remote frees publish it again. Four threads allocate stamped
    /// blocks of 16 B to 2 KiB and swap them through a shared array by atomic exchange (most frees are
    /// remote), then free what is left. Every stamp must hold, and once everything is freed and Trim has
    /// run, no slab may be counted full, partial, empty or reserved: a slab's recorded state must follow
    /// it through every hand-over.</summary>
    private static long Lifecycle(TimeSpan time)
    {
        const int Slots = 4096;
        var shared = new nint[Slots];
        long rounds = 0;
        var stop = new StopFlag();
        RunFor(time, stop, 4, id =>
        {
            var rng = new Random(1000 + id);
            while (!stop.IsSet)
            {
                var size = (nuint)rng.Next(16, 2049);
                var p = (byte*)SlabMemory.Alloc(size);
                *(nuint*)p = size;
                p[size - 1] = (byte)size;
                nint old = Interlocked.Exchange(ref shared[rng.Next(Slots)], (nint)p);
                if (old != 0) FreeStamped(old);
                Interlocked.Increment(ref rounds);
            }
        });
        foreach (nint p in shared) if (p != 0) FreeStamped(p);
        ExpectEverythingReturned("lifecycle");
        return rounds;

        static void FreeStamped(nint p)
        {
            nuint size = *(nuint*)p;
            if (size < 16 || size > 2048 || ((byte*)p)[size - 1] != (byte)size) Program.Fail($"RACE_VIOLATION: the block at 0x{p:x} was overwritten");
            SlabMemory.Free((void*)p);
        }
    }

    // ---- managed-oom: no managed memory left while a thread attaches to free, or a dead cache is reclaimed ----

    /// <summary>Run with a small managed heap (<c>DOTNET_GCHeapHardLimit</c>) and no upkeep. Rounds of two
    /// parts, each with the managed heap filled until even a small allocation fails. First, a thread that
    /// has never touched SlabAlloc frees 64 blocks of this thread's: its first free attaches it, which needs
    /// a new managed record (the freers of earlier rounds are kept alive, so no record is free to reuse), and
    /// every free must still succeed. Second, a thread that filled two 64 B slabs and part of a third, freed
    /// every block and ended is reclaimed by <c>Trim</c>, which must need no managed memory: it must not
    /// throw, and in the end no superslab may be left with a dead thread's slabs.</summary>
    private static long ManagedOutOfMemory(TimeSpan time)
    {
        const int Size = 64, Capacity = 65536 / Size, Blocks = 64;
        var clock = Stopwatch.StartNew();
        long rounds = 0;
        var ballast = new object?[1 << 20];
        var freers = new List<Thread>();
        using var release = new ManualResetEventSlim();
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
            int filled = Fill(ballast);
            Volatile.Write(ref steps[0], 1);
            while (Volatile.Read(ref steps[1]) == 0) Thread.Yield();
            Array.Clear(ballast);
            GC.Collect();
            if (failure != null) Program.Fail($"RACE_VIOLATION: a free threw {failure} while its thread attached with no managed memory left ({filled} objects of ballast)");

            var dead = new Thread(() =>
            {
                var mine = new nuint[2 * Capacity + 10];
                for (int i = 0; i < mine.Length; i++) mine[i] = (nuint)SlabMemory.Alloc(Size);
                foreach (nuint b in mine) SlabMemory.Free((void*)b);
            });
            dead.Start();
            dead.Join();
            filled = Fill(ballast);
            string? trimFailure = null;
            try { SlabMemory.Trim(); }
            catch (Exception e) { trimFailure = e is OutOfMemoryException ? "OutOfMemoryException" : "another exception"; }
            Array.Clear(ballast);
            GC.Collect();
            if (trimFailure != null) Program.Fail($"RACE_VIOLATION: Trim threw {trimFailure} reclaiming a dead thread's cache with no managed memory left ({filled} objects of ballast)");
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

    // ---- first-large-refused: the process's first large block refused by the system ----

    /// <summary>The process's first large block maps the large records' table; the fault hook refuses that
    /// mapping (and every one after it): an <see cref="OutOfMemoryException"/>, nothing else. Once mappings
    /// are allowed again, large blocks must be had.</summary>
    private static long FirstLargeRefused()
    {
        Platform.FaultInjector.FailFrom(1);
        try
        {
            SlabMemory.Free(SlabMemory.Alloc(1 << 20));
            Program.Fail("PROBE_ERROR: a large block was had while every mapping was refused");
        }
        catch (OutOfMemoryException) { }
        catch (Exception e) { Program.Fail($"RACE_VIOLATION: the first large allocation, refused, threw {e.GetType().Name}, not OutOfMemoryException"); }
        finally { Platform.FaultInjector.Disarm(); }
        try { SlabMemory.Free(SlabMemory.Alloc(1 << 20)); }
        catch (Exception e) { Program.Fail($"RACE_VIOLATION: once mappings were allowed again, a large allocation threw {e.GetType().Name}"); }
        return 1;
    }

    // ---- common ----

    private sealed class StopFlag
    {
        private int _set;
        public bool IsSet => Volatile.Read(ref _set) != 0;
        public void Set() => Volatile.Write(ref _set, 1);
    }

    /// <summary>Starts <paramref name="threads"/> threads running <paramref name="body"/>, sets
    /// <paramref name="stop"/> after <paramref name="time"/> and waits for them. An exception other than the
    /// expected ones ends the thread and is reported.</summary>
    private static void RunFor(TimeSpan time, StopFlag stop, int threads, Action<int> body)
    {
        var all = new Thread[threads];
        for (int t = 0; t < threads; t++)
        {
            int id = t;
            all[t] = new Thread(() =>
            {
                try { body(id); }
                catch (Exception e) { Program.Fail($"RACE_VIOLATION: thread {id} threw {e.GetType().Name}: {Program.OneLine(e.Message)}"); }
            });
            all[t].Start();
        }
        Thread.Sleep(time);
        stop.Set();
        foreach (Thread t in all) t.Join();
    }

    private static void ExpectRejectedByCall(nuint p, int call, string what)
    {
        try
        {
            switch (call)
            {
                case 0: SlabMemory.Free((void*)p); break;
                case 1: _ = SlabMemory.UsableSize((void*)p); break;
                case 2: _ = SlabMemory.Realloc((void*)p, 200); break;
                default: _ = SlabMemory.AlignedRealloc((void*)p, 200, 64); break;
            }
            Program.Fail($"RACE_VIOLATION: call {call} accepted 0x{p:x}, {what}");
        }
        catch (ArgumentException) { }
    }

    private static void Stamp(nuint p, int size, byte seed)
    {
        for (int i = 0; i < size; i++) ((byte*)p)[i] = (byte)(seed + i * 7);
    }

    private static bool Verify(nuint p, int size, byte seed)
    {
        for (int i = 0; i < size; i++)
            if (((byte*)p)[i] != (byte)(seed + i * 7)) return false;
        return true;
    }
}
