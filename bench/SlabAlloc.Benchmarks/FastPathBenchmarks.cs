using System.Runtime.InteropServices;
using BenchmarkDotNet.Attributes;

namespace SlabAlloc.Benchmarks;

/// <summary>
/// The two single-thread fast-path targets of the performance issue, small enough to run with every
/// peer allocator in one go (<c>--filter '*FastPath*' --preload</c>): a tight 64-byte alloc+free pair,
/// and 1000 allocations of mixed small sizes followed by 1000 frees. Reported per pair.
/// </summary>
public unsafe class FastPathBenchmarks
{
    private const int N = 1000;
    private readonly nuint[] _sizes = new nuint[N];
    private readonly nint[] _blocks = new nint[N];

    [GlobalSetup]
    public void Setup()
    {
        var rng = new Random(42);
        for (int i = 0; i < N; i++) _sizes[i] = (nuint)rng.Next(16, 257);
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = N)]
    public void NativePair64()
    {
        for (int i = 0; i < N; i++) NativeMemory.Free(Touch(NativeMemory.Alloc(64)));
    }

    [Benchmark(OperationsPerInvoke = N)]
    public void SlabPair64()
    {
        for (int i = 0; i < N; i++) SlabMemory.Free(Touch(SlabMemory.Alloc(64)));
    }

    [Benchmark(OperationsPerInvoke = N)]
    public void NativeMixed1000()
    {
        for (int i = 0; i < N; i++) _blocks[i] = (nint)Touch(NativeMemory.Alloc(_sizes[i]));
        for (int i = 0; i < N; i++) NativeMemory.Free((void*)_blocks[i]);
    }

    [Benchmark(OperationsPerInvoke = N)]
    public void SlabMixed1000()
    {
        for (int i = 0; i < N; i++) _blocks[i] = (nint)Touch(SlabMemory.Alloc(_sizes[i]));
        for (int i = 0; i < N; i++) SlabMemory.Free((void*)_blocks[i]);
    }

    private static void* Touch(void* p)
    {
        *(byte*)p = 1;
        return p;
    }
}
