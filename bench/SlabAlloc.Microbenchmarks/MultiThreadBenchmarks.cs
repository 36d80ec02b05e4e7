using System.Runtime.InteropServices;
using BenchmarkDotNet.Attributes;

namespace SlabAlloc.Microbenchmarks;

/// <summary>Threads each doing 200,000 allocations of random small sizes (16-1024 B) into a 256-slot
/// working set, so that most frees are of blocks allocated a while ago. Reported per operation.</summary>
public unsafe class MultiThreadBenchmarks
{
    private const int OpsPerThread = 200_000, Slots = 256;

    [Params(1, 2, 4, 8)]
    public int Threads;

    [Benchmark(Baseline = true)]
    public void NativeMemoryThreads() => Run(&NativeMemory.Alloc, &NativeMemory.Free);

    [Benchmark]
    public void SlabMemoryThreads() => Run(&SlabMemory.Alloc, &SlabMemory.Free);

    private void Run(delegate*<nuint, void*> alloc, delegate*<void*, void> free)
    {
        var workers = new Thread[Threads];
        for (int t = 0; t < Threads; t++)
        {
            int seed = t;
            workers[t] = new Thread(() =>
            {
                var rng = new Random(seed);
                var slots = stackalloc nint[Slots];
                for (int i = 0; i < Slots; i++) slots[i] = 0;
                for (int i = 0; i < OpsPerThread; i++)
                {
                    int k = rng.Next(Slots);
                    if (slots[k] != 0) free((void*)slots[k]);
                    slots[k] = (nint)alloc((nuint)rng.Next(16, 1025));
                }
                for (int i = 0; i < Slots; i++) if (slots[i] != 0) free((void*)slots[i]);
            });
            workers[t].Start();
        }
        foreach (Thread w in workers) w.Join();
    }
}
