using System.Collections.Concurrent;
using SlabAlloc.Testing;

namespace SlabAlloc.Tests.Stress;

/// <summary>
/// A multithreaded stress run in the style of mimalloc's test-stress: more threads than cores,
/// random sizes over every size class and the large path, blocks swapped between threads through a
/// shared array with atomic exchange (so most frees are cross-thread), every block stamped and
/// verified before it is freed, and all threads ended and recreated every round.
/// </summary>
/// <remarks>
/// A concurrent map of live blocks proves that no block is handed out twice: every allocation must
/// insert a new address, and every free must remove the address with the id its stamp carries.
/// </remarks>
internal sealed unsafe class StressWorkload(int threads, int rounds, int operationsPerThread, int seed)
{
    private const int TransferSlots = 1024;
    private readonly nint[] _transfer = new nint[TransferSlots];
    private readonly ConcurrentDictionary<nint, long> _live = new();
    private long _nextId;
    private long _allocations, _frees, _swaps;

    public long Allocations => _allocations;
    public long Frees => _frees;
    public long Swaps => _swaps;
    public int LiveBlocks => _live.Count;

    /// <summary>Runs every round, then frees what is left in the transfer array.</summary>
    public void Run()
    {
        for (int round = 0; round < rounds; round++)
        {
            using var start = new Barrier(threads);
            var errors = new ConcurrentQueue<Exception>();
            var workers = new Thread[threads];
            for (int t = 0; t < threads; t++)
            {
                int threadSeed = seed + round * 7919 + t * 104729;
                workers[t] = new Thread(() =>
                {
                    try { Worker(threadSeed, start); }
                    catch (Exception e) { errors.Enqueue(e); }
                });
                workers[t].Start();
            }
            foreach (Thread w in workers) w.Join();
            if (!errors.IsEmpty) throw new AggregateException(errors);
        }
        for (int i = 0; i < TransferSlots; i++)
        {
            nint p = Interlocked.Exchange(ref _transfer[i], 0);
            if (p != 0) Release(p);
        }
    }

    private void Worker(int threadSeed, Barrier start)
    {
        var rng = new Random(threadSeed);
        var local = new nint[64];
        start.SignalAndWait();
        for (int op = 0; op < operationsPerThread; op++)
        {
            int r = rng.Next(100);
            if (r < 50)
            {
                // Allocate into a local slot, freeing what was there.
                int k = rng.Next(local.Length);
                if (local[k] != 0) Release(local[k]);
                local[k] = Allocate(rng);
            }
            else if (r < 85)
            {
                // Swap a local block into the shared array; whatever comes out is another thread's, usually.
                int k = rng.Next(local.Length);
                if (local[k] == 0) local[k] = Allocate(rng);
                nint theirs = Interlocked.Exchange(ref _transfer[rng.Next(TransferSlots)], local[k]);
                Interlocked.Increment(ref _swaps);
                local[k] = theirs;
                if (theirs != 0) BlockStamp.Verify((void*)theirs);
            }
            else
            {
                int k = rng.Next(local.Length);
                if (local[k] != 0) { Release(local[k]); local[k] = 0; }
            }
        }
        foreach (nint p in local) if (p != 0) Release(p);
    }

    private nint Allocate(Random rng)
    {
        nuint size = NextSize(rng);
        int kind = rng.Next(10);
        // Recorded in the stamp, so the alignment is checked wherever the block travels.
        int alignmentLog = kind == 1 ? rng.Next(4, 13) : BlockStamp.BaseAlignmentLog;
        void* p = kind switch
        {
            0 => SlabMemory.AllocZeroed(size),
            1 => SlabMemory.AlignedAlloc(size, (nuint)1 << alignmentLog),
            _ => SlabMemory.Alloc(size),
        };
        if (kind == 0 && ((byte*)p)[size - 1] != 0) throw new InvalidOperationException("AllocZeroed returned a dirty block");
        long id = Interlocked.Increment(ref _nextId);
        if (!_live.TryAdd((nint)p, id)) throw new InvalidOperationException($"0x{(nint)p:x} handed out while still live");
        BlockStamp.Write(p, size, alignmentLog, id);
        Interlocked.Increment(ref _allocations);
        return (nint)p;
    }

    private void Release(nint p)
    {
        long id = BlockStamp.Verify((void*)p).Id;
        if (!_live.TryRemove(p, out long expected) || expected != id)
            throw new InvalidOperationException($"0x{p:x} freed but the live map says {(expected == 0 ? "not live" : "id " + expected)}, stamp says id {id}");
        SlabMemory.Free((void*)p);
        Interlocked.Increment(ref _frees);
    }

    /// <summary>Mostly small, a good share of mid-size (8-34 KiB and up to 64 KiB), a few large.</summary>
    private static nuint NextSize(Random rng)
    {
        int r = rng.Next(1000);
        if (r < 700) return (nuint)rng.Next(16, 1025);
        if (r < 850) return (nuint)rng.Next(1025, 8 * 1024);
        if (r < 995) return (nuint)rng.Next(8 * 1024, 64 * 1024 + 1);
        return (nuint)rng.Next(64 * 1024 + 1, 2 * 1024 * 1024);
    }
}
