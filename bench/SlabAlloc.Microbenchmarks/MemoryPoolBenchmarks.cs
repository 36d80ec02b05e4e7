using System.Buffers;
using BenchmarkDotNet.Attributes;

namespace SlabAlloc.Microbenchmarks;

/// <summary>One thread, rent a buffer, write one byte, give it back, 1000 times per invocation:
/// <see cref="SlabMemoryPool.Shared"/> against <see cref="MemoryPool{T}.Shared"/> and
/// <see cref="ArrayPool{T}.Shared"/>; and, as a pipe does, 16 buffers held at once, each rent giving the
/// oldest back (the <c>Held16</c> pair). Calls form: each rent and dispose is an interface call of its own.</summary>
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

    private readonly IMemoryOwner<byte>?[] _held = new IMemoryOwner<byte>?[16];

    [Benchmark(OperationsPerInvoke = Rents)]
    public void MemoryPoolSharedHeld16() => RentHolding16(MemoryPool<byte>.Shared);

    [Benchmark(OperationsPerInvoke = Rents)]
    public void SlabMemoryPoolSharedHeld16() => RentHolding16(SlabMemoryPool.Shared);

    private void RentHolding16(MemoryPool<byte> pool)
    {
        IMemoryOwner<byte>?[] held = _held;
        for (int i = 0; i < Rents; i++)
        {
            ref IMemoryOwner<byte>? slot = ref held[i & 15];
            slot?.Dispose();
            slot = pool.Rent(Size);
            slot.Memory.Span[0] = 1;
        }
        for (int i = 0; i < held.Length; i++)
        {
            held[i]?.Dispose();
            held[i] = null;
        }
    }
}
