using System.Runtime.InteropServices;
using BenchmarkDotNet.Attributes;

namespace SlabAlloc.Microbenchmarks;

/// <summary>A buffer grown from 16 B to 256 KiB by 1.5x steps with Realloc (a growing vector), then freed.</summary>
public unsafe class ReallocBenchmarks
{
    [Benchmark(Baseline = true)]
    public void NativeMemoryGrow()
    {
        void* p = NativeMemory.Alloc(16);
        for (nuint size = 24; size <= 256 * 1024; size += size / 2) { p = NativeMemory.Realloc(p, size); ((byte*)p)[size - 1] = 1; }
        NativeMemory.Free(p);
    }

    [Benchmark]
    public void SlabMemoryGrow()
    {
        void* p = SlabMemory.Alloc(16);
        for (nuint size = 24; size <= 256 * 1024; size += size / 2) { p = SlabMemory.Realloc(p, size); ((byte*)p)[size - 1] = 1; }
        SlabMemory.Free(p);
    }
}
