using System.Runtime.InteropServices;
using BenchmarkDotNet.Attributes;

namespace SlabAlloc.Microbenchmarks;

/// <summary>Zero-filled allocation and free, against NativeMemory.AllocZeroed and a managed byte[].</summary>
[MemoryDiagnoser(displayGenColumns: false)]
public unsafe class ZeroedBenchmarks
{
    [Params(64, 4096, 65536)]
    public int Size;

    [Benchmark(Baseline = true)]
    public void NativeMemoryZeroed()
    {
        byte* p = (byte*)NativeMemory.AllocZeroed((nuint)Size);
        p[Size - 1] = 1;
        NativeMemory.Free(p);
    }

    [Benchmark]
    public void SlabMemoryZeroed()
    {
        byte* p = (byte*)SlabMemory.AllocZeroed((nuint)Size);
        p[Size - 1] = 1;
        SlabMemory.Free(p);
    }

    [Benchmark]
    public byte[] ManagedArray()
    {
        var a = new byte[Size];
        a[Size - 1] = 1;
        return a;
    }
}
