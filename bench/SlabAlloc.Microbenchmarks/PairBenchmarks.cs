using System.Buffers;
using System.Runtime.InteropServices;
using BenchmarkDotNet.Attributes;

namespace SlabAlloc.Microbenchmarks;

/// <summary>One thread, an allocation followed by its free, 1000 times per invocation.</summary>
[MemoryDiagnoser(displayGenColumns: false)]
public unsafe class PairBenchmarks
{
    private const int Pairs = 1000;

    [Params(16, 64, 256, 1024, 4096, 16384, 65536, 262144)]
    public int Size;

    [Benchmark(Baseline = true, OperationsPerInvoke = Pairs)]
    public void NativeMemoryPair()
    {
        for (int i = 0; i < Pairs; i++)
        {
            byte* p = (byte*)NativeMemory.Alloc((nuint)Size);
            *p = 1;
            NativeMemory.Free(p);
        }
    }

    [Benchmark(OperationsPerInvoke = Pairs)]
    public void SlabMemoryPair()
    {
        for (int i = 0; i < Pairs; i++)
        {
            byte* p = (byte*)SlabMemory.Alloc((nuint)Size);
            *p = 1;
            SlabMemory.Free(p);
        }
    }

    [Benchmark(OperationsPerInvoke = Pairs)]
    public void ArrayPoolRentReturn()
    {
        for (int i = 0; i < Pairs; i++)
        {
            byte[] a = ArrayPool<byte>.Shared.Rent(Size);
            a[0] = 1;
            ArrayPool<byte>.Shared.Return(a);
        }
    }
}
