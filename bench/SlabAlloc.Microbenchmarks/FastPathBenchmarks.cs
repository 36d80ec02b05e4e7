using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using BenchmarkDotNet.Attributes;

namespace SlabAlloc.Microbenchmarks;

/// <summary>
/// The two single-thread fast-path measurements, small enough to run with every
/// peer allocator in one go (<c>--filter '*FastPath*' --preload</c>): a tight 64-byte alloc+free pair,
/// and 1000 allocations of mixed small sizes followed by 1000 frees. Reported per pair.
/// </summary>
/// <remarks>
/// In the plain loops the JIT may hoist loop-invariant work out of the loop: for SlabAlloc, the
/// thread-static read that finds the thread's cache (it did in .NET 10), which real code, whose
/// allocations and frees sit in different methods, does not get. The <c>Calls</c> variants put every
/// allocation and every free in a method of its own that is not inlined, as in most programs, for
/// both allocators alike.
/// </remarks>
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

    [Benchmark(OperationsPerInvoke = N)]
    public void NativePair64Calls()
    {
        for (int i = 0; i < N; i++) NativeFree(Touch(NativeAlloc(64)));
    }

    [Benchmark(OperationsPerInvoke = N)]
    public void SlabPair64Calls()
    {
        for (int i = 0; i < N; i++) SlabFree(Touch(SlabAllocate(64)));
    }

    [Benchmark(OperationsPerInvoke = N)]
    public void NativeMixed1000Calls()
    {
        for (int i = 0; i < N; i++) _blocks[i] = (nint)Touch(NativeAlloc(_sizes[i]));
        for (int i = 0; i < N; i++) NativeFree((void*)_blocks[i]);
    }

    [Benchmark(OperationsPerInvoke = N)]
    public void SlabMixed1000Calls()
    {
        for (int i = 0; i < N; i++) _blocks[i] = (nint)Touch(SlabAllocate(_sizes[i]));
        for (int i = 0; i < N; i++) SlabFree((void*)_blocks[i]);
    }

    [MethodImpl(MethodImplOptions.NoInlining)] private static void* NativeAlloc(nuint size) => NativeMemory.Alloc(size);
    [MethodImpl(MethodImplOptions.NoInlining)] private static void NativeFree(void* p) => NativeMemory.Free(p);
    [MethodImpl(MethodImplOptions.NoInlining)] private static void* SlabAllocate(nuint size) => SlabMemory.Alloc(size);
    [MethodImpl(MethodImplOptions.NoInlining)] private static void SlabFree(void* p) => SlabMemory.Free(p);

    private static void* Touch(void* p)
    {
        *(byte*)p = 1;
        return p;
    }
}
