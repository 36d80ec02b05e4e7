using System.Diagnostics;
using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;

namespace SlabAlloc.Support;

/// <summary>
/// The allocator's written invariants, checked where they must hold: at every hand-over of a slab
/// (format, acquisition, publication, release, letting go), of a superslab's slots, and of a thread
/// cache's record. Debug builds only: every call is removed from Release builds by the compiler
/// (<see cref="ConditionalAttribute"/>), arguments included, so the checks cost the product nothing.
/// <c>./build.sh test</c> runs the whole suite once on a Debug build so that they execute.
/// </summary>
/// <remarks>
/// A violated invariant is a bug in the allocator, not a caller's error, so it ends the process at
/// once (<see cref="Environment.FailFast(string)"/>) with the invariant's text: going on would hand
/// out memory from a state no argument covers. Checks that walk a free list give no verdict on a list
/// that is itself damaged (a link outside the slab, or longer than the slab): a caller's heap overflow
/// or double free does that, and the hardened and checked modes report it as the caller's error.
/// </remarks>
internal static class Invariant
{
    /// <summary>Ends the process if <paramref name="condition"/> is false (Debug builds only).</summary>
    [Conditional("DEBUG")]
    public static void Holds([DoesNotReturnIf(false)] bool condition, string what,
        [CallerArgumentExpression(nameof(condition))] string expression = "")
    {
        if (!condition) Fail(what, expression);
    }

    [DoesNotReturn]
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void Fail(string what, string expression) =>
        Environment.FailFast($"SlabAlloc invariant violated: {what} ({expression}).");
}
