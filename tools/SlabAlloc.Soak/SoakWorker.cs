using System.Diagnostics;
using SlabAlloc.Testing;

namespace SlabAlloc.Soak;

/// <summary>
/// One soak worker's life: for a random 10 ms to 1 s it allocates (plain, zeroed, aligned, and
/// through <c>Realloc(null, n)</c>), reallocates, frees its own blocks, and swaps blocks with other
/// threads through the soak's exchange array, verifying every block's stamp before it frees or
/// reallocates it. When its life is over it frees what it holds and returns; the soak starts a new
/// worker in its place.
/// </summary>
/// <remarks>
/// Most frees are of blocks another thread allocated, many of them of threads that have already
/// ended: the exchange array keeps blocks alive across thread lifetimes, which is what exercises
/// remote frees into reclaimed thread caches and slabs that changed hands.
/// </remarks>
internal static unsafe class SoakWorker
{
    private const int LocalSlots = 64;
    /// <summary>Operations between looks at the clock and flushes of the shared operation count, so
    /// the shared counter is touched rarely enough not to become the bottleneck.</summary>
    private const int Batch = 64;

    /// <summary>Runs one worker's life. Ids are the worker's serial in the high half and a local count in
    /// the low half: unique without a shared atomic counter, and a bad stamp names the worker.</summary>
    public static void Run(SoakRun soak, long serial, int seed)
    {
        var rng = new Random(seed);
        var local = new nint[LocalSlots];
        long nextId = serial << 32;
        long end = Stopwatch.GetTimestamp() + (long)(LifeSeconds(rng) * Stopwatch.Frequency);
        while (!soak.Stopping)
        {
            for (int i = 0; i < Batch; i++) Step(soak, rng, local, ref nextId);
            soak.AddOperations(Batch);
            if (Stopwatch.GetTimestamp() >= end) break;
        }
        // Not in a finally: after a failed check the heap may be corrupt, and freeing into it would
        // only bury the first error under later ones.
        foreach (nint p in local) if (p != 0) Release(p);
    }

    /// <summary>10 ms × 100^(u³): from 10 ms to 1 s, median about 18 ms, mean about 90 ms, so most
    /// threads are short-lived (thread churn: thousands of threads in a default run) while a few live
    /// long enough to own slabs of many classes and retain exhausted ones.</summary>
    private static double LifeSeconds(Random rng)
    {
        double u = rng.NextDouble();
        return 0.010 * Math.Pow(100, u * u * u);
    }

    /// <summary>One operation.</summary>
    private static void Step(SoakRun soak, Random rng, nint[] local, ref long nextId)
    {
        int k = rng.Next(LocalSlots);
        int r = rng.Next(100);
        if (r < 40)
        {
            if (local[k] != 0) Release(local[k]);
            local[k] = Allocate(rng, ref nextId);
        }
        else if (r < 65)
        {
            // Swap one of ours for whatever is in the slot: usually another thread's block, often of
            // a thread that has ended. It stays with us until we free, reallocate or swap it.
            if (local[k] == 0) local[k] = Allocate(rng, ref nextId);
            nint theirs = Interlocked.Exchange(ref soak.Exchange[rng.Next(soak.Exchange.Length)], local[k]);
            if (theirs != 0) BlockStamp.Verify((void*)theirs);
            local[k] = theirs;
        }
        else if (r < 75)
        {
            local[k] = Reallocate(rng, local[k], ref nextId);
        }
        else if (r < 90)
        {
            if (local[k] != 0) { Release(local[k]); local[k] = 0; }
        }
        else
        {
            // Take a block out of the exchange and free it here: a remote free, without the swap that
            // would keep the array full.
            nint theirs = Interlocked.Exchange(ref soak.Exchange[rng.Next(soak.Exchange.Length)], 0);
            if (theirs != 0) Release(theirs);
        }
    }

