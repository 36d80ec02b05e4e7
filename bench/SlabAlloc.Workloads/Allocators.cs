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

/// <summary>SlabAlloc through a method of its own for each call: the form most programs use, where
/// nothing of the allocator is inlined into the caller's loop (<c>--calls</c>).</summary>
internal readonly unsafe struct SlabAllocatorCalls : IBenchAllocator
{
    public static string Name => "slab";
    [MethodImpl(MethodImplOptions.NoInlining)] public static void* Alloc(nuint size) => SlabMemory.Alloc(size);
    [MethodImpl(MethodImplOptions.NoInlining)] public static void Free(void* p) => SlabMemory.Free(p);
}

/// <summary><see cref="NativeMemory"/> through a method of its own for each call, so each call sets up
/// its own P/Invoke frame (<c>--calls</c>).</summary>
internal readonly unsafe struct NativeAllocatorCalls : IBenchAllocator
{
    public static string Name => "native";
    [MethodImpl(MethodImplOptions.NoInlining)] public static void* Alloc(nuint size) => NativeMemory.Alloc(size);
    [MethodImpl(MethodImplOptions.NoInlining)] public static void Free(void* p) => NativeMemory.Free(p);
}
