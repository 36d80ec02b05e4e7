using System.Buffers;
using BenchmarkDotNet.Attributes;

namespace SlabAlloc.Microbenchmarks;

/// <summary>One thread, rent a buffer, write one byte, give it back, 1000 times per invocation:
/// <see cref="SlabMemoryPool.Shared"/> against <see cref="MemoryPool{T}.Shared"/> and
/// <see cref="ArrayPool{T}.Shared"/>.</summary>
[MemoryDiagnoser(displayGenColumns: false)]
public class MemoryPoolBenchmarks
{
    private const int Rents = 1000;

    [Params(64, 4096, 65536)]
    public int Size;

    [Benchmark(Baseline = true, OperationsPerInvoke = Rents)]
    public void MemoryPoolShared()
    {
        MemoryPool<byte> pool = MemoryPool<byte>.Shared;
        for (int i = 0; i < Rents; i++)
        {
            IMemoryOwner<byte> owner = pool.Rent(Size);
            owner.Memory.Span[0] = 1;
            owner.Dispose();
        }
    }

    [Benchmark(OperationsPerInvoke = Rents)]
    public void SlabMemoryPoolShared()
    {
        MemoryPool<byte> pool = SlabMemoryPool.Shared;
        for (int i = 0; i < Rents; i++)
        {
            IMemoryOwner<byte> owner = pool.Rent(Size);
            owner.Memory.Span[0] = 1;
            owner.Dispose();
        }
    }

    [Benchmark(OperationsPerInvoke = Rents)]
    public void ArrayPoolRentReturn()
    {
        ArrayPool<byte> pool = ArrayPool<byte>.Shared;
        for (int i = 0; i < Rents; i++)
        {
            byte[] a = pool.Rent(Size);
            a[0] = 1;
            pool.Return(a);
        }
    }
}
