using System.Buffers;
using System.Diagnostics;
using System.Runtime.CompilerServices;

namespace SlabAlloc.Workloads;

/// <summary>
/// <c>poolcost [count]</c>: what <see cref="SlabMemoryPool"/>'s owners cost, beside
/// <see cref="MemoryPool{T}.Shared"/>, on one thread, each figure a median of five rounds:
/// <list type="number">
/// <item><b>rent/dispose</b>: 16 buffers held, each rent disposing the oldest; ns and managed bytes per rent.</item>
/// <item><b>rent/drop</b>: <c>count</c> buffers rented, written and dropped without Dispose, then collected
/// and finalized; ns per buffer including the collections and the finalizers, and how many blocks came
/// back (SlabAlloc's) .</item>
/// <item><b>gen0 with owners alive</b>: <c>count</c> rented buffers held while the thread allocates
/// 200 MB of short-lived garbage; mean pause per gen0 collection. SlabAlloc's owners are finalizable,
/// the shared pool's are not: this is what keeping finalizable owners alive costs the collector.</item>
/// </list>
/// Calls form: each rent and dispose is an interface call.
/// </summary>
internal static class PoolCost
{
    private const int Size = 64;

    public static int Run(List<string> args)
    {
        int count = args.Count > 0 ? int.Parse(args[0], System.Globalization.CultureInfo.InvariantCulture) : 100_000;
        if (count < 1) throw new ArgumentException("count must be at least 1");
        Console.WriteLine($"poolcost: {count} buffers of {Size} B, median of 5 rounds");
        Console.WriteLine("| pool | rent/dispose, ns | managed B per rent | rent/drop, ns per buffer | buffers reclaimed | gen0 pause with owners alive, µs |");
        Console.WriteLine("|---|---|---|---|---|---|");
        var pools = new (string Name, MemoryPool<byte> Pool)[] { ("MemoryPool<byte>.Shared", MemoryPool<byte>.Shared), ("SlabMemoryPool", new SlabMemoryPool()) };
        // Every path run until the tiered JIT has compiled it optimized: it starts counting calls only once
        // no method has been compiled for 100 ms, hence the pauses.
        for (int warm = 0; warm < 4; warm++)
        {
            foreach ((_, MemoryPool<byte> pool) in pools)
            {
                RentDispose(pool, 200_000);
                RentDrop(pool, 1_000);
                Gen0WithOwnersAlive(pool, 1_000, 1_000_000);
            }
            Thread.Sleep(250);
        }
        foreach ((string name, MemoryPool<byte> pool) in pools)
        {
            var rentDispose = new List<(double Ns, double Bytes)>();
            var rentDrop = new List<(double Ns, long Reclaimed)>();
            var pauses = new List<double>();
            for (int round = 0; round < 5; round++)
            {
                rentDispose.Add(RentDispose(pool, 1_000_000));
                rentDrop.Add(RentDrop(pool, count));
                pauses.Add(Gen0WithOwnersAlive(pool, count, 200_000_000));
            }
            Console.WriteLine($"| {name} | {Median(rentDispose.Select(r => r.Ns)):F1} | {Median(rentDispose.Select(r => r.Bytes)):F1} | " +
                $"{Median(rentDrop.Select(r => r.Ns)):F0} | {Median(rentDrop.Select(r => (double)r.Reclaimed)):F0} | {Median(pauses):F0} |");
        }
        return 0;
    }

    private static double Median(IEnumerable<double> values)
    {
        double[] v = values.Order().ToArray();
        return v.Length % 2 == 1 ? v[v.Length / 2] : (v[v.Length / 2 - 1] + v[v.Length / 2]) / 2;
    }

    private static (double Ns, double Bytes) RentDispose(MemoryPool<byte> pool, int rents)
    {
        var held = new IMemoryOwner<byte>?[16];
        for (int i = 0; i < 10_000; i++) Cycle(pool, held, i);
        long bytes = GC.GetAllocatedBytesForCurrentThread();
        long start = Stopwatch.GetTimestamp();
        for (int i = 0; i < rents; i++) Cycle(pool, held, i);
        double ns = Stopwatch.GetElapsedTime(start).TotalNanoseconds / rents;
        bytes = GC.GetAllocatedBytesForCurrentThread() - bytes;
        foreach (IMemoryOwner<byte>? owner in held) owner?.Dispose();
        return (ns, (double)bytes / rents);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void Cycle(MemoryPool<byte> pool, IMemoryOwner<byte>?[] held, int i)
    {
        ref IMemoryOwner<byte>? slot = ref held[i & 15];
        slot?.Dispose();
        slot = pool.Rent(Size);
        slot.Memory.Span[0] = (byte)i;
    }

    private static (double Ns, long Reclaimed) RentDrop(MemoryPool<byte> pool, int count)
    {
        Settle();
        long reclaimed = SlabMemory.GetStatistics().PoolBuffersReclaimed;
        long start = Stopwatch.GetTimestamp();
        Drop(pool, count);
        Settle();
        double ns = Stopwatch.GetElapsedTime(start).TotalNanoseconds / count;
        return (ns, SlabMemory.GetStatistics().PoolBuffersReclaimed - reclaimed);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void Drop(MemoryPool<byte> pool, int count)
    {
        for (int i = 0; i < count; i++) pool.Rent(Size).Memory.Span[0] = (byte)i;
    }

    private static void Settle()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
    }

    private static double Gen0WithOwnersAlive(MemoryPool<byte> pool, int count, long garbageBytes)
    {
        var owners = new IMemoryOwner<byte>[count];
        for (int i = 0; i < count; i++) owners[i] = pool.Rent(Size);
        Settle(); // the owners reach the oldest generation, as long-lived rented buffers do
        int gen0 = GC.CollectionCount(0);
        TimeSpan paused = GC.GetTotalPauseDuration();
        object? keep = null;
        for (long i = 0; i < garbageBytes / 64; i++) keep = new byte[40]; // 64 B objects
        GC.KeepAlive(keep);
        int collections = GC.CollectionCount(0) - gen0;
        double us = (GC.GetTotalPauseDuration() - paused).TotalMicroseconds / Math.Max(1, collections);
        foreach (IMemoryOwner<byte> owner in owners) owner.Dispose();
        return us;
    }
}
