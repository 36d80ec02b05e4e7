using System.Buffers;
using System.Runtime.InteropServices;
using BenchmarkDotNet.Attributes;

namespace SlabAlloc.Microbenchmarks;

/// <summary>1000 allocations of mixed small sizes (16-512 B), then 1000 frees, in allocation order or
/// reversed. Reported per allocation+free pair.</summary>
[MemoryDiagnoser(displayGenColumns: false)]
public unsafe class BatchBenchmarks
{
    private const int N = 1000;
    private readonly nuint[] _sizes = new nuint[N];
    private readonly nint[] _blocks = new nint[N];
    private readonly byte[][] _arrays = new byte[N][];

    [Params(false, true)]
    public bool Reversed;

    [GlobalSetup]
    public void Setup()
    {
        var rng = new Random(42);
        for (int i = 0; i < N; i++) _sizes[i] = (nuint)rng.Next(16, 513);
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = N)]
    public void NativeMemoryBatch()
    {
        for (int i = 0; i < N; i++) _blocks[i] = (nint)NativeMemory.Alloc(_sizes[i]);
        if (Reversed) for (int i = N - 1; i >= 0; i--) NativeMemory.Free((void*)_blocks[i]);
        else for (int i = 0; i < N; i++) NativeMemory.Free((void*)_blocks[i]);
    }

    [Benchmark(OperationsPerInvoke = N)]
    public void SlabMemoryBatch()
    {
        for (int i = 0; i < N; i++) _blocks[i] = (nint)SlabMemory.Alloc(_sizes[i]);
        if (Reversed) for (int i = N - 1; i >= 0; i--) SlabMemory.Free((void*)_blocks[i]);
        else for (int i = 0; i < N; i++) SlabMemory.Free((void*)_blocks[i]);
    }

    [Benchmark(OperationsPerInvoke = N)]
    public void ArrayPoolBatch()
    {
        for (int i = 0; i < N; i++) _arrays[i] = ArrayPool<byte>.Shared.Rent((int)_sizes[i]);
        if (Reversed) for (int i = N - 1; i >= 0; i--) ArrayPool<byte>.Shared.Return(_arrays[i]);
        else for (int i = 0; i < N; i++) ArrayPool<byte>.Shared.Return(_arrays[i]);
    }
}