    private static nint Allocate(Random rng, ref long nextId)
    {
        nuint size = NextSize(rng);
        int kind = rng.Next(20);
        int alignmentLog = BlockStamp.BaseAlignmentLog;
        void* p;
        switch (kind)
        {
            case 0 or 1:
                p = SlabMemory.AllocZeroed(size);
                // The whole block, vectorized: stale contents of a reused slab or large mapping are the bug.
                if (new ReadOnlySpan<byte>(p, (int)size).IndexOfAnyExcept((byte)0) is int dirty and >= 0)
                    throw new InvalidOperationException($"AllocZeroed({size}) returned 0x{(nint)p:x} with byte {dirty} not zero");
                break;
            case 2 or 3:
                // Mostly up to a page; now and then 8 KiB to 1 MiB, which above 64 KiB takes the large path even for a small block.
                alignmentLog = rng.Next(50) == 0 ? rng.Next(13, BlockStamp.MaxAlignmentLog + 1) : rng.Next(4, 13);
                p = SlabMemory.AlignedAlloc(size, (nuint)1 << alignmentLog);
                break;
            case 4:
                p = SlabMemory.Realloc(null, size);
                break;
            default:
                p = SlabMemory.Alloc(size);
                break;
        }
        CheckUsable(p, size);
        BlockStamp.Write(p, size, alignmentLog, nextId++);
        return (nint)p;
    }

    /// <summary>Reallocates a block (or allocates, for an empty slot), checking that the bytes both sizes
    /// share survived, and restamps it under the same id. Aligned blocks go through AlignedRealloc with
    /// their alignment. Half the new sizes are near the old one, which mostly stays in place.</summary>
    private static nint Reallocate(Random rng, nint block, ref long nextId)
    {
        if (block == 0)
        {
            nuint fresh = NextSize(rng);
            void* q = SlabMemory.Realloc(null, fresh);
            CheckUsable(q, fresh);
            BlockStamp.Write(q, fresh, BlockStamp.BaseAlignmentLog, nextId++);
            return (nint)q;
        }
        BlockStamp.Header h = BlockStamp.Verify((void*)block);
        nuint size = rng.Next(2) == 0
            ? NextSize(rng)
            : (nuint)Math.Clamp((long)h.Size + rng.Next(-(int)(h.Size / 4), (int)(h.Size / 4) + 1), (long)BlockStamp.MinSize, (long)BlockStamp.MaxSize);
        void* p = h.AlignmentLog > BlockStamp.BaseAlignmentLog
            ? SlabMemory.AlignedRealloc((void*)block, size, (nuint)1 << h.AlignmentLog)
            : SlabMemory.Realloc((void*)block, size);
        BlockStamp.VerifyPrefix(p, size);
        CheckUsable(p, size);
        BlockStamp.Write(p, size, h.AlignmentLog, h.Id);
        return (nint)p;
    }

    private static void Release(nint block)
    {
        BlockStamp.Verify((void*)block);
        SlabMemory.Free((void*)block);
    }

    private static void CheckUsable(void* p, nuint size)
    {
        nuint usable = SlabMemory.UsableSize(p);
        if (usable < size) throw new InvalidOperationException($"UsableSize(0x{(nint)p:x}) = {usable}, less than the {size} bytes asked for");
    }

    /// <summary>Mostly small (every 16-byte class to 1 KiB), some 1-8 KiB, some 8-64 KiB (the medium
    /// slabs), and one in 200 from 64 KiB to 4 MiB, log-uniform so the large path sees every size.</summary>
    public static nuint NextSize(Random rng)
    {
        int r = rng.Next(1000);
        if (r < 750) return (nuint)rng.Next((int)BlockStamp.MinSize, 1025);
        if (r < 900) return (nuint)rng.Next(1025, 8 * 1024);
        if (r < 995) return (nuint)rng.Next(8 * 1024, 64 * 1024 + 1);
        return (nuint)Math.Min(BlockStamp.MaxSize, (nuint)(64 * 1024 * Math.Pow(64, rng.NextDouble())) + 1);
    }
}
