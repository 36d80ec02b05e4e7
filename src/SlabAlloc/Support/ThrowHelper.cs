using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;

namespace SlabAlloc.Support;

/// <summary>
/// Every exception SlabAlloc throws is built here, out of line, so that fast paths stay small.
/// Each failure is logged at Error level (when a logger is configured, in every build) just before it is thrown,
/// or, inside an <see cref="ErrorReports"/> scope, once the scope's holder has let go of what it holds.
/// </summary>
/// <remarks>Each <c>ThrowX</c> is a one-line <c>throw</c> of an exception built by a non-inlined
/// method. The JIT sees that the small <c>ThrowX</c> never returns, so a call to it is a cold exit:
/// nothing needs to stay live across it, and the caller keeps fewer values in callee-saved
/// registers (fewer pushes and pops on the fast path). Marking <c>ThrowX</c> itself NoInlining would
/// hide that from the JIT.</remarks>
internal static unsafe class ThrowHelper
{
    [DoesNotReturn] public static void ThrowForeignPointer(void* p) => throw ForeignPointer(p);
    [DoesNotReturn] public static void ThrowInteriorPointer(void* p) => throw InteriorPointer(p);
    [DoesNotReturn] public static void ThrowDoubleFree(void* p) => throw DoubleFree(p);
    [DoesNotReturn] public static void ThrowCorruption(string what) => throw Corruption(what);
    [DoesNotReturn] public static void ThrowLinkOverwritten(void* block) => throw LinkOverwritten(block);
    [DoesNotReturn] public static void ThrowOutOfMemory(nuint bytes) => throw OutOfMemory(bytes);
    [DoesNotReturn] public static void ThrowOutOfMemoryOverflow(nuint count, nuint size) => throw OutOfMemoryOverflow(count, size);
    [DoesNotReturn] public static void ThrowBadAlignment(nuint alignment) => throw BadAlignment(alignment);

    /// <summary>Reports heap corruption that is handled where it was found and not thrown (logged like the thrown ones).</summary>
    public static void ReportCorruption(string what) => Corruption(what);

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static Exception ForeignPointer(void* p) =>
        Report(new ArgumentException($"0x{(nuint)p:x} was not allocated by SlabAlloc (a foreign pointer, or memory SlabAlloc already returned to the system).", "ptr"));

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static Exception InteriorPointer(void* p) =>
        Report(new ArgumentException($"0x{(nuint)p:x} points into SlabAlloc memory but not at the start of a live allocation (an interior or misaligned pointer, or a block of a slab that is not in use).", "ptr"));

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static Exception DoubleFree(void* p) =>
        Report(new ArgumentException($"0x{(nuint)p:x} is already free (double free).", "ptr"));

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static Exception Corruption(string what) =>
        Report(new InvalidOperationException($"SlabAlloc detected heap corruption: {what}."));

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static Exception LinkOverwritten(void* block) =>
        Corruption($"the free-list link of block 0x{(nuint)block:x} was overwritten (a heap overflow or a use after free)");

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static Exception OutOfMemory(nuint bytes) =>
        Report(new OutOfMemoryException($"SlabAlloc could not allocate {bytes} bytes."));

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static Exception OutOfMemoryOverflow(nuint count, nuint size) =>
        Report(new OutOfMemoryException($"SlabAlloc could not allocate {count} elements of {size} bytes: the total does not fit."));

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static Exception BadAlignment(nuint alignment) =>
        new ArgumentException($"Alignment {alignment} is not a power of two greater than zero.", "alignment");

    private static T Report<T>(T exception) where T : Exception => ErrorReports.Report(exception);
}
