using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace SlabAlloc.Workloads;

/// <summary>The allocator a benchmark drives, as a struct type parameter so that the JIT compiles
/// one copy of the benchmark loop per allocator and no interface call sits between them.</summary>
internal unsafe interface IBenchAllocator
{
    static abstract string Name { get; }
    static abstract void* Alloc(nuint size);
    static abstract void Free(void* p);
}

/// <summary>SlabAlloc.</summary>
internal readonly unsafe struct SlabAllocator : IBenchAllocator
{
    public static string Name => "slab";
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void* Alloc(nuint size) => SlabMemory.Alloc(size);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Free(void* p) => SlabMemory.Free(p);
}

/// <summary><see cref="NativeMemory"/>: glibc malloc, or whatever allocator LD_PRELOAD put in front of it.</summary>
internal readonly unsafe struct NativeAllocator : IBenchAllocator
{
    public static string Name => "native";
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void* Alloc(nuint size) => NativeMemory.Alloc(size);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Free(void* p) => NativeMemory.Free(p);
}
