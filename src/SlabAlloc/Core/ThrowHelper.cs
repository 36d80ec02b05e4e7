using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
using SlabAlloc.Diagnostics;

namespace SlabAlloc.Core;

/// <summary>
/// Every exception SlabAlloc throws is built here, out of line, so that fast paths stay small.
/// Each failure is logged at Error level (when a logger is configured, in every build) just before it is thrown.
/// </summary>
internal static unsafe class ThrowHelper
{
    [DoesNotReturn, MethodImpl(MethodImplOptions.NoInlining)]
    public static void ThrowForeignPointer(void* p) =>
        throw Report(new ArgumentException($"0x{(nuint)p:x} was not allocated by SlabAlloc (a foreign pointer, or memory SlabAlloc already returned to the system).", "ptr"));

    [DoesNotReturn, MethodImpl(MethodImplOptions.NoInlining)]
    public static void ThrowInteriorPointer(void* p) =>
        throw Report(new ArgumentException($"0x{(nuint)p:x} points into SlabAlloc memory but not at the start of a live allocation (an interior or misaligned pointer, or a block of a slab that is not in use).", "ptr"));

    [DoesNotReturn, MethodImpl(MethodImplOptions.NoInlining)]
    public static void ThrowDoubleFree(void* p) =>
        throw Report(new ArgumentException($"0x{(nuint)p:x} is already free (double free).", "ptr"));

    [DoesNotReturn, MethodImpl(MethodImplOptions.NoInlining)]
    public static void ThrowCorruption(string what) =>
        throw Report(new InvalidOperationException($"SlabAlloc detected heap corruption: {what}."));

    [DoesNotReturn, MethodImpl(MethodImplOptions.NoInlining)]
    public static void ThrowLinkOverwritten(void* block) =>
        ThrowCorruption($"the free-list link of block 0x{(nuint)block:x} was overwritten (a heap overflow or a use after free)");

    [DoesNotReturn, MethodImpl(MethodImplOptions.NoInlining)]
    public static void ThrowOutOfMemory(nuint bytes) =>
        throw Report(new OutOfMemoryException($"SlabAlloc could not allocate {bytes} bytes."));

    [DoesNotReturn, MethodImpl(MethodImplOptions.NoInlining)]
    public static void ThrowOutOfMemoryOverflow(nuint count, nuint size) =>
        throw Report(new OutOfMemoryException($"SlabAlloc could not allocate {count} elements of {size} bytes: the total does not fit."));

    [DoesNotReturn, MethodImpl(MethodImplOptions.NoInlining)]
    public static void ThrowBadAlignment(nuint alignment) =>
        throw new ArgumentException($"Alignment {alignment} is not a power of two greater than zero.", "alignment");

    private static T Report<T>(T exception) where T : Exception
    {
        SlabLog.ErrorDetected(exception);
        return exception;
    }
}
